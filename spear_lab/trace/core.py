"""The Trace: a bounded, timestamped, thread-safe record of one session.

It records, from any thread, hostcalls (the wasm glue calls :meth:`Trace.hostcall` while
``recording``), readiness transitions (``FdTable.observers``), and the table notes of
:mod:`spear_lab.abi.notes` (``FdTable.listeners``): queue levels, received events (folded
into transcript items by a :class:`~.transcript.TranscriptFolder`), errors, hang-ups and
server VAD frames; and guest log messages.  Times are seconds since the trace started
(``time.perf_counter``).  Each kind of record (:mod:`.records`) lives in its own ring
(caps in :class:`~.caps.TraceCaps`); what falls off is counted in ``evicted``.  The
readers are in :mod:`.reading`; export and summary are functions over a Trace
(:mod:`.export`, :mod:`.summary`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..abi.constants import FdKind, errno_name
from ..abi.notes import (EventReceived, MicQueue, Note, QueueNote, RtasrFailed, RtasrHungUp,
                         RtasrQueues, VadProbabilities)
from . import attach as _attach
from . import export as _export
from . import summary as _summary
from .caps import KINDS, TraceCaps, no_evictions
from .dictnotes import QUEUE_WHATS, from_dict
from .reading import TraceReading
from .transcript import TranscriptFolder

__all__ = ["Trace"]

# Hostcalls that create an fd: their non-negative result is the new fd.
_CREATORS = {"spear_epoll_create": "epoll", "rtasr_create": "rtasr", "mic_create": "mic"}
#: Hostcalls whose result is a value, never an errno (random_i64 is negative half the time).
_VALUE_RESULTS = frozenset({"time_now_ms", "wall_time_s", "random_i64"})
#: Most negative result counted as an errno (Linux: -4095 .. -1).
_MAX_ERRNO = 4095
#: The name :meth:`Trace.fd_kind` reports for each kind of fd.
_KIND_NAMES = {FdKind.RTASR: "rtasr", FdKind.MIC: "mic", FdKind.EPOLL: "epoll"}


class Trace(TraceReading):
    """The record of one session (see the module docstring).  Thread-safe.

    ``recording`` switches hostcall, readiness, queue and event recording on and off
    (the wasm glue checks it before timing a call).  ``version`` grows with every record,
    so a view can tell cheaply whether anything changed.
    """

    def __init__(self, caps: TraceCaps | None = None, *, recording: bool = True,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.caps = c = caps or TraceCaps()
        self.recording = recording
        #: Set when the owner (a Session) closed: live views refresh once more and stop.
        self.closed = False
        self.clock = clock
        self.start = clock()
        self.wall_start = time.time()
        self._lock = threading.Lock()
        # The rings hold plain tuples in the field order of their record class (a tuple
        # subclass costs 8 bytes more per record); rows() hands out the typed records.
        self._hostcalls: deque[tuple] = deque(maxlen=c.hostcalls)
        self._readiness: deque[tuple] = deque(maxlen=c.readiness)
        self._queues: deque[tuple] = deque(maxlen=c.queues)
        self._events: deque[tuple] = deque(maxlen=c.events)
        self._logs: deque[tuple] = deque(maxlen=c.logs)
        self._vad: deque[tuple] = deque(maxlen=c.vad)
        self._evicted = no_evictions()
        self._folder = TranscriptFolder(max_items=c.transcript_items,
                                        deltas_per_item=c.deltas_per_item, item_text=c.item_text,
                                        max_fds=c.fds, evicted=self._evicted)
        self._calls: dict[str, int] = {}
        self._errnos: dict[tuple[str, int], int] = {}
        self._n_hostcalls = 0
        self._levels: dict[tuple[str, int], tuple[float, str, Any]] = {}  # (t, what, levels)
        self._kinds: dict[tuple[str, int], str] = {}
        self._created: dict[tuple[str, int], float] = {}
        self.version = 0
        self._attached: list[tuple[Any, Callable, Callable]] = []

    @property
    def evicted(self) -> dict[str, int]:
        """Records of each kind that fell off their ring (or were never kept)."""
        with self._lock:
            return self._evicted_now()

    def _evicted_now(self) -> dict[str, int]:
        out = dict(self._evicted)
        out["hostcall"] = self._n_hostcalls - len(self._hostcalls)
        return out

    def counts(self) -> tuple[dict[str, int], set[str]]:
        """Cheaply: calls per hostcall name, and every errno name seen (for filters)."""
        with self._lock:
            return dict(self._calls), {errno_name(rc) for _, rc in self._errnos}

    def now(self) -> float:
        """Seconds since the trace started."""
        return self.clock() - self.start

    # -- recording (called from guest threads and the I/O loop) --------------------------

    def hostcall(self, instance: str, name: str, args: tuple, rc: Any, t0: float, t1: float,
                 out: str | None = None) -> None:
        """Record one hostcall that ran from ``t0`` to ``t1`` (``perf_counter`` values).

        ``rc`` is the hostcall's integer result; a Python caller's richer result (bytes,
        a list of ready pairs) is recorded as its length.  ``out`` is an optional short
        text of what was returned (the Python ABI records ready fds and payloads).
        """
        if rc.__class__ is not int:
            rc = (0 if rc is None else len(rc) if hasattr(rc, "__len__") else
                  int(rc) if isinstance(rc, int) else -1)
        with self._lock:
            self._hostcalls.append((t0 - self.start, instance, name, args, rc, t1 - t0, out))
            self._n_hostcalls += 1
            calls = self._calls
            calls[name] = calls.get(name, 0) + 1
            if rc < 0:
                if rc >= -_MAX_ERRNO and name not in _VALUE_RESULTS:
                    key = (name, rc)
                    errs = self._errnos
                    errs[key] = errs.get(key, 0) + 1
            elif name in _CREATORS:
                self._remember(self._created, (instance, rc), t0 - self.start)
                self._remember(self._kinds, (instance, rc), _CREATORS[name])
            self.version += 1

    def readiness(self, instance: str, fd: int, old: int, new: int) -> None:
        """Record that ``fd``'s effective readiness mask went from ``old`` to ``new``."""
        if not self.recording:
            return
        t = self.now()
        with self._lock:
            ring = self._readiness
            if len(ring) == ring.maxlen:
                self._evicted["readiness"] += 1
            ring.append((t, instance, fd, old, new))
            self.version += 1

    def note(self, instance: str, fd: int, note: Note | str, data: dict | None = None) -> None:
        """Record a table note of ``instance``'s ``fd`` (:mod:`spear_lab.abi.notes`).

        The dict form ``note(instance, fd, what, data)`` takes a note's tag and fields
        instead (``"rtasr_queues"`` / ``"mic_queue"`` with any of the level fields,
        ``"event"`` with ``event``, ``"error"`` / ``"hangup"`` with ``message``, ``"vad"``).
        Raises ValueError for an unknown tag, TypeError for anything else.
        """
        if not self.recording:
            return
        t = self.now()
        cls = note.__class__
        if cls is str:
            if note in QUEUE_WHATS:
                self._queue(t, instance, fd, note, QUEUE_WHATS[note], dict(data or {}))
                return
            note = from_dict(note, data or {})
            cls = note.__class__
        elif data is not None:
            raise TypeError(f"Trace.note: a {cls.__name__} takes no data dict")
        if cls is RtasrQueues or cls is MicQueue:
            self._queue(t, instance, fd, note.what, _KIND_NAMES[note.kind], note)
        elif cls is EventReceived:
            self._event(t, instance, fd, note.event)
        elif cls is RtasrFailed or cls is RtasrHungUp:
            msg = str(note.message)
            cut = self.caps.event_text
            self._append_event(t, instance, fd, note.what, note.what, len(msg),
                               msg if len(msg) <= cut else msg[:cut] + "…")
        elif cls is VadProbabilities:
            self._vad_frames(t, instance, fd, note)
        else:
            raise TypeError(f"Trace.note takes a note of spear_lab.abi.notes, or a tag and a "
                            f"dict; got {cls.__name__}")

    def _queue(self, t: float, instance: str, fd: int, what: str, kind: str,
               level: QueueNote | dict[str, Any]) -> None:
        """One queue sample; ``level`` is the note itself (or the dict form's fields)."""
        with self._lock:
            ring = self._queues
            if len(ring) == ring.maxlen:
                self._evicted["queue"] += 1
            ring.append((t, instance, fd, what, level))
            self._remember(self._levels, (instance, fd), (t, what, level))
            if (instance, fd) not in self._kinds:
                self._remember(self._kinds, (instance, fd), kind)
            self.version += 1

    def _append_event(self, t: float, instance: str, fd: int, what: str, etype: str,
                      size: int, text: str) -> None:
        with self._lock:
            ring = self._events
            if len(ring) == ring.maxlen:
                self._evicted["event"] += 1
            ring.append((t, instance, fd, what, etype, size, text))
            self.version += 1

    def _event(self, t: float, instance: str, fd: int, raw: bytes | str) -> None:
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        etype = obj.get("type") if isinstance(obj, dict) and isinstance(obj.get("type"), str) else "?"
        cut = self.caps.event_text
        shown = text if len(text) <= cut else text[:cut] + "…"
        self._append_event(t, instance, fd, "event", etype, len(raw), shown)
        if isinstance(obj, dict):
            with self._lock:
                if self._folder.feed(t, obj, instance, fd) is not None:
                    self.version += 1

    def _vad_frames(self, t: float, instance: str, fd: int, note: VadProbabilities) -> None:
        """One record per frame of a server VAD note."""
        start, step = float(note.audio_start_ms), float(note.frame_ms)
        probs = note.probabilities
        with self._lock:
            ring = self._vad
            over = len(ring) + len(probs) - ring.maxlen
            if over > 0:
                self._evicted["vad"] += over
            ring.extend((t, instance, fd, start + i * step, step, float(p))
                        for i, p in enumerate(probs))
            self.version += 1

    def log(self, instance: str, level: int, text: str) -> None:
        """Record one guest ``log`` message (text cut at ``caps.log_text``)."""
        if not self.recording:
            return
        t = self.now()
        cut = self.caps.log_text
        shown = text if len(text) <= cut else text[:cut] + "…"
        with self._lock:
            ring = self._logs
            if len(ring) == ring.maxlen:
                self._evicted["log"] += 1
            ring.append((t, instance, level, shown))
            self.version += 1

    def _remember(self, table: dict, key: Any, value: Any) -> None:
        """Store ``table[key] = value``, forgetting the oldest key beyond ``caps.fds``.
        Caller holds the lock."""
        if key not in table and len(table) >= self.caps.fds:
            del table[next(iter(table))]
            self._evicted["fd"] += 1
        table[key] = value

    # -- attaching to hosts ---------------------------------------------------------------

    def attach(self, host: Any) -> None:
        """Record ``host``'s readiness changes, notes and hostcalls (see :mod:`.attach`)."""
        _attach.attach(self, host)

    def detach(self, host: Any) -> None:
        """Undo :meth:`attach` for ``host`` (records already made stay)."""
        _attach.detach(self, host)

    def detach_all(self) -> None:
        """Detach from every host."""
        for host in [a[0] for a in list(self._attached)]:
            self.detach(host)

    # -- export and summary (functions in .export and .summary) ---------------------------

    def records(self, kinds: Iterable[str] = KINDS) -> list[dict[str, Any]]:
        """Every record of the given kinds as flat dicts with a ``kind`` key, by time."""
        return _export.records(self, kinds)

    def to_jsonl(self, path: Any = None, kinds: Iterable[str] = KINDS) -> str:
        """JSON Lines, one record per line; written to ``path`` when given; returns the text."""
        return _export.to_jsonl(self, path, kinds)

    def to_csv(self, path: Any = None, kinds: Iterable[str] = KINDS) -> str:
        """CSV with the union of all record fields as columns; returns the text."""
        return _export.to_csv(self, path, kinds)

    def summary(self) -> dict[str, Any]:
        """Counts and latencies of the whole run (:func:`spear_lab.trace.summary.summary`)."""
        return _summary.summary(self)

    def clear(self) -> None:
        """Forget every record and counter (attachments stay); time restarts at 0."""
        with self._lock:
            for ring in (self._hostcalls, self._readiness, self._queues, self._events,
                         self._logs, self._vad):
                ring.clear()
            self._n_hostcalls = 0
            for d in (self._calls, self._errnos, self._levels, self._created):
                d.clear()
            self._folder.clear()
            self._evicted.update(no_evictions())
            self.start = self.clock()
            self.wall_start = time.time()
            self.version += 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._hostcalls) + len(self._readiness) + len(self._queues) + len(self._events)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records())

    def __repr__(self) -> str:
        state = "recording" if self.recording else "paused"
        with self._lock:
            counts = (len(self._hostcalls), len(self._readiness), len(self._queues),
                      len(self._events), len(self._folder.items))
        return ("<Trace {} hostcalls={} readiness={} queues={} events={} items={}>"
                .format(state, *counts))
