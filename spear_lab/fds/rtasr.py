"""Realtime-ASR fds, ``rtasr_*`` (docs/abi.md §5): state machine, queues, readiness.

Sans-I/O: audio written by the guest waits in the send queue until a transport takes it;
events a transport receives wait in the receive queue until the guest reads them.

- send queue: all-or-nothing writes; ``-EAGAIN`` when ``send_queue_bytes + n`` exceeds
  ``max_send_queue_bytes``; ``EPOLLOUT`` while strictly below the limit.
- receive queue: one event per read; drop-oldest beyond ``max_recv_queue_bytes``
  (counted in ``dropped_events``); a read into a too-small buffer loses nothing (a fix, docs/abi.md §12).
- errors: state ``Error`` with ``last_error`` and ``EPOLLERR``, writes ``-EIO``; a peer
  close is sticky (``EPOLLHUP``, writes ``-EPIPE``, a fix, docs/abi.md §12).
- host bounds: guest-set queue limits are clamped to the host's ceilings
  (``max_send_cap`` / ``max_recv_cap``); SET_PARAM values are capped in total at
  ``max_param_bytes`` (``-ENOMEM`` beyond); close releases queues, params and transport.
- states: the table of :mod:`.rtasr_machine` (``phase``, internal; ``state`` is what
  GET_STATUS shows); every refused call records ``last_refusal`` (errno and rule).
- transport: chosen and started at CONNECT through the :data:`~.ports.Connector` port,
  told with :meth:`~.ports.Transport.wake` when there is something to look at (an item,
  a segmentation, the close); it sleeps until :meth:`RtasrFd.next_commit_deadline` or a
  wake (no polling), and stops itself once the fd is closed.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, NamedTuple

from ..abi.constants import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, Errno, FdKind, RtasrCtl, RtasrState
from ..abi.fdtable import FdEntry, FdTable
from ..abi.jsonfmt import dumpb, dumps, loads
from ..abi.notes import EventReceived, RtasrFailed, RtasrHungUp, RtasrQueues
from . import rtasr_machine as machine
from .ports import ConnectRefused, Connector, Transport  # noqa: F401 (Connector: re-exported)
from .rtasr_machine import Event, Refusal
from .segmentation import CommitClock, Segmentation, is_silent

DEFAULT_QUEUE_BYTES = 1048576
COMMIT = b'{"type":"input_audio_buffer.commit"}'
CLEAR = b'{"type":"input_audio_buffer.clear"}'

_ERROR = RtasrState.ERROR
#: Internal states of a closed fd (its transport may still be draining).
_GONE = (RtasrState.DRAINING, RtasrState.CLOSED)
#: Host hook ``deliver(payload) -> rc``: copies to the guest; rc >= 0 means delivered.
Deliver = Callable[[bytes], int]


class SendItem(NamedTuple):
    """One send-queue item: an audio chunk (raw pcm16) or a control text (JSON)."""

    audio: bool
    data: bytes


class RtasrFd(FdEntry):
    """One realtime-ASR session fd."""

    kind = FdKind.RTASR
    initial_mask = EPOLLOUT

    def __init__(self, table: FdTable, fd: int, connector: Connector | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 max_send_cap: int | None = None, max_recv_cap: int | None = None,
                 max_param_bytes: int | None = None) -> None:
        super().__init__(table, fd)
        self.connector = connector
        self.clock = clock
        #: Internal state (every state of the table is entered); see :attr:`state`.
        self.phase = RtasrState.INIT
        self._refused: tuple[int, str, tuple] | None = None
        self.params: dict[str, Any] = {}
        #: SET_PARAM payload bytes per key, capped in total by ``max_param_bytes``.
        self.param_bytes: dict[str, int] = {}
        self.max_param_bytes = max_param_bytes
        self.send_queue: deque[SendItem] = deque()
        self.recv_queue: deque[bytes] = deque()
        self.send_queue_bytes = 0
        self.recv_queue_bytes = 0
        self.max_send_cap, self.max_recv_cap = max_send_cap, max_recv_cap
        self.max_send_queue_bytes = self._cap(DEFAULT_QUEUE_BYTES, max_send_cap)
        self.max_recv_queue_bytes = self._cap(DEFAULT_QUEUE_BYTES, max_recv_cap)
        self.dropped_events = 0
        self.last_error: str | None = None
        self.peer_closed = False
        self.segmentation = Segmentation()
        now = clock()
        self.commit_clock = CommitClock(now, now)
        self.transport: Transport | None = None
        #: Audio left in the send queue at close, for a flush_on_close transport.
        self.unsent: list[SendItem] = []
        #: Counters for views and summaries.
        self.events_received = 0
        self.audio_bytes_written = 0
        self.commits = 0

    @staticmethod
    def _cap(value: int, cap: int | None) -> int:
        return value if cap is None else min(value, cap)

    # -- states (docs/abi.md §5.1) -------------------------------------------------------

    @property
    def state(self) -> RtasrState:
        """The state as GET_STATUS shows it (never ``Connecting`` nor ``Draining``)."""
        return machine.shown(self.phase)

    def _step(self, event: Event) -> bool:
        """Apply ``event`` from the transition table; False when it changes nothing."""
        new = machine.next_state(self.phase, event)
        if new is None:
            return False
        self.phase = new
        return True

    def _refuse(self, rc: int, rule: str, *args: Any) -> int:
        """Record that a call was refused with ``rc`` (-errno) for ``rule`` (a template of
        :mod:`.rtasr_machine`, filled with ``args`` when read); returns ``rc``."""
        self._refused = (rc, rule, args)
        return rc

    @property
    def last_refusal(self) -> Refusal | None:
        """The last refused call: its errno and the rule it broke (None before any)."""
        if self._refused is None:
            return None
        rc, rule, args = self._refused
        return Refusal(Errno(-rc), rule % args if args else rule)

    # -- readiness ---------------------------------------------------------------------

    def recompute(self) -> None:
        """Recompute the whole readiness mask (docs/abi.md §3.3, with a fix of §12).  Caller holds the lock."""
        mask = 0
        if self.recv_queue:
            mask |= EPOLLIN
        phase = self.phase
        if phase is _ERROR:
            mask |= EPOLLERR
        elif (not self.peer_closed and phase not in _GONE
              and self.send_queue_bytes < self.max_send_queue_bytes):
            mask |= EPOLLOUT
        if self.peer_closed or phase in _GONE:
            mask |= EPOLLHUP
        self.set_mask(mask)

    # -- hostcalls -----------------------------------------------------------------------

    def _writable(self) -> int:
        """0 when the send side accepts items, else -EIO (Error) or -EPIPE (peer closed)."""
        if self.phase is _ERROR:
            return self._refuse(-Errno.EIO, machine.IN_ERROR, self.last_error)
        if self.peer_closed:
            return self._refuse(-Errno.EPIPE, machine.PEER_CLOSED)
        return 0

    def _fits(self, n: int) -> int:
        """0 when ``n`` more bytes fit the send queue, else -EAGAIN (recorded)."""
        if self.send_queue_bytes + n > self.max_send_queue_bytes:
            return self._refuse(-Errno.EAGAIN, machine.QUEUE_FULL,
                                self.send_queue_bytes, self.max_send_queue_bytes)
        return 0

    def check_write(self, n: int) -> int:
        """What a write of ``n`` bytes would fail with (-EIO / -EPIPE / -EAGAIN), else 0."""
        return self._writable() or (self._fits(n) if n else 0)

    def write(self, data: bytes) -> int:
        """``rtasr_write``: bytes queued, 0 for empty data, or -EIO / -EPIPE / -EAGAIN."""
        rc = self._writable()
        if rc:
            return rc
        n = len(data)
        if n == 0:
            return 0
        if self.send_queue_bytes + n > self.max_send_queue_bytes:
            return self._fits(n)
        self.send_queue.append(SendItem(True, bytes(data)))
        self.send_queue_bytes += n
        self.audio_bytes_written += n
        now = self.clock()
        cc = self.segmentation.client_commit
        silent = cc is not None and cc.silence_ms is not None and is_silent(data)
        self.commit_clock.audio(n, now, silent)
        self._autoflush(now)
        self.recompute()
        self._note_queues()
        self._wake_transport()
        return n

    def read(self, deliver: Deliver) -> int:
        """``rtasr_read``: hand the oldest event to ``deliver``; pop it only if delivered."""
        if not self.recv_queue:
            return -Errno.EAGAIN
        event = self.recv_queue[0]
        rc = deliver(event)
        if rc >= 0:
            self.recv_queue.popleft()
            self.recv_queue_bytes -= len(event)
            self.recompute()
            self._note_queues()
        return rc

    def ctl(self, cmd: int, payload: bytes | None) -> int | bytes:
        """``rtasr_ctl`` after the fd lookup: 0, output JSON bytes, or -errno."""
        if cmd not in RtasrCtl._value2member_map_:
            return self._refuse(-Errno.EINVAL, machine.UNKNOWN_CMD)
        if cmd == RtasrCtl.SET_PARAM:
            return self._set_param(payload)
        if cmd == RtasrCtl.CONNECT:
            return self._connect()
        if cmd == RtasrCtl.GET_STATUS:
            return dumpb(self.status())
        if cmd == RtasrCtl.SEND_EVENT:
            ok, obj = loads(payload)
            if not ok:
                return self._refuse(-Errno.EINVAL, machine.BAD_EVENT)
            return self._queue_control(dumps(obj).encode())
        if cmd == RtasrCtl.FLUSH:
            rc = self._queue_control(COMMIT)
            if rc == 0:
                self.commit_clock.reset(self.clock(), pending=True)
                self.commits += 1
            return rc
        if cmd == RtasrCtl.CLEAR:
            rc = self._queue_control(CLEAR)
            if rc == 0:
                self.commit_clock.reset(self.clock(), pending=False)
            return rc
        if cmd == RtasrCtl.SET_AUTOFLUSH:
            ok, obj = loads(payload)
            seg = Segmentation.parse(obj) if ok else None
            if seg is None:
                return self._refuse(-Errno.EINVAL, machine.BAD_SEGMENTATION)
            self.segmentation = seg
            now = self.clock()
            self.commit_clock = CommitClock(now, now)
            self._wake_transport()
            return 0
        return dumpb(self.segmentation.to_json())  # GET_AUTOFLUSH

    def _set_param(self, payload: bytes | None) -> int:
        ok, obj = loads(payload)
        key = obj.get("key") if ok and isinstance(obj, dict) else None
        if not isinstance(key, str) or not key:
            return self._refuse(-Errno.EINVAL, machine.BAD_PARAM)
        value = obj.get("value")
        size = len(payload or b"")
        if self.max_param_bytes is not None:
            total = sum(self.param_bytes.values()) - self.param_bytes.get(key, 0) + size
            if total > self.max_param_bytes:
                return self._refuse(-Errno.ENOMEM, machine.PARAMS_FULL, self.max_param_bytes)
        self.params[key] = value
        self.param_bytes[key] = size
        self._step(Event.SET_PARAM)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            if key == "max_send_queue_bytes":
                self.max_send_queue_bytes = self._cap(value, self.max_send_cap)
            elif key == "max_recv_queue_bytes":
                self.max_recv_queue_bytes = self._cap(value, self.max_recv_cap)
        self.recompute()
        return 0

    def _connect(self) -> int:
        """CONNECT: Init/Configured → Connecting (shown as Connected); a second CONNECT
        changes nothing; in Error -EIO (no reconnect)."""
        if self.phase is RtasrState.ERROR:
            return self._refuse(-Errno.EIO, machine.IN_ERROR, self.last_error)
        if not self._step(Event.CONNECT):
            return 0  # already connecting or connected
        if self.connector is None:  # no host transport: nothing to wait for
            self._step(Event.OPENED)
            return 0
        try:
            self.transport = self.connector(self)  # chosen and started by the host's edge
        except ConnectRefused as exc:
            self.fail(str(exc))
            return self._refuse(-Errno.EIO, machine.IN_ERROR, self.last_error)
        return 0

    def _queue_control(self, text: bytes) -> int:
        rc = self._writable() or self._fits(len(text))
        if rc:
            return rc
        self.send_queue.append(SendItem(False, text))
        self.send_queue_bytes += len(text)
        self.recompute()
        self._wake_transport()
        return 0

    def status(self) -> dict[str, Any]:
        """The GET_STATUS object: the seven reference keys plus [EXT] ``transport``,
        ``backend`` and ``peer_closed``."""
        t = self.transport
        return {
            "backend": t.backend if t is not None else None,
            "dropped_events": self.dropped_events,
            "last_error": self.last_error,
            "max_recv_queue_bytes": self.max_recv_queue_bytes,
            "max_send_queue_bytes": self.max_send_queue_bytes,
            "peer_closed": self.peer_closed,
            "recv_queue_bytes": self.recv_queue_bytes,
            "send_queue_bytes": self.send_queue_bytes,
            "state": self.state.value,
            "transport": t.name if t is not None else None,
        }

    def on_close(self) -> None:
        transport, self.transport = self.transport, None
        self._step(Event.CLOSE if transport is None else Event.CLOSE_DRAINING)
        # flush_on_close: audio still queued goes out before the final commit.
        flush = self.segmentation.flush_on_close
        self.unsent = [i for i in self.send_queue if i.audio] if flush else []
        self.send_queue.clear()
        self.recv_queue.clear()
        self.send_queue_bytes = self.recv_queue_bytes = 0
        # A closed fd holds nothing the guest gave it (the tombstone keeps its counters).
        self.params = {}
        self.param_bytes = {}
        self.connector = None
        if transport is not None:  # it sees the close: flush (``unsent``), close, end
            transport.wake()

    def _note_queues(self) -> None:
        """Report queue levels to table listeners (the Trace).  Caller holds the lock."""
        if self.table.listeners:
            self.table.note(self.fd, RtasrQueues(
                self.send_queue_bytes, self.max_send_queue_bytes, self.recv_queue_bytes,
                self.max_recv_queue_bytes, self.dropped_events))

    # -- transport side (these take the lock themselves) ---------------------------------

    def _wake_transport(self) -> None:
        if self.transport is not None:
            self.transport.wake()

    def _autoflush(self, now: float) -> bool:
        if not self.commit_clock.due(self.segmentation, now):
            return False
        if self.send_queue_bytes + len(COMMIT) <= self.max_send_queue_bytes:
            self.send_queue.append(SendItem(False, COMMIT))
            self.send_queue_bytes += len(COMMIT)
            self.commits += 1
        self.commit_clock.reset(now, pending=True)
        return True

    def next_commit_deadline(self) -> float | None:
        """When (in :attr:`clock` seconds) the client-commit check fires without another
        write (docs/abi.md §6.5), or None when only a write, FLUSH/CLEAR or a sent control
        text can make it fire.  A transport sleeps until then, then calls
        :meth:`autoflush_tick`."""
        with self.table.lock:
            if self.closed or self.phase is RtasrState.ERROR:
                return None
            return self.commit_clock.next_deadline(self.segmentation)

    def autoflush_tick(self) -> bool:
        """Timer path of the client-commit check (a fix, docs/abi.md §12); True when a commit was queued."""
        with self.table.lock:
            if self.closed or self.phase is RtasrState.ERROR:
                return False
            fired = self._autoflush(self.clock())
            if fired:
                self.recompute()
            return fired

    def take_send_item(self) -> SendItem | None:
        """Remove the oldest send item (counted out at once), or None when empty/closed."""
        with self.table.lock:
            if self.closed or not self.send_queue:
                return None
            item = self.send_queue.popleft()
            self.send_queue_bytes -= len(item.data)
            self.recompute()
            self._note_queues()
            return item

    def control_sent(self) -> None:
        """A control text went out: a later autoflush may fire again."""
        with self.table.lock:
            self.commit_clock.pending_flush = False

    def push_event(self, event: bytes) -> None:
        """Queue one received event; drop the oldest beyond the limit (docs/abi.md §5.3)."""
        with self.table.lock:
            if self.closed:
                return
            self.recv_queue.append(event)
            self.recv_queue_bytes += len(event)
            self.events_received += 1
            while self.recv_queue and self.recv_queue_bytes > self.max_recv_queue_bytes:
                self.recv_queue_bytes -= len(self.recv_queue.popleft())
                self.dropped_events += 1
            self.recompute()
            if self.table.listeners:
                self.table.note(self.fd, EventReceived(event))
                self._note_queues()

    def opened(self) -> None:
        """The transport is moving data: Connecting → Connected (GET_STATUS unchanged)."""
        with self.table.lock:
            self._step(Event.OPENED)

    def transport_ended(self) -> None:
        """Every task of the transport ended: Draining → Closed (nothing else changes)."""
        with self.table.lock:
            self._step(Event.ENDED)

    def fail(self, message: str) -> None:
        """Enter ``Error`` with ``last_error``; EPOLLERR, no more writes."""
        with self.table.lock:
            if self.closed or not self._step(Event.FAILED):
                return
            self.last_error = message
            self.recompute()
            self.table.note(self.fd, RtasrFailed(message))

    def hang_up(self, message: str = "websocket closed by peer") -> None:
        """The peer closed: sticky EPOLLHUP, writes -EPIPE, reads drain (a fix, docs/abi.md §12)."""
        with self.table.lock:
            if self.closed or self.peer_closed:
                return
            self.peer_closed = True
            if self.last_error is None:
                self.last_error = message
            self.recompute()
            self.table.note(self.fd, RtasrHungUp(message))

    def param(self, key: str, default: Any = None) -> Any:
        """A SET_PARAM value (read live by transports)."""
        return self.params.get(key, default)
