"""Views over a :class:`~spear_lab.trace.Trace` (ipywidgets and matplotlib; headless-safe).

- :class:`QueueView` / :func:`queue_figure`: send, receive and mic queues against caps;
- :class:`TimelineView` / :func:`timeline_figure`: readiness per fd and bit, with
  ``spear_epoll_wait`` calls and returns on the same time axis;
- :class:`TranscriptView` / :func:`transcript_html`: deltas growing into final text;
- :class:`HostcallLog`: a filterable table with errno names;
- :func:`segments_figure`: several guests' segments of the same audio, side by side;
- :func:`vad_figure` / :func:`vad_compare_figure` / :class:`VadView`: waveform, speech
  probability, turns and words on one audio axis (one run, or two settings side by side);
- every figure function returns a :class:`Figure`: shown in Jupyter without magics, ``.save(path)``;
- :class:`StepTable` / :func:`step_table`: a guest run as step, call, expected, got, why;
- :class:`Dashboard`: all of them, refreshed together;
- :class:`BrowserMic`: the browser's microphone as a mic source (``Session(mic="browser")``).

Live views refresh at most 10 times per second on the kernel's loop (or a timer thread),
and only when the Trace changed.  Views read the Trace and nothing else.
"""

from .dashboard import Dashboard
from .figure import Figure
from .hostcalls import HostcallLog, filter_hostcalls, hostcall_html
from .html import FdTableView, Status, fd_table_html, status_html
from .queues import QueueView, queue_figure, queue_levels
from .segments import segment_spans, segments_figure
from .static import LiveWidget
from .steps import SideBySide, Step, StepTable, parse_steps, step_table, trace_steps
from .timeline import TimelineView, timeline_figure, timeline_lanes
from .transcript import TranscriptView, transcript_html
from .vad import VadView, vad_compare_figure, vad_data, vad_figure

__all__ = [
    "Dashboard", "FdTableView", "HostcallLog", "QueueView", "Status", "TimelineView", "TranscriptView",
    "fd_table_html", "filter_hostcalls", "hostcall_html", "queue_figure", "queue_levels",
    "segment_spans", "segments_figure", "status_html", "timeline_figure", "timeline_lanes", "transcript_html",
]

__all__ += ["Figure", "VadView", "vad_compare_figure", "vad_data", "vad_figure"]
__all__ += ["SideBySide", "Step", "StepTable", "parse_steps", "step_table", "trace_steps"]
__all__ += ["BrowserMic"]
__all__ += ["LiveWidget"]


def __getattr__(name: str):
    # The browser microphone widget needs anywidget: imported on first use.
    if name == "BrowserMic":
        from .micwidget import BrowserMic

        return BrowserMic
    raise AttributeError(f"module 'spear_lab.views' has no attribute {name!r}")
