"""Queue levels: rtasr send and receive queues and mic queues against their caps.

:class:`QueueView` shows one row per queue with a bar (level / cap), the bytes, and the
drop counter (``dropped_events`` for rtasr receive queues, ``dropped_frames`` for mic
queues, ``-EAGAIN`` writes for send queues, counted from the hostcall records).
:func:`queue_figure` plots the levels over time for a finished run.  Small levels stay
visible: the bars use a log scale up to the cap, the figure auto-ranges each panel to its
peak and marks the cap.  Both read only a :class:`~spear_lab.trace.Trace`.
"""

from __future__ import annotations

import html
import math
import textwrap
from dataclasses import dataclass
from typing import Any

from matplotlib.ticker import FuncFormatter, MultipleLocator

from . import style
from ._refresh import MAX_RATE, LiveView, Refresher
from .figure import Figure

__all__ = ["QueueLevel", "QueueView", "log_fraction", "queue_figure", "queue_levels", "queue_series"]

# (note field with the level, note field with the cap, drop field, label)
_RTASR = (("send_queue_bytes", "max_send_queue_bytes", None, "send"),
          ("recv_queue_bytes", "max_recv_queue_bytes", "dropped_events", "recv"))
_MIC = (("queue_bytes", "max_queue_bytes", "dropped_frames", "mic"),)
_DROP_WORDS = {"send": "-EAGAIN writes", "recv": "dropped events", "mic": "dropped frames"}


def _fields(sample: dict) -> tuple:
    return _MIC if "queue_bytes" in sample else _RTASR


@dataclass
class QueueLevel:
    """The latest level of one queue."""

    instance: str
    fd: int
    queue: str  # "send", "recv" or "mic"
    level: int
    cap: int
    drops: int
    t: float

    @property
    def key(self) -> str:
        return f"{self.instance}:{self.fd}:{self.queue}"

    @property
    def fraction(self) -> float:
        return self.level / self.cap if self.cap > 0 else (1.0 if self.level else 0.0)


def _eagain_writes(trace: Any) -> dict[tuple[str, int], int]:
    """-EAGAIN results of rtasr_write per (instance, fd), from the hostcall records."""
    out: dict[tuple[str, int], int] = {}
    for r in trace.hostcalls(name="rtasr_write"):
        if r["rc"] == -11 and r["args"]:
            key = (r["instance"], r["args"][0])
            out[key] = out.get(key, 0) + 1
    return out


def queue_levels(trace: Any) -> list[QueueLevel]:
    """The latest level of every queue seen, ordered by instance, fd, queue."""
    eagain = _eagain_writes(trace)
    out: list[QueueLevel] = []
    for (inst, fd), sample in sorted(trace.latest_levels().items()):
        for level_key, cap_key, drop_key, label in _fields(sample):
            drops = int(sample.get(drop_key, 0) or 0) if drop_key else eagain.get((inst, fd), 0)
            out.append(QueueLevel(inst, fd, label, int(sample.get(level_key, 0) or 0),
                                  int(sample.get(cap_key, 0) or 0), drops, sample["t"]))
    return out


def queue_series(trace: Any, instance: str | None = None) -> dict[tuple[str, int, str], dict[str, list]]:
    """Levels over time per (instance, fd, queue): ``t``, ``level``, ``cap``, ``drops``."""
    series: dict[tuple[str, int, str], dict[str, list]] = {}
    for s in trace.queue_levels(instance):
        for level_key, cap_key, drop_key, label in _fields(s):
            d = series.setdefault((s["instance"], s["fd"], label),
                                  {"t": [], "level": [], "cap": [], "drops": []})
            d["t"].append(s["t"])
            d["level"].append(int(s.get(level_key, 0) or 0))
            d["cap"].append(int(s.get(cap_key, 0) or 0))
            d["drops"].append(int(s.get(drop_key, 0) or 0) if drop_key else 0)
    return series


def log_fraction(level: int, cap: int) -> float:
    """Where ``level`` sits on a log scale from 1 B to ``cap`` (0..1; 960 B of 1 MB → 0.49)."""
    if level <= 0:
        return 0.0
    if cap <= 1:
        return 1.0
    return min(math.log1p(level) / math.log1p(cap), 1.0)


def _pct(part: float, whole: float) -> str:
    """``part`` as a percentage of ``whole``: ``100%``, ``12%``, ``1.5%``, ``0.092%``."""
    v = 100.0 * part / whole if whole else 0.0
    return f"{v:.0f}%" if v >= 10 or v == 0 else f"{v:.1f}%" if v >= 1 else f"{v:.2g}%"


def _bytes_axis(ax: Any, top: float) -> None:
    """Ticks at round binary sizes (256 B, 2 KB, 512 KB …) up to ``top`` bytes, labelled."""
    unit = 1 if top < 2048 else 1024 if top < 2 * 1048576 else 1048576
    raw = top / unit / 4
    step = next((m * 10 ** e for e in range(7) for m in (1, 2, 2.5, 5) if m * 10 ** e >= raw), raw)
    if unit == 1 and top >= 256:
        step = next(b for b in (64, 128, 256, 512, 1024) if b >= raw) if raw <= 1024 else step
    ax.yaxis.set_major_locator(MultipleLocator(step * unit))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: style.human_bytes(v) if v >= 0 else ""))


def queue_figure(trace: Any, instance: str | None = None, *, width: float = 10.0,
                 scale: str = "auto", title: str | None = None) -> Figure:
    """Queue levels over time for a finished run, one instance or all.

    One panel per queue that ever held a byte, its y axis auto-ranged to the level's peak
    (``scale="auto"``; ``"log"`` for a log axis up to the cap; ``"linear"`` from 0 to the
    cap), the peak marked and labelled, the cap drawn when it is on the scale and named
    otherwise.  Queues that never held anything get no panel, only a line naming them.
    Attributes: ``series`` (every queue's data, :func:`queue_series`), ``idle`` (keys of
    the queues not drawn), ``peaks`` (key → peak bytes).
    """
    if scale not in ("auto", "log", "linear"):
        raise ValueError(f"scale must be 'auto', 'log' or 'linear', not {scale!r}")
    series = queue_series(trace, instance)
    eagain = _eagain_writes(trace)
    peaks = {k: max(d["level"]) if d["level"] else 0 for k, d in series.items()}
    active = [k for k in sorted(series) if peaks[k] > 0]
    idle = [k for k in sorted(series) if peaks[k] <= 0]
    note = bool(idle) or not active
    with style.context():
        fig = Figure(figsize=(width, 0.9 + 1.9 * len(active) + (0.7 if note else 0)),
                     layout="constrained", kind="queue levels")
        ratios = [1.0] * len(active) + ([0.28 if active else 1.0] if note else [])
        axes = list(fig.subplots(len(ratios), 1, height_ratios=ratios, squeeze=False)[:, 0])
        panels = axes[:len(active)]
        for ax in panels[1:]:
            ax.sharex(panels[0])
        t_lo = min((series[k]["t"][0] for k in active), default=0.0)
        t_hi = max((series[k]["t"][-1] for k in active), default=1.0)
        for ax, key in zip(panels, active):
            inst, fd, label = key
            d = series[key]
            cap = max(d["cap"]) if d["cap"] else 0
            peak = peaks[key]
            i_peak = d["level"].index(peak)
            ax.step(d["t"], d["level"], where="post", color=style.CYCLE[0], label="bytes queued")
            ax.fill_between(d["t"], d["level"], step="post", color=style.CYCLE[0], alpha=0.15)
            ax.plot([d["t"][i_peak]], [peak], "o", color=style.CYCLE[5])
            share = f" = {_pct(peak, cap)} of the cap" if cap else ""
            right = t_hi > t_lo and (d["t"][i_peak] - t_lo) / (t_hi - t_lo) > 0.5
            ax.annotate(f"peak {style.human_bytes(peak)}{share}", (d["t"][i_peak], peak),
                        xytext=(-8 if right else 8, -4), textcoords="offset points", va="top",
                        ha="right" if right else "left", fontsize=style.SMALL, color=style.CYCLE[5],
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.8,
                              "linewidth": 0})
            if scale == "log":
                ax.set_yscale("log")
                top = max(cap, peak) * 1.5
                ax.set_ylim(0.8, top)
            elif scale == "linear":
                top = max(cap, peak) * 1.1
                ax.set_ylim(0, top)
            else:
                top = peak * 1.35
                ax.set_ylim(0, top)
            if cap and cap <= top:
                ax.axhline(cap, linestyle="--", color=style.BIT_COLORS["ERR"], linewidth=1.5)
                ax.annotate(f"cap {style.human_bytes(cap)}", (1.0, cap), xycoords=("axes fraction", "data"),
                            xytext=(-4, 3), textcoords="offset points", ha="right", va="bottom",
                            fontsize=style.SMALL, color=style.BIT_COLORS["ERR"])
            elif cap:
                ax.text(0.995, 0.95, f"cap {style.human_bytes(cap)} (above this scale)",
                        transform=ax.transAxes, ha="right", va="top", fontsize=style.SMALL,
                        color=style.BIT_COLORS["ERR"])
            if scale != "log":
                _bytes_axis(ax, top)
            drops = eagain.get((inst, fd), 0) if label == "send" else (d["drops"][-1] if d["drops"] else 0)
            ax.set_title(f"{inst}: fd {fd} {label} queue · {_DROP_WORDS[label]}: {drops}", loc="left",
                         fontsize=style.FONT)
            ax.grid(alpha=0.3)
        if panels:
            for ax in panels[:-1]:
                ax.tick_params(labelbottom=False)
            panels[-1].set_xlabel("time since trace start (s)")
        if note:
            ax = axes[-1]
            ax.set_axis_off()
            if not series:
                text = "no queue levels recorded yet"
            else:
                names = [f"{i}: fd {fd} {q} (cap {style.human_bytes(max(series[(i, fd, q)]['cap'] or [0]))})"
                         for i, fd, q in idle]
                text = "never held a byte: " + "; ".join(names) if names else ""
            ax.text(0.0, 0.5, textwrap.fill(text, 110), transform=ax.transAxes, ha="left", va="center",
                    fontsize=style.SMALL, color=style.MUTED)
        if title:
            fig.suptitle(title)
    fig.series = series  # type: ignore[attr-defined]
    fig.idle = idle  # type: ignore[attr-defined]
    fig.peaks = peaks  # type: ignore[attr-defined]
    return fig


_LOG_TIP = "log scale: 1 B at the left end, the cap at the right end"


class QueueView(LiveView):
    """Live bars of every queue against its cap, with peaks and drop counters (ipywidgets).

    The bars use a log scale from 1 B to the cap (``scale="log"``, the default), so that
    960 B of a 1 MB cap shows as half a bar rather than nothing; ``scale="linear"`` is the
    plain fraction.  The text beside each bar gives the exact bytes, the share of the cap
    and the highest level seen.
    """

    def __init__(self, trace: Any, *, live: bool = True, max_rate: float = MAX_RATE,
                 scale: str = "log") -> None:
        import ipywidgets as widgets

        if scale not in ("log", "linear"):
            raise ValueError(f"scale must be 'log' or 'linear', not {scale!r}")
        self._w = widgets
        self.trace = trace
        self.scale = scale
        self.rows: dict[str, tuple[Any, Any]] = {}
        self.levels: list[QueueLevel] = []
        self.peaks: dict[str, int] = {f"{i}:{fd}:{q}": max(d["level"] or [0])
                                      for (i, fd, q), d in queue_series(trace).items()}
        self._empty = widgets.HTML("<i>no queues yet</i>")
        self.widget = widgets.VBox([self._empty])
        self.refresh()
        self.refresher = Refresher(trace, self, max_rate).start() if live else None

    def bar_value(self, q: QueueLevel) -> float:
        """The bar's position (0..1) for ``q`` on this view's scale."""
        return log_fraction(q.level, q.cap) if self.scale == "log" else min(q.fraction, 1.0)

    def _text(self, q: QueueLevel) -> str:
        peak = self.peaks.get(q.key, q.level)
        share = _pct(q.level, q.cap) if q.cap else "no cap"
        return (f"<code>{html.escape(q.instance)}</code> {q.level} / {q.cap} B"
                f" ({share}) &nbsp; peak {style.human_bytes(peak)}"
                f" &nbsp; {_DROP_WORDS[q.queue]}: <b>{q.drops}</b>")

    def refresh(self) -> None:
        w = self._w
        self.levels = queue_levels(self.trace)
        changed = False
        for q in self.levels:
            self.peaks[q.key] = max(self.peaks.get(q.key, 0), q.level)
            row = self.rows.get(q.key)
            if row is None:
                bar = w.FloatProgress(min=0.0, max=1.0, description=f"fd {q.fd} {q.queue}",
                                      layout=w.Layout(width="40%"),
                                      style={"description_width": "120px"})
                if self.scale == "log":
                    bar.tooltip = _LOG_TIP
                text = w.HTML()
                row = self.rows[q.key] = (bar, text)
                changed = True
            bar, text = row
            bar.value = self.bar_value(q)
            bar.bar_style = "danger" if q.fraction >= 1.0 else "warning" if q.fraction >= 0.75 else ""
            text.value = self._text(q)
        if changed:
            self.widget.children = [w.HBox([bar, text]) for bar, text in self.rows.values()]

    def snapshot_html(self) -> str:
        """The bars as a static HTML table (same scale and text as the widget)."""
        if not self.levels:
            return "<div><i>no queues yet</i></div>"
        rows = []
        for q in self.levels:
            pct = 100.0 * self.bar_value(q)
            colour = "#d62728" if q.fraction >= 1.0 else "#ff7f0e" if q.fraction >= 0.75 else "#1f77b4"
            bar = (f'<div style="width:240px;height:14px;background:#e8e8e8;border-radius:2px" '
                   f'title="{_LOG_TIP if self.scale == "log" else "fraction of the cap"}">'
                   f'<div style="width:{pct:.1f}%;height:100%;background:{colour};border-radius:2px">'
                   f'</div></div>')
            rows.append(f'<tr><td style="padding:2px 10px 2px 0;white-space:nowrap">fd {q.fd} {q.queue}</td>'
                        f'<td style="padding:2px 10px 2px 0">{bar}</td>'
                        f'<td style="padding:2px 0;white-space:nowrap">{self._text(q)}</td></tr>')
        scale = "log scale, 1 B … cap" if self.scale == "log" else "fraction of the cap"
        return (f'<table style="border-collapse:collapse">{"".join(rows)}</table>'
                f'<div style="color:#6f6f6f;font-size:90%">bars: {scale}</div>')
