"""A bounded, timestamped record of what guests and transports did: the Trace.

- :mod:`.core` — :class:`Trace`: records hostcalls, readiness changes, table notes
  (:mod:`spear_lab.abi.notes`) and guest logs, from any thread, into bounded rings;
- :mod:`.records` — the typed records (``HostcallRecord``, ``ReadinessRecord``,
  ``QueueRecord``, ``EventRecord``, ``LogRecord``, ``VadRecord``) and ``Totals``;
- :mod:`.caps` — :class:`TraceCaps` (ring sizes, text cuts) and :data:`KINDS`;
- :mod:`.transcript` — :class:`TranscriptFolder`, the fold of OpenAI transcription events
  into :class:`TranscriptItem` (the explorer folds replays with it too);
- :mod:`.export` — ``records``, ``to_jsonl``, ``to_csv`` over a Trace;
- :mod:`.summary` — ``summary`` over a Trace;
- :mod:`.stats` — :func:`percentile`, the project's one percentile function.

Views read a Trace and nothing else.
"""

from .caps import KINDS, TraceCaps
from .core import Trace
from .records import (EventRecord, HostcallRecord, LogRecord, QueueRecord, ReadinessRecord,
                      Totals, VadRecord)
from .stats import percentile
from .transcript import TranscriptFolder, TranscriptItem

__all__ = ["KINDS", "Trace", "TraceCaps", "TranscriptItem", "TranscriptFolder", "HostcallRecord",
           "ReadinessRecord", "QueueRecord", "EventRecord", "LogRecord", "VadRecord", "Totals",
           "percentile"]
