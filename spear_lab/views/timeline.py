"""The readiness timeline: one lane per fd and bit, with epoll waits on the same time axis.

Each lane is a readiness bit (IN, OUT, ERR, HUP) of one fd of one instance; a bar shows
when the bit was set.  Beside them, one lane per instance shows every
``spear_epoll_wait`` call, from call to return, with the return marked: a dot for
``n > 0`` records, a cross for a timeout (0), a red square for an error.  Everything is
read from a :class:`~spear_lab.trace.Trace`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure

from ..abi.constants import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT
from ._refresh import LiveView, MAX_RATE, Refresher

__all__ = ["BIT_COLORS", "Lane", "TimelineView", "timeline_figure", "timeline_lanes"]

BITS = ((EPOLLIN, "IN"), (EPOLLOUT, "OUT"), (EPOLLERR, "ERR"), (EPOLLHUP, "HUP"))
BIT_COLORS = {"IN": "#1f77b4", "OUT": "#2ca02c", "ERR": "#d62728", "HUP": "#555555"}
WAIT_COLOR = "#9467bd"


@dataclass
class Lane:
    """One row of the timeline: ``spans`` are ``(start, end)`` trace times."""

    instance: str
    fd: int | None
    label: str
    bit: str | None = None
    kind: str | None = None
    spans: list[tuple[float, float]] = field(default_factory=list)
    #: For wait lanes: ``(t_return, rc)`` of every call.
    returns: list[tuple[float, int]] = field(default_factory=list)


def _end_time(trace: Any) -> float:
    """The latest time any record reaches (a finished run's end)."""
    end = 0.0
    for r in trace.hostcalls():
        end = max(end, r["t"] + r["dur"])
    for getter in (trace.readiness_changes, trace.queue_levels, trace.events):
        rows = getter()
        if rows:
            end = max(end, rows[-1]["t"])
    return end


def timeline_lanes(trace: Any, instance: str | None = None, t_end: float | None = None,
                   waits: bool = True, since: float | None = None) -> list[Lane]:
    """The lanes of the timeline, in order: per instance, its wait lane, then its fds
    (ascending) and their bits (IN, OUT, ERR, HUP), only bits that were ever set.

    A bit already set at the first recorded transition is drawn from the fd's creation
    (its create hostcall) when known.  Spans still open end at ``t_end`` (default: the
    latest record).  ``since`` skips what ended before that time (live windows).
    """
    window = t_end is not None
    if t_end is None:
        t_end = _end_time(trace)
    changes = trace.readiness_changes(instance, since=since)
    if window:
        changes = [c for c in changes if c["t"] <= t_end]
    per_fd: dict[tuple[str, int], list[dict]] = {}
    for c in changes:
        per_fd.setdefault((c["instance"], c["fd"]), []).append(c)
    calls = trace.hostcalls(instance, "spear_epoll_wait", since=since) if waits else []
    if window:
        calls = [r for r in calls if r["t"] <= t_end]
    order: dict[str, None] = {}
    for r in calls:
        order.setdefault(r["instance"], None)
    for inst, _ in per_fd:
        order.setdefault(inst, None)
    lanes: list[Lane] = []
    for inst in order:
        if waits:
            mine = [r for r in calls if r["instance"] == inst]
            if mine:
                lanes.append(Lane(inst, None, f"{inst}: epoll_wait", None, "wait",
                                  [(r["t"], r["t"] + r["dur"]) for r in mine],
                                  [(r["t"] + r["dur"], r["rc"]) for r in mine]))
        for (i, fd) in sorted(k for k in per_fd if k[0] == inst):
            rows = per_fd[(i, fd)]
            kind = trace.fd_kind(i, fd)
            created = trace.fd_created(i, fd)
            first_t = rows[0]["t"]
            start0 = created if created is not None and created <= first_t else first_t
            for bit, bname in BITS:
                spans: list[tuple[float, float]] = []
                on_since = start0 if rows[0]["old"] & bit else None
                for c in rows:
                    now_on = bool(c["new"] & bit)
                    if now_on and on_since is None:
                        on_since = c["t"]
                    elif not now_on and on_since is not None:
                        spans.append((on_since, c["t"]))
                        on_since = None
                if on_since is not None:
                    spans.append((on_since, max(t_end, on_since)))
                if since is not None:
                    spans = [(max(a, since), b) for a, b in spans if b >= since]
                if spans:
                    tag = f" {kind}" if kind else ""
                    lanes.append(Lane(inst, fd, f"{inst}: fd {fd}{tag} {bname}", bname, kind, spans))
    return lanes


def timeline_figure(trace: Any, instance: str | None = None,
                    t_range: tuple[float, float] | None = None, *, waits: bool = True,
                    axis: str = "time", max_lanes: int = 40, width: float = 10.0,
                    title: str | None = None) -> Figure:
    """A static matplotlib Figure of the readiness timeline (works headless, Agg).

    ``t_range`` limits the x axis (trace seconds); ``axis="step"`` spaces every recorded
    moment evenly (for hand-driven Python calls microseconds apart); ``max_lanes`` caps
    the rows.  The figure's ``lanes`` attribute holds the :class:`Lane` list drawn.
    """
    if axis not in ("time", "step"):
        raise ValueError(f"axis must be 'time' or 'step', not {axis!r}")
    t_end = t_range[1] if t_range is not None else None
    since = t_range[0] if t_range is not None else None
    lanes = timeline_lanes(trace, instance, t_end, waits, since)[:max_lanes]
    moments = sorted({t for lane in lanes for span in lane.spans for t in span}
                     | {t for lane in lanes for t, _ in lane.returns})
    if axis == "step":
        index = {t: i for i, t in enumerate(moments)}

        def x(t: float) -> float:
            return float(index[t])
    else:
        def x(t: float) -> float:
            return t
    lo = x(moments[0]) if moments else 0.0
    hi = x(moments[-1]) if moments else 1.0
    if t_range is not None and axis == "time":
        lo, hi = t_range
    extent = max(hi - lo, 1e-9)
    min_w = extent * 0.004 if axis == "time" else 0.15
    height = 1.2 + 0.32 * max(len(lanes), 1)
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    n = len(lanes)
    for row, lane in enumerate(lanes):
        y = n - 1 - row
        spans = [(x(a), max(x(b) - x(a), min_w)) for a, b in lane.spans]
        if lane.kind == "wait":
            ax.broken_barh(spans, (y - 0.15, 0.3), facecolors=WAIT_COLOR, alpha=0.35, linewidth=0)
            for marker, color, label, pick in (
                    ("o", WAIT_COLOR, "wait → n", lambda rc: rc > 0),
                    ("x", "#7f7f7f", "wait → 0 (timeout)", lambda rc: rc == 0),
                    ("s", "#d62728", "wait → -errno", lambda rc: rc < 0)):
                xs = [x(t) for t, rc in lane.returns if pick(rc)]
                if xs:
                    ax.plot(xs, [y] * len(xs), marker, color=color, markersize=4, label=label,
                            linestyle="none")
        else:
            ax.broken_barh(spans, (y - 0.35, 0.7), facecolors=BIT_COLORS[lane.bit or "IN"],
                           linewidth=0)
    ax.set_yticks(range(n))
    ax.set_yticklabels([lane.label for lane in reversed(lanes)], fontsize=8)
    ax.set_ylim(-0.7, max(n, 1) - 0.3)
    pad = 0.0 if (t_range is not None and axis == "time") else max(extent * 0.03, min_w)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel("time since trace start (s)" if axis == "time" else "step (recorded moments, in order)")
    ax.grid(axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        uniq = dict(zip(labels, handles))
        ax.legend(uniq.values(), uniq.keys(), loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
    ax.set_title(title or ("readiness timeline" + (f" — {instance}" if instance else "")), fontsize=10)
    if not lanes:
        ax.text(0.5, 0.5, "no readiness changes recorded yet", ha="center", va="center",
                transform=ax.transAxes, color="#7f7f7f")
    fig.lanes = lanes  # type: ignore[attr-defined]
    return fig


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """Render ``fig`` to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


class TimelineView(LiveView):
    """A live timeline: an ipywidgets Image re-rendered (throttled) while the Trace grows.

    ``window_s`` shows only the last seconds (None = everything).  ``live=False`` renders
    once; call :meth:`refresh` to redraw.
    """

    def __init__(self, trace: Any, instance: str | None = None, *, window_s: float | None = 10.0,
                 live: bool = True, max_rate: float = 4.0, width: float = 10.0) -> None:
        import ipywidgets as widgets

        self.trace = trace
        self.instance = instance
        self.window_s = window_s
        self.width = width
        self.widget = widgets.Image(format="png")
        self.lanes: list[Lane] = []
        self.renders = 0
        self.refresh()
        self.refresher = Refresher(trace, self, min(max_rate, MAX_RATE)).start() if live else None

    def figure(self) -> Figure:
        """The figure as it would be drawn now."""
        t_range = None
        if self.window_s is not None:
            now = self.trace.now()
            t_range = (max(0.0, now - self.window_s), max(now, self.window_s))
        return timeline_figure(self.trace, self.instance, t_range, width=self.width)

    def refresh(self) -> None:
        fig = self.figure()
        self.lanes = fig.lanes  # type: ignore[attr-defined]
        self.widget.value = figure_png(fig)
        self.renders += 1

