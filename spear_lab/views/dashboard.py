"""The dashboard: queue levels, readiness timeline, transcript and hostcall log together,
refreshed by one throttled refresher, frozen as a whole (its static face is its parts'
snapshots stacked)."""

from __future__ import annotations

from typing import Any

from . import tables
from ._refresh import MAX_RATE, LiveView, Refresher
from .hostcalls import HostcallLog
from .html import trace_html
from .queues import QueueView
from .timeline import TimelineView
from .transcript import TranscriptView

__all__ = ["Dashboard"]


class Dashboard(LiveView):
    """Every view of one Trace in an ipywidgets layout.

    The timeline and the summary are redrawn at most ``timeline_rate`` times per second
    (rendering a PNG and the latency quantiles are the costly parts); the other views
    follow every change at up to ``max_rate`` (≤ 10/s).
    """

    def __init__(self, trace: Any, instance: str | None = None, *, live: bool = True,
                 max_rate: float = MAX_RATE, timeline_rate: float = 2.0,
                 window_s: float | None = 10.0) -> None:
        import ipywidgets as widgets

        self.trace = trace
        self.queues = QueueView(trace, live=False)
        self.timeline = TimelineView(trace, instance, window_s=window_s, live=False)
        self.transcript = TranscriptView(trace, instance, live=False)
        self.hostcalls = HostcallLog(trace, live=False)
        self.summary = widgets.HTML(trace_html(trace))
        self._timeline_every = max(1, round(min(max_rate, MAX_RATE) / max(timeline_rate, 0.1)))
        self._ticks = 1  # every view has just been drawn by its constructor
        self.refreshes = 0
        tabs = widgets.Tab(children=[self.transcript.widget, self.hostcalls.widget, self.summary])
        for i, title in enumerate(("transcript", "hostcalls", "summary")):
            tabs.set_title(i, title)
        self.widget = widgets.VBox([
            widgets.HTML(_heading("queues")), self.queues.widget,
            widgets.HTML(_heading("readiness")), self.timeline.widget,
            tabs,
        ])
        self.refresher = Refresher(trace, self, max_rate).start() if live else None

    @property
    def views(self) -> list[Any]:
        return [self.queues, self.timeline, self.transcript, self.hostcalls]

    def refresh(self) -> None:
        """Update every view (the timeline every few calls)."""
        self.queues.refresh()
        self.transcript.refresh()
        self.hostcalls.refresh()
        if self._ticks % self._timeline_every == 0:
            self.timeline.refresh()
            self.summary.value = trace_html(self.trace)
        self._ticks += 1
        self.refreshes += 1

    def _last_refresh(self) -> None:
        """Every part, the timeline and the summary included."""
        self.queues.refresh()
        self.transcript.refresh()
        self.hostcalls.refresh()
        self.timeline.refresh()
        self.summary.value = trace_html(self.trace)

    def snapshot_html(self) -> str:
        """The parts' snapshots stacked: queues, readiness, transcript, hostcalls, summary."""
        parts = [("queues", self.queues), ("readiness", self.timeline),
                 ("transcript", self.transcript), ("hostcalls", self.hostcalls)]
        body = "".join(_heading(title) + view.snapshot_html() for title, view in parts)
        return f"<div class='spear-dashboard'>{body}{_heading('summary')}{self.summary.value}</div>"

    def _close_widgets(self) -> None:
        for view in self.views:
            if view.refresher is not None:
                view.refresher.stop()
            view.frozen = True
            view._close_widgets()
        super()._close_widgets()


def _heading(title: str) -> str:
    return (f"<div style='font-weight:bold;font-size:{tables.FONT_PX + 2}px;margin:10px 0 2px 0'>"
            f"{title}</div>")
