"""Table notes: what an fd tells the table's listeners (the Trace, a replay's tap).

An fd family reports its queue levels and what its transport delivered by calling
``FdTable.note(fd, note)`` with one of these small immutable objects.  Each class names
the kind of fd it comes from (``kind``) and the short tag it is recorded under
(``what``, the ``what`` column of a trace's queue and event records), so no
listener has to guess either from a string.

- :class:`RtasrQueues` — an rtasr fd's send/receive queue levels, caps and dropped events;
- :class:`MicQueue` — a mic fd's frame queue level, cap and dropped frames;
- :class:`EventReceived` — one server event pushed to an rtasr receive queue (raw bytes);
- :class:`RtasrFailed` — the rtasr fd entered ``Error`` (the message is ``last_error``);
- :class:`RtasrHungUp` — the peer closed the connection;
- :class:`VadProbabilities` — the embedded server's per-frame speech probabilities.

Notes are NamedTuples (immutable, cheap to make: one is made per queue change while a
listener is attached).  Sizes are bytes, positions and frame lengths milliseconds of the
session's audio.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Union

from .constants import FdKind

__all__ = ["Note", "QueueNote", "RtasrQueues", "MicQueue", "EventReceived", "RtasrFailed",
           "RtasrHungUp", "VadProbabilities", "NOTE_CLASSES"]


class RtasrQueues(NamedTuple):
    """An rtasr fd's queues: bytes queued to send / received, their caps, events dropped."""

    send_queue_bytes: int
    max_send_queue_bytes: int
    recv_queue_bytes: int
    max_recv_queue_bytes: int
    dropped_events: int
    kind = FdKind.RTASR
    what = "rtasr_queues"

    def levels(self) -> dict[str, Any]:
        """The fields by name (byte counts, caps, drop counter)."""
        return dict(zip(self._fields, self))


class MicQueue(NamedTuple):
    """A mic fd's frame queue: bytes queued, the cap, frames dropped at the cap."""

    queue_bytes: int
    max_queue_bytes: int
    dropped_frames: int
    kind = FdKind.MIC
    what = "mic_queue"

    def levels(self) -> dict[str, Any]:
        """The fields by name (byte counts, cap, drop counter)."""
        return dict(zip(self._fields, self))


class EventReceived(NamedTuple):
    """One server event pushed to an rtasr receive queue: the raw JSON text."""

    event: bytes
    kind = FdKind.RTASR
    what = "event"


class RtasrFailed(NamedTuple):
    """The rtasr fd entered ``Error``; ``message`` is its ``last_error``."""

    message: str
    kind = FdKind.RTASR
    what = "error"


class RtasrHungUp(NamedTuple):
    """The peer closed the rtasr connection; ``message`` says how."""

    message: str
    kind = FdKind.RTASR
    what = "hangup"


class VadProbabilities(NamedTuple):
    """Speech probabilities (0..1) of consecutive ``frame_ms`` frames from
    ``audio_start_ms`` (the embedded server's ``spear.vad.probabilities``)."""

    audio_start_ms: float
    frame_ms: float
    probabilities: tuple[float, ...]
    kind = FdKind.RTASR
    what = "vad"


#: A queue-level note (has ``levels()``).
QueueNote = Union[RtasrQueues, MicQueue]
#: Any table note.  Each class has ``kind`` (the fd's :class:`FdKind`) and ``what`` (its tag).
Note = Union[RtasrQueues, MicQueue, EventReceived, RtasrFailed, RtasrHungUp, VadProbabilities]

#: Every note class by its ``what`` tag.
NOTE_CLASSES: dict[str, type] = {
    cls.what: cls for cls in (RtasrQueues, MicQueue, EventReceived, RtasrFailed, RtasrHungUp,
                              VadProbabilities)
}
