"""The dict form of ``Trace.note``: a note's tag and fields instead of a Note object.

Kept for callers that build notes by hand (tests, notebooks).  Queue tags keep whatever
level fields they are given; the others become the matching :mod:`spear_lab.abi.notes`
object.
"""

from __future__ import annotations

from ..abi.notes import EventReceived, Note, RtasrFailed, RtasrHungUp, VadProbabilities

__all__ = ["QUEUE_WHATS", "from_dict"]

#: The queue tags of the dict form, and the kind of fd each comes from.
QUEUE_WHATS = {"rtasr_queues": "rtasr", "mic_queue": "mic"}


def from_dict(what: str, data: dict) -> Note:
    """The note a tag and its fields stand for (the dict form of :meth:`~.core.Trace.note`)."""
    if what == "event":
        return EventReceived(data.get("event", b""))
    if what == "error":
        return RtasrFailed(str(data.get("message", "")))
    if what == "hangup":
        return RtasrHungUp(str(data.get("message", "")))
    if what == "vad":
        return VadProbabilities(data.get("audio_start_ms", 0), data.get("frame_ms", 0),
                                tuple(data.get("probabilities") or ()))
    raise ValueError(f"unknown trace note {what!r}; notes are "
                     f"{sorted([*QUEUE_WHATS, 'event', 'error', 'hangup', 'vad'])}")
