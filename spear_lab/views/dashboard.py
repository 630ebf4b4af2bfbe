"""The dashboard: queue levels, readiness timeline, transcript and hostcall log together,
refreshed by one throttled refresher."""

from __future__ import annotations

from typing import Any

from ._refresh import MAX_RATE, Refresher
from .hostcalls import HostcallLog
from .html import trace_html
from .queues import QueueView
from .timeline import TimelineView
from .transcript import TranscriptView

__all__ = ["Dashboard"]


class Dashboard:
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
            widgets.HTML("<b>queues</b>"), self.queues.widget,
            widgets.HTML("<b>readiness</b>"), self.timeline.widget,
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

    def close(self) -> None:
        if self.refresher is not None:
            self.refresher.stop()
        for v in self.views:
            v.close()
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)
