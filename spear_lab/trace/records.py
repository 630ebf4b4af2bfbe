"""The typed records of a Trace, one NamedTuple per ring (``Trace.rows(kind)``).

Times ``t`` are seconds since the trace started; ``instance`` is the guest's name.
Records are tuples (a caller that indexes them keeps working) with named fields, in the
order the rings store them; each has ``as_dict``, the flat dict the Trace's readers and
exports return (written by unpacking, so ``HostcallRecord.as_dict(row)`` also reads a
ring's plain tuple).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..abi.constants import errno_name, mask_names

__all__ = ["HostcallRecord", "ReadinessRecord", "QueueRecord", "EventRecord", "LogRecord",
           "VadRecord", "Record", "Totals", "levels_of"]


class HostcallRecord(NamedTuple):
    """One hostcall: arguments, integer result ``rc``, duration ``dur`` (s), and ``out``,
    an optional short text of what it returned."""

    t: float
    instance: str
    name: str
    args: tuple
    rc: int
    dur: float
    out: str | None

    def as_dict(self) -> dict[str, Any]:
        t, instance, name, args, rc, dur, out = self
        return {"t": t, "instance": instance, "name": name, "args": list(args), "rc": rc,
                "errno": errno_name(rc), "dur": dur, "out": out}


class ReadinessRecord(NamedTuple):
    """An fd's effective readiness mask went from ``old`` to ``new``."""

    t: float
    instance: str
    fd: int
    old: int
    new: int

    def as_dict(self) -> dict[str, Any]:
        t, instance, fd, old, new = self
        return {"t": t, "instance": instance, "fd": fd, "old": old, "new": new,
                "old_names": "|".join(mask_names(old)), "new_names": "|".join(mask_names(new))}


def levels_of(levels: Any) -> dict[str, Any]:
    """A queue note's fields by name (a copy of the dict form's dict)."""
    return dict(levels) if levels.__class__ is dict else levels.levels()


class QueueRecord(NamedTuple):
    """A queue-level sample: ``what`` is the note's tag (``rtasr_queues``, ``mic_queue``),
    ``levels`` the note (:mod:`spear_lab.abi.notes`; a dict when recorded in the dict
    form) with its byte counts, caps and drop counters."""

    t: float
    instance: str
    fd: int
    what: str
    levels: Any

    def as_dict(self) -> dict[str, Any]:
        t, instance, fd, what, levels = self
        return {"t": t, "instance": instance, "fd": fd, "what": what,
                **(levels if levels.__class__ is dict else levels.levels())}


class EventRecord(NamedTuple):
    """A transport event (``what`` = ``event``), an error or a hang-up: its ``type``
    (``"?"`` when not JSON with a type), size in bytes and (cut) text."""

    t: float
    instance: str
    fd: int
    what: str
    type: str
    size: int
    text: str

    def as_dict(self) -> dict[str, Any]:
        t, instance, fd, what, etype, size, text = self
        return {"t": t, "instance": instance, "fd": fd, "what": what, "type": etype,
                "size": size, "text": text}


class LogRecord(NamedTuple):
    """One guest ``log`` message (level as the guest gave it, text cut)."""

    t: float
    instance: str
    level: int
    text: str

    def as_dict(self) -> dict[str, Any]:
        t, instance, level, text = self
        return {"t": t, "instance": instance, "level": level, "text": text}


class VadRecord(NamedTuple):
    """One server VAD frame: arrival ``t``, start ``audio_ms`` and length ``frame_ms`` in
    the session's audio, speech ``probability`` (0..1)."""

    t: float
    instance: str
    fd: int
    audio_ms: float
    frame_ms: float
    probability: float

    def as_dict(self) -> dict[str, Any]:
        t, instance, fd, audio_ms, frame_ms, probability = self
        return {"t": t, "instance": instance, "fd": fd, "audio_ms": audio_ms,
                "frame_ms": frame_ms, "probability": probability}


#: Any ring record.
Record = HostcallRecord | ReadinessRecord | QueueRecord | EventRecord | LogRecord | VadRecord


class Totals(NamedTuple):
    """Whole-run counters of a Trace, taken at one instant (what a summary is made of):
    calls per hostcall name, errno results per ``(name, rc)``, the durations (s) per
    hostcall name of the calls the ring still holds, the last queue levels of every fd,
    evictions per kind, transcript items and completed ones, and received events."""

    calls: dict[str, int]
    errnos: dict[tuple[str, int], int]
    durations: dict[str, list[float]]
    levels: list[dict[str, Any]]
    evicted: dict[str, int]
    items: int
    completed: int
    events: int
