"""The readiness timeline: one lane per fd and bit, with epoll waits on the same time axis.

Each lane is a readiness bit (IN, OUT, ERR, HUP) of one fd of one instance; a bar shows
when the bit was set.  Beside them, one lane per instance shows every
``spear_epoll_wait`` call, from call to return, with the return marked: a dot for
``n > 0`` records, a cross for a timeout (0), a red square for an error.  Everything is
read from a :class:`~spear_lab.trace.Trace`.

A whole run stays readable: a lane with too many intervals in view is binned into columns
whose shade says how much of the time the bit was set (:func:`aggregate_spans`); zoom in
(``timeline_figure(..., t0=, t1=)``, or the slider of :class:`TimelineView`) to see every
interval and every wait.  The lanes and their binning (pure data) are computed in
:mod:`spear_lab.views.lanes`; :class:`Lane`, :func:`timeline_lanes` and
:func:`aggregate_spans` are importable from here too.
"""

from __future__ import annotations

from typing import Any

from . import style
from ._refresh import MAX_RATE, LiveView, Refresher
from .figure import Figure, png_img_html
from .lanes import BINS, MAX_EXACT_SPANS, Lane, aggregate_spans, returns_in_view, timeline_lanes

__all__ = ["BINS", "BIT_COLORS", "MAX_EXACT_SPANS", "Lane", "TimelineView", "aggregate_spans",
           "timeline_figure", "timeline_lanes"]

BIT_COLORS = style.BIT_COLORS
WAIT_COLOR = style.WAIT_COLOR


def timeline_figure(trace: Any, instance: str | None = None,
                    t_range: tuple[float, float] | None = None, *, t0: float | None = None,
                    t1: float | None = None, waits: bool = True, axis: str = "time",
                    max_lanes: int = 40, width: float = 10.0, bins: int = BINS,
                    title: str | None = None) -> Figure:
    """The readiness timeline as a :class:`~spear_lab.views.figure.Figure`.

    Zoom with ``t0`` / ``t1`` (trace seconds; either may be left out) or ``t_range=(t0,
    t1)``.  Over a long range a lane with more than :data:`MAX_EXACT_SPANS` intervals in
    view is binned into ``bins`` columns (see :func:`aggregate_spans`): a lighter bar means
    the bit was set only part of that time; zoomed in, every interval and every
    ``spear_epoll_wait`` return is drawn.  ``axis="step"`` spaces every recorded moment
    evenly (for hand-driven Python calls microseconds apart; always exact).  ``max_lanes``
    caps the rows.  Attributes: ``lanes`` (the :class:`Lane` list, each with its raw
    ``spans`` and the ``drawn`` bars), ``t_range`` (the x range shown), ``aggregated``
    (whether any lane was binned).
    """
    if axis not in ("time", "step"):
        raise ValueError(f"axis must be 'time' or 'step', not {axis!r}")
    if t_range is not None:
        t0 = t_range[0] if t0 is None else t0
        t1 = t_range[1] if t1 is None else t1
    if t0 is not None and t1 is not None and t1 <= t0:
        raise ValueError(f"zoom needs t0 < t1, got t0={t0} t1={t1}")
    lanes = timeline_lanes(trace, instance, t1, waits, t0)[:max_lanes]
    moments = sorted({t for lane in lanes for span in lane.spans for t in span}
                     | {t for lane in lanes for t, _ in lane.returns})
    step = axis == "step"
    if step:
        index = {t: i for i, t in enumerate(moments)}

        def x(t: float) -> float:
            return float(index[t])
        lo = 0.0
        hi = float(max(len(moments) - 1, 1))
    else:
        def x(t: float) -> float:
            return t
        lo = t0 if t0 is not None else (moments[0] if moments else 0.0)
        hi = t1 if t1 is not None else (moments[-1] if moments else 1.0)
        if hi <= lo:
            hi = lo + 1e-3
    extent = max(hi - lo, 1e-9)
    min_w = extent * 0.003 if not step else 0.15
    n = len(lanes)
    names = {lane.instance for lane in lanes}
    aggregated = False
    with style.context():
        fig = Figure(figsize=(width, 1.5 + 0.42 * max(n, 1)), layout="constrained",
                     kind="readiness timeline")
        ax = fig.add_subplot()
        for row, lane in enumerate(lanes):
            y = n - 1 - row
            if step:
                lane.drawn = [(a, b, 1.0) for a, b in lane.spans]
                bars = [(x(a), max(x(b) - x(a), min_w), 1.0) for a, b, _ in lane.drawn]
            else:
                lane.drawn = aggregate_spans(lane.spans, lo, hi, bins=bins)
                exact = len(lane.drawn) == sum(1 for a, b in lane.spans if b >= lo and a <= hi)
                aggregated |= not exact and bool(lane.drawn)
                bars = [(a, max(b - a, min_w), d) for a, b, d in lane.drawn]
            wait = lane.kind == "wait"
            colour = WAIT_COLOR if wait else BIT_COLORS[lane.bit or "IN"]
            half = 0.2 if wait else 0.36
            if bars:
                ax.broken_barh([(a, w) for a, w, _ in bars], (y - half, 2 * half), facecolors=colour,
                               alpha=None, linewidth=0)
                coll = ax.collections[-1]
                coll.set_alpha([0.25 + 0.75 * d for _, _, d in bars] if not wait else
                               [0.2 + 0.5 * d for _, _, d in bars])
            if wait:
                exact_r = step or sum(1 for t, _ in lane.returns if lo <= t <= hi) <= MAX_EXACT_SPANS
                rets = lane.returns if step else returns_in_view(lane.returns, lo, hi, exact_r, bins)
                if not exact_r:  # binned: the bar shows the waits; mark only timeouts and errors
                    rets = [(t, rc) for t, rc in rets if rc <= 0]
                for marker, color, label, pick in (
                        ("o", WAIT_COLOR, "wait → n ready", lambda rc: rc > 0),
                        ("x", "#7f7f7f", "wait → 0 (timeout)", lambda rc: rc == 0),
                        ("s", BIT_COLORS["ERR"], "wait → -errno", lambda rc: rc < 0)):
                    xs = [x(t) for t, rc in rets if pick(rc)]
                    if xs:
                        ax.plot(xs, [y] * len(xs), marker, color=color, markersize=6, label=label,
                                linestyle="none")
        ax.set_yticks(range(n))
        shown = [lane.label.split(": ", 1)[1] if len(names) == 1 and ": " in lane.label else lane.label
                 for lane in reversed(lanes)]
        ax.set_yticklabels(shown)
        ax.set_ylim(-0.7, max(n, 1) - 0.3)
        pad = max(extent * 0.02, min_w) if step or (t0 is None and t1 is None) else 0.0
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_xlabel("time since trace start (s)" if not step else "step (recorded moments, in order)")
        ax.grid(axis="x", alpha=0.35)
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            uniq = dict(zip(labels, handles))
            ax.legend(uniq.values(), uniq.keys(), loc="upper left", bbox_to_anchor=(1.0, 1.0))
        head = title or ("readiness timeline" + (f" — {instance}" if instance else ""))
        if aggregated:
            head += f"\n(binned: one column = {_seconds(extent / bins)}; lighter = set part of the time)"
        ax.set_title(head, loc="left")
        if not lanes:
            ax.text(0.5, 0.5, "no readiness changes recorded yet", ha="center", va="center",
                    transform=ax.transAxes, color=style.MUTED)
    fig.lanes = lanes  # type: ignore[attr-defined]
    fig.t_range = (lo, hi)  # type: ignore[attr-defined]
    fig.aggregated = aggregated  # type: ignore[attr-defined]
    return fig


def _seconds(s: float) -> str:
    return f"{s * 1000:.3g} ms" if s < 1 else f"{s:.3g} s"


_BOX: dict[str, type] = {}


def _timeline_box(widgets: Any) -> type:
    """A VBox whose ``value`` is the PNG it shows (what the Image widget alone offered)."""
    cls = _BOX.get("box")
    if cls is None:
        class TimelineBox(widgets.VBox):
            image: Any = None

            @property
            def value(self) -> bytes:
                """The PNG shown now."""
                return self.image.value

        cls = _BOX["box"] = TimelineBox
    return cls


class TimelineView(LiveView):
    """A live timeline: a PNG re-rendered (throttled) while the Trace grows, with a range
    slider to zoom.

    ``window_s`` follows the last seconds (None = the whole run).  Moving the slider (or
    :meth:`zoom`) stops following and shows that range, individual waits included once
    narrow enough; ticking *follow* again (or :meth:`follow`) goes back.  ``live=False``
    renders once; call :meth:`refresh` to redraw.  ``widget.value`` is the PNG shown.
    """

    def __init__(self, trace: Any, instance: str | None = None, *, window_s: float | None = 10.0,
                 live: bool = True, max_rate: float = 4.0, width: float = 10.0) -> None:
        import ipywidgets as widgets

        self.trace = trace
        self.instance = instance
        self.window_s = window_s
        self.width = width
        self.following = True
        self.range: tuple[float, float] | None = None
        self._quiet = False
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.slider = widgets.FloatRangeSlider(
            value=(0.0, 1.0), min=0.0, max=1.0, step=0.01, description="zoom (s)",
            continuous_update=False, readout_format=".2f", layout=widgets.Layout(width="70%"))
        self.follow_box = widgets.Checkbox(
            value=True, indent=False,
            description=f"follow the last {window_s:g} s" if window_s else "show the whole run")
        self.slider.observe(self._on_slider, names="value")
        self.follow_box.observe(self._on_follow, names="value")
        box = _timeline_box(widgets)([widgets.HBox([self.slider, self.follow_box]), self.image])
        box.image = self.image
        self.widget = box
        self.lanes: list[Lane] = []
        self.renders = 0
        self.refresh()
        self.refresher = Refresher(trace, self, min(max_rate, MAX_RATE)).start() if live else None

    def _followed_range(self) -> tuple[float, float]:
        now = max(self.trace.now(), 1e-3)
        if self.window_s is None:
            return (0.0, now)
        return (max(0.0, now - self.window_s), max(now, self.window_s))

    def _set_slider(self, lo: float, hi: float) -> None:
        self._quiet = True
        try:
            top = max(hi, self.trace.now(), self.slider.min + 0.01)
            self.slider.max = top
            self.slider.step = max(top / 1000.0, 0.001)
            self.slider.value = (max(lo, 0.0), min(hi, top))
        finally:
            self._quiet = False

    def _on_slider(self, change: dict) -> None:
        if self._quiet:
            return
        lo, hi = change["new"]
        if hi > lo:
            self.zoom(lo, hi)

    def _on_follow(self, change: dict) -> None:
        if not self._quiet and change["new"]:
            self.follow()

    def zoom(self, t0: float, t1: float) -> None:
        """Show trace seconds ``t0`` … ``t1`` and stop following."""
        if t1 <= t0:
            raise ValueError(f"zoom needs t0 < t1, got t0={t0} t1={t1}")
        self.following = False
        self.range = (float(t0), float(t1))
        self._quiet = True
        try:
            self.follow_box.value = False
        finally:
            self._quiet = False
        self._draw()

    def follow(self) -> None:
        """Follow the last ``window_s`` seconds (or the whole run) again."""
        self.following = True
        self._quiet = True
        try:
            self.follow_box.value = True
        finally:
            self._quiet = False
        self._draw()

    def figure(self) -> Figure:
        """The figure as it would be drawn now."""
        lo, hi = self.range if (not self.following and self.range) else self._followed_range()
        return timeline_figure(self.trace, self.instance, t0=lo, t1=hi, width=self.width)

    def _draw(self) -> None:
        fig = self.figure()
        self.lanes = fig.lanes  # type: ignore[attr-defined]
        lo, hi = fig.t_range  # type: ignore[attr-defined]
        if self.following:
            self.range = (lo, hi)
        self._set_slider(lo, hi)
        self.image.value = fig.to_png(80)
        self.renders += 1

    def refresh(self) -> None:
        self._draw()

    def snapshot_html(self) -> str:
        """The picture shown now, as a static ``<img>`` (with the range it covers)."""
        lo, hi = self.range or (0.0, 0.0)
        return (png_img_html(self.image.value, alt="readiness timeline")
                + f'<div style="color:#6f6f6f">readiness timeline, {lo:.2f}–{hi:.2f} s</div>')
