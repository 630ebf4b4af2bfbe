"""The realtime WebSocket transport of an rtasr fd (docs/abi.md §5.4).

One :class:`RealtimeWsTransport` per connected fd, running as one task on the host's
I/O loop (with a sender and a receiver task while connected).  It is a thin driver of
the sans-I/O :class:`~spear_lab.transports.client.RealtimeClient`, which decides what to
send and what a received frame means; this module connects, moves the frames and
applies the outcomes:

1. connect (URL, optional ``Authorization: Bearer``, ``OpenAI-Beta`` for the beta
   dialect) within ``connect_timeout_s``;
2. send one configuration event (:func:`protocol.session_update`);
3. sender: send what the client pulls from the fd (audio → ``input_audio_buffer.append``,
   control texts verbatim, a turn-detection-only update when the fd's segmentation
   changes, docs/abi.md §6.6); when idle, sleep until the fd's client-commit deadline
   (:meth:`RtasrFd.next_commit_deadline`, a fix, docs/abi.md §12) or a wake;
4. receiver: every frame goes to the fd unchanged — except, with
   ``vad_probabilities`` (the embedded ``local`` backend), the server's
   ``spear.vad.probabilities`` events: they go to the fd table's listeners as a
   ``"vad"`` note (the Trace, the explorer's tap) and never to the guest (unless its
   own ``include`` asked for them), so the guest sees exactly the OpenAI stream.

Outcomes: a close frame from the peer → :meth:`RtasrFd.hang_up` (sticky HUP, a fix, docs/abi.md §12);
any other failure → :meth:`RtasrFd.fail` with a secret-free message; closing the fd →
commit (when ``flush`` and audio went out since the last commit), close frame, and every
task ends (a fix, docs/abi.md §12).  There are no reconnects.

The credential is a :class:`Secret`: it appears only in the handshake request, never in
a repr, a log line, an exception or ``last_error``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State

from ..abi.constants import RtasrState
from ..abi.notes import VadProbabilities
from . import protocol
from .client import RealtimeClient, commit_delay
from .protocol import GA, SessionRequest, is_loopback_url
from .secret import Secret
from .teardown import abort, describe

__all__ = ["DEFAULT_CONNECT_TIMEOUT_S", "RealtimeWsTransport", "Secret", "is_loopback_url"]

if TYPE_CHECKING:
    from ..fds.rtasr import RtasrFd
    from ..host.ioloop import IoLoop

log = logging.getLogger(__name__)

#: Longest idle wait of the sender (a safety net: wake() or the commit deadline ends it).
IDLE_WAIT_S = 0.1
#: How long the closing handshake may take before the socket is aborted.
CLOSE_TIMEOUT_S = 2.0
#: Largest frame accepted from the server.
MAX_FRAME_BYTES = 64 * 1024 * 1024
DEFAULT_CONNECT_TIMEOUT_S = 20.0


class _QuietLogger(logging.LoggerAdapter):
    """The websockets client logger without DEBUG: websockets logs every handshake
    header at DEBUG, the ``Authorization`` value included."""

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging API)
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_WIRE_LOG = _QuietLogger(logging.getLogger(__name__ + ".wire"), {})


class _Failure(Exception):
    """A connect-phase failure; ``args[0]`` is the secret-free ``last_error``."""


class RealtimeWsTransport:
    """Carries one rtasr fd over an OpenAI-style realtime WebSocket.

    ``url`` is the session URL or a callable returning it (run in a worker thread at
    connect time, e.g. to start the embedded server).  ``credential`` is sent as a
    Bearer token when given.  ``dialect`` is ``"ga"`` or ``"beta"``.
    ``vad_probabilities`` asks the server for its per-frame speech probabilities
    (the embedded server's extension, see the module docstring).
    """

    name = "websocket"

    def __init__(self, fd: "RtasrFd", io: "IoLoop", *, url: str | Callable[[], str],
                 config: SessionRequest, backend: str | None = None, dialect: str = GA,
                 credential: Secret | None = None,
                 connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
                 max_event_bytes: int = protocol.MAX_EVENT_BYTES,
                 vad_probabilities: bool = False) -> None:
        self.backend = backend
        self._credential = credential
        #: The protocol side (what to send, what a received frame means).
        self.client = RealtimeClient(fd, config, dialect, max_event_bytes=max_event_bytes,
                                     vad_probabilities=vad_probabilities, scrub=self._scrub)
        self.dialect = self.client.dialect
        self.vad_probabilities = vad_probabilities
        self.config = self.client.config
        self.connect_timeout_s = connect_timeout_s
        self.max_event_bytes = max_event_bytes
        self._fd = fd
        self._io = io
        self._url = url
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future = None
        self._task: asyncio.Task | None = None
        self._ws: ClientConnection | None = None
        self._wake_evt = asyncio.Event()
        self._stop_evt = asyncio.Event()
        self._wake_scheduled = False
        self._flush_on_stop = False
        #: What interrupted a send when the connection ended under it (for last_error).
        self._send_error: BaseException | None = None

    # -- Transport protocol (called with the table lock held: schedule only) -------------

    def start(self) -> None:
        """Schedule the connection task on the I/O loop."""
        if self._future is not None:
            return
        self._loop = self._io.loop
        self._future = asyncio.run_coroutine_threadsafe(self._main(), self._loop)

    def wake(self) -> None:
        """Something changed on the fd (an item, the segmentation, the close): end the
        sender's idle wait; a closed fd stops the transport (:meth:`stop`)."""
        loop = self._loop
        if loop is None or self._wake_scheduled:
            return
        self._wake_scheduled = True
        self._call(self._on_wake)

    def stop(self, flush: bool) -> None:
        """The fd closed: commit first when ``flush``, then close; every task ends."""
        self._flush_on_stop = bool(flush)
        self._call(self._on_stop)

    # -- inspection -----------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """True once every task of this transport has ended."""
        return self._future is not None and self._future.done()

    def join(self, timeout: float | None = None) -> bool:
        """Wait (from a thread other than the loop's) until :attr:`finished`."""
        if self._future is None:
            return True
        try:
            self._future.result(timeout)
        except Exception:  # the outcome is on the fd; only completion matters here
            pass
        return self._future.done()

    @property
    def audio_since_commit(self) -> int:
        """Audio bytes sent since the last commit/clear went out (for flush on close)."""
        return self.client.audio_since_commit

    @property
    def _hide_vad(self) -> bool:
        """Whether VAD probability events are kept from the guest (the client decides)."""
        return self.client.hide_vad

    def __repr__(self) -> str:
        state = "finished" if self.finished else self._fd.phase.value
        return (f"<RealtimeWsTransport fd={self._fd.fd} backend={self.backend} "
                f"dialect={self.dialect} {state}>")

    # -- loop-side helpers ------------------------------------------------------------------

    def _call(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn)
        except RuntimeError:  # the loop closed meanwhile: nothing is left to stop
            pass

    def _on_wake(self) -> None:
        self._wake_scheduled = False
        if self._fd.closed:  # flush_on_close is kept on the closed fd
            self._flush_on_stop = self._fd.segmentation.flush_on_close
            self._on_stop()
        else:
            self._wake_evt.set()

    def _on_stop(self) -> None:
        self._stop_evt.set()
        self._wake_evt.set()
        if self._ws is None and self._task is not None and not self._task.done():
            self._task.cancel()  # still connecting: give up at once

    def _scrub(self, text: str) -> str:
        return self._credential.scrub(text) if self._credential is not None else text

    def _fail(self, message: str) -> None:
        message = self._scrub(message)
        log.warning("rtasr fd %d (%s): %s", self._fd.fd, self.backend, message)
        self._fd.fail(message)

    def _ensure_outcome(self) -> None:
        """The connection ended without the fd being told how: never leave it looking
        connected (a guest waiting on it would wait forever)."""
        fd = self._fd
        if not fd.closed and not fd.peer_closed and fd.state is not RtasrState.ERROR:
            self._fail("websocket closed (transport ended unexpectedly"
                       + (f": {describe(self._send_error)})" if self._send_error else ")"))

    # -- the connection ---------------------------------------------------------------------

    async def _main(self) -> None:
        self._task = asyncio.current_task()
        ws: ClientConnection | None = None
        tasks: list[asyncio.Task] = []
        try:
            if self._stop_evt.is_set():
                return
            ws = await self._open()
            self._ws = ws
            self._fd.opened()
            log.info("rtasr fd %d: connected to backend %s (%s dialect)", self._fd.fd, self.backend, self.dialect)
            receiver = asyncio.create_task(self._receive(ws))
            sender = asyncio.create_task(self._send(ws))
            stopper = asyncio.create_task(self._stop_evt.wait())
            tasks = [receiver, sender, stopper]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if self._stop_evt.is_set():
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
                await self._close(ws, flush=self._flush_on_stop)
                await asyncio.gather(receiver, return_exceptions=True)
            elif not receiver.done():
                # The sender ended first: a send failure (already reported) or a closed
                # connection, which the receiver classifies as soon as it notices.
                if sender.result() == "closed":
                    try:
                        await asyncio.wait_for(asyncio.shield(receiver), CLOSE_TIMEOUT_S)
                    except TimeoutError:
                        self._fail("websocket send failed: connection closed"
                                   + (f" ({describe(self._send_error)})" if self._send_error else ""))
        except _Failure as exc:
            self._fail(str(exc))
        except asyncio.CancelledError:
            if not self._stop_evt.is_set():
                raise  # the loop is shutting down
        except Exception as exc:  # a bug or an unexpected library error: report, never crash
            self._fail(f"websocket failed: {describe(exc)}")
        finally:
            for t in tasks:
                t.cancel()
            if tasks:
                await _settle(tasks)
            if ws is not None and ws.state is not State.CLOSED:
                await self._close(ws, flush=False)
            self._ws = None
            if not self._stop_evt.is_set():
                self._ensure_outcome()
            self._fd.transport_ended()

    async def _open(self) -> ClientConnection:
        """Resolve the URL, then complete the handshake within ``connect_timeout_s``, or
        raise :class:`_Failure`.  (Resolving may start the embedded server, which has its
        own deadline: loading a recogniser is not part of the connect timeout.)"""
        timeout = self.connect_timeout_s
        url = self._url
        try:
            if callable(url):
                try:
                    url = await asyncio.get_running_loop().run_in_executor(None, url)
                except Exception as exc:  # the resolver's message says what is missing
                    raise _Failure(self._scrub(str(exc)) or f"backend unavailable: {type(exc).__name__}") from None
            headers = protocol.handshake_headers(
                self.dialect, self._credential.reveal() if self._credential is not None else None)
            loopback = is_loopback_url(url)
            async with asyncio.timeout(timeout):
                # No keepalive pings on loopback: a server that stops reading while its
                # recogniser catches up (backpressure) would time them out (close 1011).
                return await connect(
                    url, additional_headers=headers, proxy=None if loopback else True,
                    ping_interval=None if loopback else 20,
                    max_size=MAX_FRAME_BYTES, compression=None, open_timeout=None,
                    close_timeout=CLOSE_TIMEOUT_S, logger=_WIRE_LOG,
                )
        except TimeoutError:
            raise _Failure(f"websocket connect timed out after {timeout:g} s") from None
        except InvalidStatus as exc:
            raise _Failure(f"websocket connect failed: HTTP {exc.response.status_code} "
                           f"{exc.response.reason_phrase}".rstrip()) from None
        except InvalidURI:
            raise _Failure("invalid ws url") from None
        except InvalidHandshake as exc:
            raise _Failure(f"websocket connect failed: {self._scrub(str(exc))}") from None
        except OSError as exc:
            raise _Failure(f"websocket connect failed: {self._scrub(str(exc)) or type(exc).__name__}") from None
        except (_Failure, asyncio.CancelledError):
            raise
        except Exception as exc:
            reason = self._scrub(str(exc))
            raise _Failure(f"websocket connect failed: {type(exc).__name__}"
                           + (f": {reason}" if reason else "")) from None

    async def _close(self, ws: ClientConnection, flush: bool) -> None:
        """Optional commit, then the closing handshake (aborted after CLOSE_TIMEOUT_S)."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                if flush and ws.state is State.OPEN:
                    for frame in self.client.close(flush):
                        await ws.send(frame, text=True)
                await ws.close()
        except (TimeoutError, ConnectionClosed, OSError):
            pass
        except asyncio.CancelledError:
            abort(ws)
            raise
        except Exception as exc:  # best effort: the outcome is already on the fd
            log.debug("rtasr fd %d: closing the websocket: %s", self._fd.fd, self._scrub(describe(exc)))
        finally:
            if ws.state is not State.CLOSED:
                abort(ws)

    async def _receive(self, ws: ClientConnection) -> None:
        """Queue every frame on the fd unchanged until the connection ends."""
        fd, client = self._fd, self.client
        try:
            while True:
                data = await ws.recv(decode=False)
                received = client.receive(data if isinstance(data, bytes) else bytes(data))
                if received.vad is not None:
                    self._note_vad(received.vad)
                if received.event is not None:
                    fd.push_event(received.event)
        except ConnectionClosed as exc:
            if self._stop_evt.is_set():
                return
            peer, message = client.closed(exc)
            if peer:
                log.info("rtasr fd %d: %s", fd.fd, message)
                fd.hang_up(message)
            else:
                self._fail(message)
        except Exception as exc:
            self._fail(f"websocket read failed: {describe(exc)}")

    def _note_vad(self, ev: dict) -> None:
        """Note a VAD probability event (a host-only frame) for the table's listeners."""
        fd = self._fd
        with fd.table.lock:
            if fd.table.listeners:
                fd.table.note(fd.fd, VadProbabilities(ev["audio_start_ms"], ev["frame_ms"],
                                                      tuple(ev["probabilities"])))

    async def _send(self, ws: ClientConnection) -> str:
        """Send the configuration, then fd items until stopped; ``"closed"`` when the
        connection ended under it, ``"failed"`` after a reported send failure."""
        fd, client, wake = self._fd, self.client, self._wake_evt
        try:
            for frame in client.start():
                await ws.send(frame, text=True)
            while True:
                wake.clear()
                frames = client.next_frames()
                if frames:
                    for frame in frames:
                        await ws.send(frame, text=True)
                    client.sent()
                    continue
                # Idle: until a wake (an item, a segmentation change, a close) or the
                # client-commit deadline, never by polling.
                try:
                    async with asyncio.timeout(commit_delay(fd, IDLE_WAIT_S)):
                        await wake.wait()
                except TimeoutError:
                    pass
        except ConnectionClosed:
            return "closed"
        except Exception as exc:
            if ws.state is not State.OPEN:
                # The connection ended under this send: websockets then aborts the
                # transport, and CPython's asyncio raises AttributeError from abort()
                # when a closing transport has already drained and detached (see
                # agronholm/anyio#1250).  The receiver reports how it really ended.
                self._send_error = exc
                log.debug("rtasr fd %d: send interrupted by the close: %s", fd.fd,
                          self._scrub(describe(exc)))
                return "closed"
            self._fail(f"websocket send failed: {describe(exc)}")
            return "failed"


async def _settle(tasks: list[asyncio.Task]) -> None:
    """Wait for cancelled tasks to end, even if this task is cancelled meanwhile."""
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    except asyncio.CancelledError:
        await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
        raise

