"""Queue levels: rtasr send and receive queues and mic queues against their caps.

:class:`QueueView` shows one row per queue with a bar (level / cap), the bytes, and the
drop counter (``dropped_events`` for rtasr receive queues, ``dropped_frames`` for mic
queues, ``-EAGAIN`` writes for send queues, counted from the hostcall records).
:func:`queue_figure` plots the levels over time for a finished run.  Both read only a
:class:`~spear_lab.trace.Trace`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure

from ._refresh import LiveView, MAX_RATE, Refresher

__all__ = ["QueueLevel", "QueueView", "queue_figure", "queue_levels", "queue_series"]

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


def queue_figure(trace: Any, instance: str | None = None, *, width: float = 10.0,
                 title: str | None = None) -> Figure:
    """Queue levels over time (one axis per queue, cap dashed), for a finished run; one
    instance or all.  The figure's ``series`` attribute holds the data drawn."""
    series = queue_series(trace, instance)
    n = max(len(series), 1)
    fig = Figure(figsize=(width, 1.2 + 1.5 * n), layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    eagain = _eagain_writes(trace)
    for ax, ((inst, fd, label), d) in zip(axes, sorted(series.items())):
        ax.step(d["t"], d["level"], where="post", label="bytes queued")
        ax.step(d["t"], d["cap"], where="post", linestyle="--", color="#d62728", label="cap")
        drops = eagain.get((inst, fd), 0) if label == "send" else (d["drops"][-1] if d["drops"] else 0)
        ax.set_ylabel("bytes", fontsize=8)
        ax.set_title(f"{inst}: fd {fd} {label} queue ({_DROP_WORDS[label]}: {drops})", fontsize=9)
        ax.legend(loc="upper right", fontsize=7)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time since trace start (s)")
    if not series:
        axes[0].text(0.5, 0.5, "no queue levels recorded yet", ha="center", va="center",
                     transform=axes[0].transAxes, color="#7f7f7f")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.series = series  # type: ignore[attr-defined]
    return fig


class QueueView(LiveView):
    """Live bars of every queue against its cap, with drop counters (ipywidgets)."""

    def __init__(self, trace: Any, *, live: bool = True, max_rate: float = MAX_RATE) -> None:
        import ipywidgets as widgets

        self._w = widgets
        self.trace = trace
        self.rows: dict[str, tuple[Any, Any]] = {}
        self.levels: list[QueueLevel] = []
        self._empty = widgets.HTML("<i>no queues yet</i>")
        self.widget = widgets.VBox([self._empty])
        self.refresh()
        self.refresher = Refresher(trace, self, max_rate).start() if live else None

    def refresh(self) -> None:
        w = self._w
        self.levels = queue_levels(self.trace)
        changed = False
        for q in self.levels:
            row = self.rows.get(q.key)
            if row is None:
                bar = w.FloatProgress(min=0.0, max=1.0, description=f"fd {q.fd} {q.queue}",
                                      layout=w.Layout(width="45%"),
                                      style={"description_width": "120px"})
                text = w.HTML()
                row = self.rows[q.key] = (bar, text)
                changed = True
            bar, text = row
            bar.value = min(q.fraction, 1.0)
            bar.bar_style = "danger" if q.fraction >= 1.0 else "warning" if q.fraction >= 0.75 else ""
            drop_word = _DROP_WORDS[q.queue]
            text.value = (f"<code>{html.escape(q.instance)}</code> {q.level} / {q.cap} B"
                          f" &nbsp; {drop_word}: <b>{q.drops}</b>")
        if changed:
            self.widget.children = [w.HBox([bar, text]) for bar, text in self.rows.values()]

