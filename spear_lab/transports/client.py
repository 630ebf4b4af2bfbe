"""The realtime transcription client of one rtasr fd, sans I/O (docs/abi.md §5.4, §6.6).

:class:`RealtimeClient` knows what an OpenAI-style realtime transcription client sends
and what it makes of what it receives; it never touches a socket, a task or a clock of
its own.  A driver (the WebSocket transport) connects, then:

- sends what :meth:`~RealtimeClient.start` returns (the session configuration);
- loops: sends :meth:`~RealtimeClient.next_frames` and then calls
  :meth:`~RealtimeClient.sent`; when it returns no frames, sleeps until
  :func:`commit_delay` or a wake of the fd;
- feeds every frame it receives to :meth:`~RealtimeClient.receive` and applies the
  :class:`Received` answer (an event for the guest, a host-only VAD note, or both);
- on close sends :meth:`~RealtimeClient.close` (flush on close), and turns how the
  connection ended into an :class:`Outcome` with :meth:`~RealtimeClient.closed`.

The client does the protocol's bookkeeping: audio as ``input_audio_buffer.append``
events, control texts verbatim after validation (an invalid one becomes a local
``error`` event for the guest instead), a turn-detection-only update when the fd's
segmentation changes, the audio sent since the last commit (flush on close), and the
client-commit check (:func:`commit_if_due`, also used by the stub).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from ..fds.segmentation import turn_detection
from . import protocol
from .protocol import GA, SessionRequest
from .teardown import close_outcome

if TYPE_CHECKING:
    from websockets.exceptions import ConnectionClosed

    from ..fds.rtasr import RtasrFd

__all__ = ["Outcome", "RealtimeClient", "Received", "commit_delay", "commit_if_due"]

_COMMIT_TYPES = ("input_audio_buffer.commit", "input_audio_buffer.clear")


class Received(NamedTuple):
    """What to do with one received frame: ``event`` goes to the guest (None: keep it
    from the guest), ``vad`` is a host-only VAD note for the table's listeners."""

    event: bytes | None
    vad: dict[str, Any] | None = None


class Outcome(NamedTuple):
    """How the connection ended: ``peer_closed`` (sticky HUP) or a failure, and the
    secret-free ``last_error``."""

    peer_closed: bool
    message: str


def commit_if_due(fd: "RtasrFd") -> bool:
    """Run the client-commit check when its deadline has come (docs/abi.md §6.5);
    True when a commit was queued."""
    deadline = fd.next_commit_deadline()
    return deadline is not None and deadline <= fd.clock() and fd.autoflush_tick()


def commit_delay(fd: "RtasrFd", idle_s: float, floor_s: float = 0.001) -> float:
    """Seconds a driver may sleep before the next client-commit check: until the fd's
    deadline, at most ``idle_s``, at least ``floor_s`` once the deadline has passed."""
    deadline = fd.next_commit_deadline()
    if deadline is None:
        return idle_s
    return min(idle_s, max(floor_s, deadline - fd.clock()))


class RealtimeClient:
    """The protocol state of one fd's realtime session (no I/O).

    ``dialect`` is ``"ga"`` or ``"beta"``; ``vad_probabilities`` asks the server for its
    per-frame speech probabilities (the embedded server's extension): they become host-only
    notes, and reach the guest too only when its own ``include`` lists them.  ``scrub``
    removes a credential from a message.
    """

    def __init__(self, fd: "RtasrFd", config: SessionRequest, dialect: str = GA, *,
                 max_event_bytes: int = protocol.MAX_EVENT_BYTES, vad_probabilities: bool = False,
                 scrub: Callable[[str], str] | None = None) -> None:
        self.dialect = protocol.check_dialect(dialect)
        # The guest's own include asking for the extension sees it; otherwise it is hidden.
        self.hide_vad = vad_probabilities and protocol.VAD_PROBABILITIES not in (config.include or ())
        self.vad_probabilities = vad_probabilities
        if vad_probabilities:
            config = protocol.with_include(config, protocol.VAD_PROBABILITIES)
        self.config = config
        self.max_event_bytes = max_event_bytes
        self.fd = fd
        self._scrub = scrub or (lambda text: text)
        self._seg = None
        self._sent_td: object = None
        self._control_pending = False
        #: Audio bytes sent since the last commit/clear went out (for flush on close).
        self.audio_since_commit = 0

    # -- sending ---------------------------------------------------------------------------

    def start(self) -> list[bytes]:
        """The first frames: the whole session configuration (docs/abi.md §5.4)."""
        self._seg = self.fd.segmentation
        td = turn_detection(self._seg)
        self._sent_td = td
        return [protocol.session_update(self.dialect, self.config, td)]

    def segmentation_changed(self) -> list[bytes]:
        """A turn-detection-only update when the fd's segmentation changed what the server
        was told (docs/abi.md §6.6), else nothing."""
        seg = self.fd.segmentation
        if seg is self._seg:
            return []
        self._seg = seg
        td = turn_detection(seg)
        if td == self._sent_td:
            return []
        self._sent_td = td
        return [protocol.turn_detection_update(self.dialect, td)]

    def next_frames(self) -> list[bytes]:
        """The frames to send next: a segmentation update, then one send item (audio →
        appends, a control text verbatim); ``[]`` when nothing is due.  Call :meth:`sent`
        once they are sent."""
        fd = self.fd
        out = self.segmentation_changed()
        while True:
            item = fd.take_send_item()
            if item is None:
                if commit_if_due(fd):
                    continue
                return out
            if item.audio:
                out.extend(protocol.append_events(item.data, self.max_event_bytes))
                self.audio_since_commit += len(item.data)
                return out
            text = item.data
            if text == protocol.COMMIT or text == protocol.CLEAR:
                kind = "input_audio_buffer.commit"  # either resets the count
            else:
                reason = protocol.invalid_event_reason(text)
                if reason is not None:  # never sent: the guest gets a local error event
                    fd.push_event(protocol.error_event(reason))
                    continue
                kind = protocol.event_type(text)
            out.append(text)
            if kind in _COMMIT_TYPES:
                self.audio_since_commit = 0
            self._control_pending = True
            return out

    def sent(self) -> None:
        """The frames of the last :meth:`next_frames` went out: a sent control text lets a
        later client commit fire again."""
        if self._control_pending:
            self._control_pending = False
            self.fd.control_sent()

    def close(self, flush: bool) -> list[bytes]:
        """The last frames before the close frame: with ``flush``, the audio still queued
        at close (``fd.unsent``), then a commit when audio went out since the last one."""
        if not flush:
            return []
        fd = self.fd
        unsent, fd.unsent = fd.unsent, []
        out: list[bytes] = []
        for item in unsent:
            out.extend(protocol.append_events(item.data, self.max_event_bytes))
            self.audio_since_commit += len(item.data)
        if self.audio_since_commit > 0:
            out.append(protocol.COMMIT)
            self.audio_since_commit = 0
        return out

    # -- receiving ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> Received:
        """What to do with one frame from the server: every frame goes to the guest
        unchanged, except a VAD probability event, which is a host-only note (and goes to
        the guest too only when it asked for the extension itself)."""
        if self.vad_probabilities:
            ev = protocol.host_only_event(data)
            if ev is not None:
                return Received(None if self.hide_vad else data, ev)
        return Received(data)

    def closed(self, exc: "ConnectionClosed") -> Outcome:
        """How a connection that ended with ``exc`` ends the fd (docs/abi.md §5.1)."""
        peer, message = close_outcome(exc)
        return Outcome(peer, self._scrub(message))  # a close reason may echo the credential
