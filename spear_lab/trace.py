"""A bounded, timestamped record of what guests and transports did: the Trace.

A :class:`Trace` collects, from any thread:

- **hostcalls** — instance, name, raw arguments, result (with its errno name), start time
  and duration (the wasm glue calls :meth:`Trace.hostcall` while ``recording``);
- **readiness** transitions — per instance, fd and mask (from ``FdTable.observers``);
- **queue levels** — rtasr send/receive queues, mic queues, with caps and drop counters
  (from ``FdTable.listeners``, ``"rtasr_queues"`` / ``"mic_queue"``);
- **transport events** — every event pushed to an rtasr receive queue, errors, hang-ups;
- **transcript items** — OpenAI ``conversation.item.input_audio_transcription.delta`` /
  ``completed`` by ``item_id``, ``input_audio_buffer.speech_started`` / ``speech_stopped``
  / ``committed`` times, and the stub's ``transcription.delta`` / ``completed``.

Times are seconds since the trace started (``time.perf_counter``).  Every kind of record
lives in its own ring buffer (caps in :class:`TraceCaps`); what falls off is counted in
``evicted``.  Counters behind :meth:`Trace.summary` (calls, errno counts) cover the whole
run, not just what the rings still hold.  Views read a Trace and nothing else.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .abi.constants import errno_name, mask_names

__all__ = ["KINDS", "Trace", "TraceCaps", "TranscriptItem"]

#: The record kinds, in export order.
KINDS = ("hostcall", "readiness", "queue", "event", "transcript", "log", "vad")

# Hostcalls that create an fd: their non-negative result is the new fd.
_CREATORS = {"spear_epoll_create": "epoll", "rtasr_create": "rtasr", "mic_create": "mic"}
#: Hostcalls whose result is a value, never an errno (random_i64 is negative half the time).
_VALUE_RESULTS = frozenset({"time_now_ms", "wall_time_s", "random_i64"})
#: Most negative result counted as an errno (Linux: -4095 .. -1).
_MAX_ERRNO = 4095
_TRANSCRIPT_PREFIX = "conversation.item.input_audio_transcription."
_BUFFER_PREFIX = "input_audio_buffer."


@dataclass
class TraceCaps:
    """Ring-buffer sizes: how many records of each kind are kept (the oldest go first).

    Every kind is bounded: a ring per record kind, event and log texts cut at
    ``event_text`` / ``log_text``, per transcript item at most ``deltas_per_item`` delta
    records and ``item_text`` characters, per-fd tables at ``fds`` entries.  With every
    ring full of worst-case records the defaults hold ~136 MB (measured by
    ``bench/bench_trace_memory.py``), whatever a guest or a backend does.  A guest streaming 20 ms frames
    makes about 200 hostcalls a second: 100k hostcalls are the last eight minutes or so.
    What is not kept is counted in :attr:`Trace.evicted` and the summary's
    ``dropped_records``.
    """

    hostcalls: int = 100_000
    readiness: int = 100_000
    queues: int = 50_000
    events: int = 20_000
    transcript_items: int = 2_000
    #: Longest event text kept in an ``event`` record (longer ones are cut, marked "…").
    event_text: int = 512
    #: Deltas kept per transcript item (later ones still grow its text up to ``item_text``).
    deltas_per_item: int = 64
    #: Longest text kept per transcript item (delta text or transcript), characters.
    item_text: int = 8192
    #: Guest log messages kept, and the longest text kept of each.
    logs: int = 10_000
    log_text: int = 1024
    #: Server VAD frames kept (speech probability per frame; 100k = 53 min of 32 ms frames).
    vad: int = 100_000
    #: fds remembered per trace for kinds, creation times and last queue levels.
    fds: int = 10_000


@dataclass
class TranscriptItem:
    """One transcribed turn: its text as it grew and the times that delimit it.

    ``t_*`` are trace times (s); ``audio_start_ms`` / ``audio_end_ms`` are the server's
    positions in the audio stream (``speech_started`` / ``speech_stopped``).
    """

    instance: str
    fd: int
    item_id: str
    seq: int
    previous_item_id: str | None = None
    deltas: list[tuple[float, str]] = field(default_factory=list)
    transcript: str | None = None
    audio_start_ms: int | None = None
    audio_end_ms: int | None = None
    t_speech_started: float | None = None
    t_speech_stopped: float | None = None
    t_committed: float | None = None
    t_completed: float | None = None
    failed: str | None = None
    #: Characters held in ``deltas`` (bounded by ``TraceCaps.item_text``).
    _text_len: int = field(default=0, repr=False, compare=False)

    @property
    def text(self) -> str:
        """The completed transcript, or the deltas so far."""
        if self.transcript is not None:
            return self.transcript
        return "".join(d for _, d in self.deltas)

    @property
    def final(self) -> bool:
        """True once ``completed`` (or ``failed``) arrived."""
        return self.transcript is not None or self.failed is not None

    @property
    def t_first(self) -> float | None:
        """When anything about this item was first seen."""
        times = [t for t in (self.t_speech_started, self.t_speech_stopped, self.t_committed,
                             self.deltas[0][0] if self.deltas else None, self.t_completed)
                 if t is not None]
        return min(times) if times else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance, "fd": self.fd, "item_id": self.item_id, "seq": self.seq,
            "previous_item_id": self.previous_item_id, "text": self.text, "final": self.final,
            "deltas": len(self.deltas), "audio_start_ms": self.audio_start_ms,
            "audio_end_ms": self.audio_end_ms, "t_speech_started": self.t_speech_started,
            "t_speech_stopped": self.t_speech_stopped, "t_committed": self.t_committed,
            "t_first_delta": self.deltas[0][0] if self.deltas else None,
            "t_completed": self.t_completed, "failed": self.failed,
        }


class Trace:
    """The record of one session (see the module docstring).  Thread-safe.

    ``recording`` switches hostcall, readiness, queue and event recording on and off
    (the wasm glue checks it before timing a call).  ``version`` grows with every record,
    so a view can tell cheaply whether anything changed.
    """

    def __init__(self, caps: TraceCaps | None = None, *, recording: bool = True,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.caps = caps or TraceCaps()
        self.recording = recording
        #: Set when the owner (a Session) closed: live views refresh once more and stop.
        self.closed = False
        self.clock = clock
        self.start = clock()
        self.wall_start = time.time()
        self._lock = threading.Lock()
        c = self.caps
        # (t, instance, name, args, rc, dur, out)
        self._hostcalls: deque[tuple] = deque(maxlen=c.hostcalls)
        # (t, instance, fd, old, new)
        self._readiness: deque[tuple] = deque(maxlen=c.readiness)
        # (t, instance, fd, what, data)
        self._queues: deque[tuple] = deque(maxlen=c.queues)
        # (t, instance, fd, what, type, size, text)
        self._events: deque[tuple] = deque(maxlen=c.events)
        self._items: dict[tuple[str, int, str], TranscriptItem] = {}
        # (t, instance, level, text)
        self._logs: deque[tuple] = deque(maxlen=c.logs)
        # (t, instance, fd, audio_ms, frame_ms, probability)
        self._vad: deque[tuple] = deque(maxlen=c.vad)
        self._calls: dict[str, int] = {}
        self._errnos: dict[tuple[str, int], int] = {}
        self._n_hostcalls = 0
        self._levels: dict[tuple[str, int], dict[str, Any]] = {}
        self._kinds: dict[tuple[str, int], str] = {}
        self._created: dict[tuple[str, int], float] = {}
        self._stub_item: dict[tuple[str, int], int] = {}
        self._item_seq = 0
        self._evicted = _no_evictions()
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

    # -- time ----------------------------------------------------------------------------

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

    def note(self, instance: str, fd: int, what: str, data: dict) -> None:
        """Record a table note: queue levels, a received event, an error or a hang-up."""
        if not self.recording:
            return
        t = self.now()
        if what == "vad":
            self._vad_frames(t, instance, fd, data)
            return
        if what == "event":
            self._event(t, instance, fd, data.get("event", b""))
            return
        if what in ("error", "hangup"):
            msg = str(data.get("message", ""))
            cut = self.caps.event_text
            self._append_event(t, instance, fd, what, what, len(msg),
                               msg if len(msg) <= cut else msg[:cut] + "…")
            return
        level = dict(data)
        with self._lock:
            ring = self._queues
            if len(ring) == ring.maxlen:
                self._evicted["queue"] += 1
            ring.append((t, instance, fd, what, level))
            self._remember(self._levels, (instance, fd), {"t": t, "what": what, **level})
            if (instance, fd) not in self._kinds:
                self._remember(self._kinds, (instance, fd), "mic" if what.startswith("mic") else "rtasr")
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
            self._transcript(t, instance, fd, etype, obj)

    def _transcript(self, t: float, instance: str, fd: int, etype: str, obj: dict) -> None:
        """Fold one parsed event into the transcript items."""
        if etype.startswith("transcription."):  # the stub: no item ids, one item per "completed"
            kind = etype[len("transcription."):]
            if kind not in ("delta", "completed"):
                return
            with self._lock:
                n = self._stub_item.get((instance, fd), 0)
                item = self._item(instance, fd, f"stub-{n}")
                text = obj.get("text") if isinstance(obj.get("text"), str) else ""
                if kind == "delta":
                    self._add_delta(item, t, text)
                else:
                    item.transcript = self._cut(text)
                    item.t_completed = t
                    self._remember(self._stub_item, (instance, fd), n + 1)
                self.version += 1
            return
        item_id = obj.get("item_id")
        if not isinstance(item_id, str):
            return
        with self._lock:
            if etype.startswith(_TRANSCRIPT_PREFIX):
                kind = etype[len(_TRANSCRIPT_PREFIX):]
                item = self._item(instance, fd, item_id)
                if kind == "delta":
                    delta = obj.get("delta")
                    self._add_delta(item, t, delta if isinstance(delta, str) else "")
                elif kind == "completed":
                    tr = obj.get("transcript")
                    item.transcript = self._cut(tr) if isinstance(tr, str) else ""
                    item.t_completed = t
                elif kind == "failed":
                    err = obj.get("error")
                    item.failed = self._cut(str(err.get("message") if isinstance(err, dict) else err))
                    item.t_completed = t
                else:
                    return
            elif etype.startswith(_BUFFER_PREFIX):
                kind = etype[len(_BUFFER_PREFIX):]
                if kind not in ("speech_started", "speech_stopped", "committed"):
                    return
                item = self._item(instance, fd, item_id)
                if kind == "speech_started":
                    item.t_speech_started = t
                    ms = obj.get("audio_start_ms")
                    item.audio_start_ms = ms if isinstance(ms, int) else None
                elif kind == "speech_stopped":
                    item.t_speech_stopped = t
                    ms = obj.get("audio_end_ms")
                    item.audio_end_ms = ms if isinstance(ms, int) else None
                else:
                    item.t_committed = t
                    prev = obj.get("previous_item_id")
                    item.previous_item_id = prev if isinstance(prev, str) else None
            else:
                return
            self.version += 1

    def _cut(self, text: str) -> str:
        """``text`` cut to ``caps.item_text`` characters."""
        cap = self.caps.item_text
        return text if len(text) <= cap else text[:cap]

    def _add_delta(self, item: TranscriptItem, t: float, text: str) -> None:
        """Append a delta within the item's caps; what does not fit is counted in
        ``evicted["delta"]``.  Caller holds the lock."""
        caps = self.caps
        if len(item.deltas) >= caps.deltas_per_item:
            self._evicted["delta"] += 1
            if len(item.deltas[-1][1]) + len(text) > caps.item_text:
                return
            t_last, last = item.deltas[-1]  # keep the text growing in the last record
            item.deltas[-1] = (t_last, last + text)
            return
        room = caps.item_text - item._text_len
        if room <= 0:
            self._evicted["delta"] += 1
            return
        piece = text if len(text) <= room else text[:room]
        item.deltas.append((t, piece))
        item._text_len += len(piece)

    def _remember(self, table: dict, key: Any, value: Any) -> None:
        """Store ``table[key] = value``, forgetting the oldest key beyond ``caps.fds``.
        Caller holds the lock."""
        if key not in table and len(table) >= self.caps.fds:
            del table[next(iter(table))]
            self._evicted["fd"] += 1
        table[key] = value

    # -- server VAD -----------------------------------------------------------------------

    def _vad_frames(self, t: float, instance: str, fd: int, data: dict) -> None:
        """Fold a ``"vad"`` note (the embedded server's ``spear.vad.probabilities``:
        ``audio_start_ms``, ``frame_ms``, ``probabilities``) into one record per frame."""
        start, step = float(data.get("audio_start_ms", 0)), float(data.get("frame_ms", 0))
        probs = data.get("probabilities") or ()
        with self._lock:
            ring = self._vad
            over = len(ring) + len(probs) - ring.maxlen
            if over > 0:
                self._evicted["vad"] += over
            ring.extend((t, instance, fd, start + i * step, step, float(p))
                        for i, p in enumerate(probs))
            self.version += 1

    def vad(self, instance: str | None = None, fd: int | None = None) -> list[dict[str, Any]]:
        """Server VAD frames, oldest first: ``t`` (arrival), ``instance``, ``fd``,
        ``audio_ms`` (start of the frame in the session's audio), ``frame_ms`` and
        ``probability`` (of speech, 0..1)."""
        with self._lock:
            rows = list(self._vad)
        return [{"t": t, "instance": inst, "fd": f, "audio_ms": ms, "frame_ms": step,
                 "probability": p} for t, inst, f, ms, step, p in rows
                if (instance is None or inst == instance) and (fd is None or f == fd)]

    # -- guest log ------------------------------------------------------------------------

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

    def logs(self, instance: str | None = None) -> list[dict[str, Any]]:
        """Guest log messages, oldest first: ``t``, ``instance``, ``level``, ``text``."""
        with self._lock:
            rows = list(self._logs)
        return [{"t": t, "instance": inst, "level": level, "text": text}
                for t, inst, level, text in rows if instance is None or inst == instance]

    def _item(self, instance: str, fd: int, item_id: str) -> TranscriptItem:
        """The item for ``item_id``, created (and the oldest evicted) on first sight.
        Caller holds the lock."""
        key = (instance, fd, item_id)
        item = self._items.get(key)
        if item is None:
            if len(self._items) >= self.caps.transcript_items:
                del self._items[next(iter(self._items))]
                self._evicted["transcript"] += 1
            self._item_seq += 1
            item = self._items[key] = TranscriptItem(instance, fd, item_id, self._item_seq)
        return item

    # -- attaching to hosts ---------------------------------------------------------------

    def attach(self, host: Any) -> None:
        """Record ``host``'s readiness changes and notes, and its hostcalls.

        Adds an observer and a listener to ``host.table`` and, when the host's shared
        context has no trace yet, makes this one its trace (the wasm glue of every fork
        then records hostcalls here).  Attach each fork's table separately (the Session
        does so for every guest).  Attaching twice is a no-op.
        """
        if any(h is host for h, _, _ in self._attached):
            return
        instance = host.name
        table = host.table

        def observer(fd: int, old: int, new: int) -> None:
            self.readiness(instance, fd, old, new)

        def listener(fd: int, what: str, data: dict) -> None:
            self.note(instance, fd, what, data)

        with table.lock:
            table.observers.append(observer)
            table.listeners.append(listener)
        ctx = getattr(host, "context", None)
        if ctx is not None and getattr(ctx, "trace", None) is None:
            ctx.trace = self
        with self._lock:
            self._attached.append((host, observer, listener))

    def detach(self, host: Any) -> None:
        """Undo :meth:`attach` for ``host`` (records already made stay)."""
        with self._lock:
            found = [a for a in self._attached if a[0] is host]
            self._attached = [a for a in self._attached if a[0] is not host]
        for h, observer, listener in found:
            with h.table.lock:
                if observer in h.table.observers:
                    h.table.observers.remove(observer)
                if listener in h.table.listeners:
                    h.table.listeners.remove(listener)
            ctx = getattr(h, "context", None)
            if ctx is not None and getattr(ctx, "trace", None) is self and not any(
                    getattr(a[0], "context", None) is ctx for a in self._attached):
                ctx.trace = None

    def detach_all(self) -> None:
        """Detach from every host."""
        for host in [a[0] for a in list(self._attached)]:
            self.detach(host)

    # -- reading --------------------------------------------------------------------------

    def hostcalls(self, instance: str | None = None, name: str | None = None, *,
                  since: float | None = None, last: int | None = None,
                  where: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Hostcall records, oldest first, filtered by instance, hostcall name, calls still
        running at or after ``since`` (s), a predicate ``where`` on the record dict, and
        only the newest ``last`` matches."""
        with self._lock:
            rows = list(self._hostcalls)
        out: list[dict[str, Any]] = []
        for t, inst, n, args, rc, dur, ret in (reversed(rows) if last is not None else rows):
            if ((instance is not None and inst != instance) or (name is not None and n != name)
                    or (since is not None and t + dur < since)):
                continue
            rec = {"t": t, "instance": inst, "name": n, "args": list(args), "rc": rc,
                   "errno": errno_name(rc), "dur": dur, "out": ret}
            if where is not None and not where(rec):
                continue
            out.append(rec)
            if last is not None and len(out) >= last:
                break
        if last is not None:
            out.reverse()
        return out

    def readiness_changes(self, instance: str | None = None, *,
                          since: float | None = None) -> list[dict[str, Any]]:
        """Readiness transitions, oldest first, with bit names.

        With ``since`` (s): the transitions at or after it, preceded by the last earlier
        one of each fd (so the state at ``since`` is known).
        """
        with self._lock:
            rows = list(self._readiness)
        if instance is not None:
            rows = [r for r in rows if r[1] == instance]
        if since is not None:
            before: dict[tuple[str, int], tuple] = {}
            after = []
            for r in rows:
                if r[0] < since:
                    before[(r[1], r[2])] = r
                else:
                    after.append(r)
            rows = sorted(before.values()) + after
        return [
            {"t": t, "instance": inst, "fd": fd, "old": old, "new": new,
             "old_names": "|".join(mask_names(old)), "new_names": "|".join(mask_names(new))}
            for t, inst, fd, old, new in rows
        ]

    def queue_levels(self, instance: str | None = None) -> list[dict[str, Any]]:
        """Queue-level samples, oldest first: ``t``, ``instance``, ``fd``, ``what`` and the
        note's fields (byte counts, caps, drop counters)."""
        with self._lock:
            rows = list(self._queues)
        return [{"t": t, "instance": inst, "fd": fd, "what": what, **data}
                for t, inst, fd, what, data in rows if instance is None or inst == instance]

    def latest_levels(self) -> dict[tuple[str, int], dict[str, Any]]:
        """The last queue-level sample of every (instance, fd)."""
        with self._lock:
            return {k: dict(v) for k, v in self._levels.items()}

    def events(self, instance: str | None = None) -> list[dict[str, Any]]:
        """Transport events (``what`` = event / error / hangup), oldest first."""
        with self._lock:
            rows = list(self._events)
        return [{"t": t, "instance": inst, "fd": fd, "what": what, "type": et, "size": size,
                 "text": text}
                for t, inst, fd, what, et, size, text in rows if instance is None or inst == instance]

    def transcript(self, instance: str | None = None) -> list[TranscriptItem]:
        """Transcript items in order of first appearance (copies safe to keep)."""
        with self._lock:
            items = [TranscriptItem(**{**i.__dict__, "deltas": list(i.deltas)})
                     for i in self._items.values() if instance is None or i.instance == instance]
        return sorted(items, key=lambda i: i.seq)

    def transcript_text(self, instance: str | None = None, final_only: bool = True) -> list[str]:
        """The text of every (completed) transcript item, in order."""
        return [i.text for i in self.transcript(instance) if i.final or not final_only]

    def fd_kind(self, instance: str, fd: int) -> str | None:
        """``"epoll"``, ``"rtasr"`` or ``"mic"`` when known from a create call or a note."""
        return self._kinds.get((instance, fd))

    def fd_created(self, instance: str, fd: int) -> float | None:
        """Trace time of the create hostcall that returned ``fd``, when recorded."""
        return self._created.get((instance, fd))

    def instances(self) -> list[str]:
        """Every instance name seen, in order of first appearance."""
        seen: dict[str, None] = {}
        with self._lock:
            for row in self._hostcalls:
                seen.setdefault(row[1], None)
            for ring in (self._readiness, self._queues, self._events):
                for row in ring:
                    seen.setdefault(row[1], None)
        return list(seen)

    def records(self, kinds: Iterable[str] = KINDS) -> list[dict[str, Any]]:
        """Every record of the given kinds as flat dicts with a ``kind`` key, by time."""
        out: list[dict[str, Any]] = []
        kinds = set(kinds)
        unknown = kinds - set(KINDS)
        if unknown:
            raise ValueError(f"unknown record kinds {sorted(unknown)}; kinds are {KINDS}")
        if "hostcall" in kinds:
            out += [{"kind": "hostcall", **r} for r in self.hostcalls()]
        if "readiness" in kinds:
            out += [{"kind": "readiness", **r} for r in self.readiness_changes()]
        if "queue" in kinds:
            out += [{"kind": "queue", **r} for r in self.queue_levels()]
        if "event" in kinds:
            out += [{"kind": "event", **r} for r in self.events()]
        if "transcript" in kinds:
            out += [{"kind": "transcript", "t": i.t_first if i.t_first is not None else 0.0,
                     **i.as_dict()} for i in self.transcript()]
        if "log" in kinds:
            out += [{"kind": "log", **r} for r in self.logs()]
        if "vad" in kinds:
            out += [{"kind": "vad", **r} for r in self.vad()]
        out.sort(key=lambda r: r["t"])
        return out

    # -- export ---------------------------------------------------------------------------

    def to_jsonl(self, path: str | os.PathLike[str] | None = None,
                 kinds: Iterable[str] = KINDS) -> str:
        """JSON Lines, one record per line; written to ``path`` when given; returns the text."""
        text = "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n"
                       for r in self.records(kinds))
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        return text

    def to_csv(self, path: str | os.PathLike[str] | None = None,
               kinds: Iterable[str] = KINDS) -> str:
        """CSV with the union of all record fields as columns; returns the text."""
        rows = self.records(kinds)
        columns: dict[str, None] = {"kind": None, "t": None}
        for r in rows:
            for k in r:
                columns.setdefault(k, None)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict))
                                 else v) for k, v in r.items()})
        text = buf.getvalue()
        if path is not None:
            with open(path, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
        return text

    # -- summary --------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts and latencies of the whole run.

        ``hostcalls``: per hostcall ``calls`` and ``errors`` (errno name → count) over the
        whole run, and ``p50_us`` / ``p95_us`` / ``max_us`` durations of the calls the ring
        still holds; ``errno``: totals per errno name; ``drops``:
        receive-queue events and mic frames dropped (last reported counters, summed over
        fds), ``rtasr_write`` calls refused with ``-EAGAIN``, and trace records evicted
        from the rings.
        """
        with self._lock:
            calls = dict(self._calls)
            raw_errnos = dict(self._errnos)
            rows = list(self._hostcalls)
            levels = [dict(v) for v in self._levels.values()]
            evicted = self._evicted_now()
            n_items = len(self._items)
            n_final = sum(1 for i in self._items.values() if i.final)
            n_events = sum(1 for e in self._events if e[3] == "event")
        errnos: dict[str, dict[str, int]] = {}
        for (name, rc), n in raw_errnos.items():
            per = errnos.setdefault(name, {})
            per[errno_name(rc)] = per.get(errno_name(rc), 0) + n
        durs: dict[str, list[float]] = {}
        for row in rows:
            durs.setdefault(row[2], []).append(row[5])
        per: dict[str, Any] = {}
        totals: dict[str, int] = {}
        for name in sorted(calls):
            d = sorted(durs.get(name) or [0.0])
            per[name] = {
                "calls": calls[name],
                "errors": errnos.get(name, {}),
                "p50_us": round(_quantile(d, 0.50) * 1e6, 2),
                "p95_us": round(_quantile(d, 0.95) * 1e6, 2),
                "max_us": round(d[-1] * 1e6, 2),
            }
            for k, v in errnos.get(name, {}).items():
                totals[k] = totals.get(k, 0) + v
        return {
            "duration_s": round(self.now(), 6),
            "hostcalls": per,
            "errno": totals,
            "drops": {
                "dropped_events": sum(int(lv.get("dropped_events", 0) or 0) for lv in levels),
                "dropped_frames": sum(int(lv.get("dropped_frames", 0) or 0) for lv in levels),
                "eagain_writes": errnos.get("rtasr_write", {}).get("-EAGAIN", 0),
                "evicted": evicted,
            },
            "dropped_records": sum(evicted.values()),
            "events": n_events,
            "transcript": {"items": n_items, "completed": n_final},
        }

    def clear(self) -> None:
        """Forget every record and counter (attachments stay); time restarts at 0."""
        with self._lock:
            for ring in (self._hostcalls, self._readiness, self._queues, self._events):
                ring.clear()
            self._n_hostcalls = 0
            for d in (self._items, self._calls, self._errnos, self._levels,
                      self._created, self._stub_item):
                d.clear()
            self._logs.clear()
            self._vad.clear()
            self._evicted = _no_evictions()
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
                      len(self._events), len(self._items))
        return ("<Trace {} hostcalls={} readiness={} queues={} events={} items={}>"
                .format(state, *counts))

    def _repr_html_(self) -> str:
        from .views.html import trace_html

        return trace_html(self)


def _no_evictions() -> dict[str, int]:
    """Zeroed eviction counters: one per record kind, plus ``delta`` (transcript deltas
    not kept) and ``fd`` (fds forgotten)."""
    return {**{k: 0 for k in KINDS}, "delta": 0, "fd": 0}


def _quantile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile of a sorted list (nearest rank)."""
    if not sorted_values:
        return 0.0
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]
