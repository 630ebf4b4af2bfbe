"""The read side of a Trace: its rings as typed records or flat dicts, per-fd facts,
the transcript and the whole-run counters (:class:`TraceReading`, a base of ``Trace``)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ..abi.constants import errno_name
from .records import (EventRecord, HostcallRecord, LogRecord, QueueRecord, ReadinessRecord,
                      Totals, VadRecord, levels_of)
from .transcript import TranscriptFolder, TranscriptItem

__all__ = ["TraceReading"]

_new = tuple.__new__
#: The record class of each ring, and the ring's attribute.
_RECORDS = {"hostcall": HostcallRecord, "readiness": ReadinessRecord, "queue": QueueRecord,
            "event": EventRecord, "log": LogRecord, "vad": VadRecord}
_RINGS = {"hostcall": "_hostcalls", "readiness": "_readiness", "queue": "_queues",
          "event": "_events", "log": "_logs", "vad": "_vad"}


class TraceReading:
    """Readers over the rings and tables that ``Trace`` fills (every copy is taken under
    the trace's lock; what is returned is the caller's to keep)."""

    _lock: threading.Lock
    _hostcalls: deque[tuple]
    _readiness: deque[tuple]
    _queues: deque[tuple]
    _events: deque[tuple]
    _logs: deque[tuple]
    _vad: deque[tuple]
    _folder: TranscriptFolder
    _calls: dict[str, int]
    _errnos: dict[tuple[str, int], int]
    _levels: dict[tuple[str, int], tuple[float, str, Any]]
    _kinds: dict[tuple[str, int], str]
    _created: dict[tuple[str, int], float]
    _evicted_now: Callable[[], dict[str, int]]

    # -- reading --------------------------------------------------------------------------

    def rows(self, kind: str) -> list:
        """A copy of one ring's typed records (:mod:`.records`), oldest first: ``kind`` is
        one of :data:`~.caps.KINDS` except ``transcript`` (see :meth:`transcript`)."""
        cls = _RECORDS.get(kind)
        if cls is None:
            raise ValueError(f"no ring of kind {kind!r}; kinds are {tuple(_RECORDS)}")
        return [_new(cls, r) for r in self._raw(kind)]

    def _raw(self, kind: str) -> list[tuple]:
        """A copy of one ring's plain tuples (the readers' fast path)."""
        ring = getattr(self, _RINGS[kind])
        with self._lock:
            return list(ring)

    def hostcalls(self, instance: str | None = None, name: str | None = None, *,
                  since: float | None = None, last: int | None = None,
                  where: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Hostcall records, oldest first, filtered by instance, hostcall name, calls still
        running at or after ``since`` (s), a predicate ``where`` on the record dict, and
        only the newest ``last`` matches."""
        rows = self._raw("hostcall")
        out: list[dict[str, Any]] = []
        for t, inst, n, args, rc, dur, ret in (reversed(rows) if last is not None else rows):
            if ((instance is not None and inst != instance) or (name is not None and n != name)
                    or (since is not None and t + dur < since)):
                continue
            # HostcallRecord.as_dict, inlined: the hostcall log reads this on every refresh
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
        rows = self._raw("readiness")  # (t, instance, fd, old, new)
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
        return [ReadinessRecord.as_dict(r) for r in rows]

    def queue_levels(self, instance: str | None = None) -> list[dict[str, Any]]:
        """Queue-level samples, oldest first: ``t``, ``instance``, ``fd``, ``what`` and the
        note's fields (byte counts, caps, drop counters)."""
        return self._dicts("queue", QueueRecord, instance)

    def _dicts(self, kind: str, cls: type, instance: str | None) -> list[dict[str, Any]]:
        as_dict = cls.as_dict
        return [as_dict(r) for r in self._raw(kind) if instance is None or r[1] == instance]

    def latest_levels(self) -> dict[tuple[str, int], dict[str, Any]]:
        """The last queue-level sample of every (instance, fd)."""
        with self._lock:
            latest = list(self._levels.items())
        return {k: {"t": t, "what": what, **levels_of(lv)} for k, (t, what, lv) in latest}

    def events(self, instance: str | None = None) -> list[dict[str, Any]]:
        """Transport events (``what`` = event / error / hangup), oldest first."""
        return self._dicts("event", EventRecord, instance)

    def logs(self, instance: str | None = None) -> list[dict[str, Any]]:
        """Guest log messages, oldest first: ``t``, ``instance``, ``level``, ``text``."""
        return self._dicts("log", LogRecord, instance)

    def vad(self, instance: str | None = None, fd: int | None = None) -> list[dict[str, Any]]:
        """Server VAD frames, oldest first: ``t`` (arrival), ``instance``, ``fd``,
        ``audio_ms`` (start of the frame in the session's audio), ``frame_ms`` and
        ``probability`` (of speech, 0..1)."""
        return [d for d in self._dicts("vad", VadRecord, instance) if fd is None or d["fd"] == fd]

    def transcript(self, instance: str | None = None) -> list[TranscriptItem]:
        """Transcript items in order of first appearance (copies safe to keep)."""
        with self._lock:
            return self._folder.transcript(instance)

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
            for ring in (self._hostcalls, self._readiness, self._queues, self._events):
                for row in ring:
                    seen.setdefault(row[1], None)  # instance
        return list(seen)

    def totals(self) -> Totals:
        """The whole-run counters behind :func:`~.summary.summary`, taken at once."""
        with self._lock:
            items = self._folder.items.values()
            calls = list(self._hostcalls)
            tot = Totals(dict(self._calls), dict(self._errnos), {},
                         [levels_of(v[2]) for v in self._levels.values()], self._evicted_now(),
                         len(items), sum(1 for i in items if i.final),
                         sum(1 for e in self._events if e[3] == "event"))  # what
        durs = tot.durations
        for row in calls:  # (t, instance, name, args, rc, dur, out)
            durs.setdefault(row[2], []).append(row[5])
        return tot
