"""The realtime WebSocket transport of an rtasr fd (abi-reference §10).

One :class:`RealtimeWsTransport` per connected fd, running as one task on the host's
I/O loop (with a sender and a receiver task while connected):

1. connect (URL, optional ``Authorization: Bearer``, ``OpenAI-Beta`` for the beta
   dialect) within ``connect_timeout_s``;
2. send one configuration event (:func:`protocol.session_update`);
3. sender: send items taken from the fd (audio → ``input_audio_buffer.append``, control
   texts verbatim), run the client-commit check every 5 ms when idle (fix G15), send a
   turn-detection-only update when the fd's segmentation changes (G30);
4. receiver: every frame goes to the fd unchanged — except, with
   ``vad_probabilities`` (the embedded ``local`` backend), the server's
   ``spear.vad.probabilities`` events: they go to the fd table's listeners as a
   ``"vad"`` note (the Trace, the explorer's tap) and never to the guest (unless its
   own ``include`` asked for them), so the guest sees exactly the OpenAI stream.

Outcomes: a close frame from the peer → :meth:`RtAsrFd.hang_up` (sticky HUP, fix G16);
any other failure → :meth:`RtAsrFd.fail` with a secret-free message; closing the fd →
commit (when ``flush`` and audio went out since the last commit), close frame, and every
task ends (fix G17).  There are no reconnects.

The credential is a :class:`Secret`: it appears only in the handshake request, never in
a repr, a log line, an exception or ``last_error``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.protocol import State

from ..abi.constants import RtasrState
from ..fds.segmentation import CLIENT_COMMIT, turn_detection
from . import protocol
from .protocol import GA, SessionConfig
from .teardown import abort, close_outcome, describe

if TYPE_CHECKING:
    from ..fds.rtasr import RtAsrFd
    from ..runtime.ioloop import IoLoop

log = logging.getLogger(__name__)

#: Idle period of the sender under ``client_commit`` (the autoflush timer, fix G15).
AUTOFLUSH_TICK_S = 0.005
#: Idle period otherwise (a safety net; wake() normally ends the wait at once).
IDLE_WAIT_S = 0.1
#: How long the closing handshake may take before the socket is aborted.
CLOSE_TIMEOUT_S = 2.0
#: Largest frame accepted from the server.
MAX_FRAME_BYTES = 64 * 1024 * 1024
DEFAULT_CONNECT_TIMEOUT_S = 20.0

_COMMIT_TYPES = ("input_audio_buffer.commit", "input_audio_buffer.clear")


class Secret:
    """A credential value that never shows itself (repr, str, pickling)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value, for the handshake request only."""
        return self._value

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of the value replaced by ``***``."""
        return text.replace(self._value, "***") if self._value else text

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("a Secret cannot be pickled")


class _QuietLogger(logging.LoggerAdapter):
    """The websockets client logger without DEBUG: websockets logs every handshake
    header at DEBUG, the ``Authorization`` value included."""

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 (logging API)
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_WIRE_LOG = _QuietLogger(logging.getLogger(__name__ + ".wire"), {})


class _Failure(Exception):
    """A connect-phase failure; ``args[0]`` is the secret-free ``last_error``."""


def is_loopback_url(url: str) -> bool:
    """True for ``ws``/``wss`` URLs whose host is ``localhost``, 127.0.0.0/8 or ``::1``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme.lower() not in ("ws", "wss") or not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RealtimeWsTransport:
    """Carries one rtasr fd over an OpenAI-style realtime WebSocket.

    ``url`` is the session URL or a callable returning it (run in a worker thread at
    connect time, e.g. to start the embedded server).  ``credential`` is sent as a
    Bearer token when given.  ``dialect`` is ``"ga"`` or ``"beta"``.
    ``vad_probabilities`` asks the server for its per-frame speech probabilities
    (the embedded server's extension, see the module docstring).
    """

    name = "websocket"

    def __init__(self, fd: "RtAsrFd", io: "IoLoop", *, url: str | Callable[[], str],
                 config: SessionConfig, backend: str | None = None, dialect: str = GA,
                 credential: Secret | None = None,
                 connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
                 max_event_bytes: int = protocol.MAX_EVENT_BYTES,
                 vad_probabilities: bool = False) -> None:
        self.backend = backend
        self.dialect = protocol.check_dialect(dialect)
        # The guest's own include asking for the extension sees it; otherwise it is hidden.
        self._hide_vad = vad_probabilities and protocol.VAD_PROBABILITIES not in (config.include or ())
        self.vad_probabilities = vad_probabilities
        if vad_probabilities:
            config = protocol.with_include(config, protocol.VAD_PROBABILITIES)
        self.config = config
        self.connect_timeout_s = connect_timeout_s
        self.max_event_bytes = max_event_bytes
        self._fd = fd
        self._io = io
        self._url = url
        self._credential = credential
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future = None
        self._task: asyncio.Task | None = None
        self._ws: ClientConnection | None = None
        self._wake_evt = asyncio.Event()
        self._stop_evt = asyncio.Event()
        self._wake_scheduled = False
        self._flush_on_stop = False
        self._seg = None
        self._sent_td: object = None
        #: Audio bytes sent since the last commit/clear went out (for flush on close).
        self.audio_since_commit = 0
        #: What interrupted a send when the connection ended under it (for last_error).
        self._send_error: BaseException | None = None
        self.phase = "new"

    # -- Transport protocol (called with the table lock held: schedule only) -------------

    def start(self) -> None:
        """Schedule the connection task on the I/O loop."""
        if self._future is not None:
            return
        self._loop = self._io.loop
        self.phase = "connecting"
        self._future = asyncio.run_coroutine_threadsafe(self._main(), self._loop)

    def wake(self) -> None:
        """A send item was queued or the segmentation changed: end the sender's idle wait."""
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

    def __repr__(self) -> str:
        return (f"<RealtimeWsTransport fd={self._fd.fd} backend={self.backend} "
                f"dialect={self.dialect} {self.phase}>")

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
            self.phase = "connected"
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
            self.phase = "closed"
            if not self._stop_evt.is_set():
                self._ensure_outcome()

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
                    unsent, self._fd.unsent = self._fd.unsent, []
                    for item in unsent:
                        for frame in protocol.append_events(item.data, self.max_event_bytes):
                            await ws.send(frame, text=True)
                        self.audio_since_commit += len(item.data)
                if flush and self.audio_since_commit > 0 and ws.state is State.OPEN:
                    await ws.send(protocol.COMMIT, text=True)
                    self.audio_since_commit = 0
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
        fd = self._fd
        try:
            while True:
                data = await ws.recv(decode=False)
                data = data if isinstance(data, bytes) else bytes(data)
                if self.vad_probabilities and self._host_only(data):
                    continue
                fd.push_event(data)
        except ConnectionClosed as exc:
            if self._stop_evt.is_set():
                return
            peer, message = close_outcome(exc)
            message = self._scrub(message)  # a close reason may echo the credential
            if peer:
                log.info("rtasr fd %d: %s", fd.fd, message)
                fd.hang_up(message)
            else:
                self._fail(message)
        except Exception as exc:
            self._fail(f"websocket read failed: {describe(exc)}")

    def _host_only(self, data: bytes) -> bool:
        """Note a VAD probability event for the table's listeners; True when it must
        not reach the guest (it did not ask for the extension itself)."""
        ev = protocol.host_only_event(data)
        if ev is None:
            return False
        fd = self._fd
        with fd.table.lock:
            if fd.table.listeners:
                fd.table.note(fd.fd, "vad", {"audio_start_ms": ev["audio_start_ms"],
                                             "frame_ms": ev["frame_ms"],
                                             "probabilities": ev["probabilities"]})
        return self._hide_vad

    async def _send(self, ws: ClientConnection) -> str:
        """Send the configuration, then fd items until stopped; ``"closed"`` when the
        connection ended under it, ``"failed"`` after a reported send failure."""
        fd = self._fd
        self._seg = fd.segmentation
        td = turn_detection(self._seg)
        try:
            await ws.send(protocol.session_update(self.dialect, self.config, td), text=True)
            self._sent_td = td
            while True:
                self._wake_evt.clear()
                if fd.segmentation is not self._seg:
                    await self._segmentation_changed(ws)
                item = fd.take_send_item()
                if item is None:
                    if fd.autoflush_tick():
                        continue
                    idle = AUTOFLUSH_TICK_S if self._seg.strategy == CLIENT_COMMIT else IDLE_WAIT_S
                    try:
                        async with asyncio.timeout(idle):
                            await self._wake_evt.wait()
                    except TimeoutError:
                        pass
                    continue
                if item.audio:
                    for frame in protocol.append_events(item.data, self.max_event_bytes):
                        await ws.send(frame, text=True)
                    self.audio_since_commit += len(item.data)
                else:
                    await self._send_control(ws, item.data)
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

    async def _segmentation_changed(self, ws: ClientConnection) -> None:
        self._seg = self._fd.segmentation
        td = turn_detection(self._seg)
        if td != self._sent_td:
            await ws.send(protocol.turn_detection_update(self.dialect, td), text=True)
            self._sent_td = td

    async def _send_control(self, ws: ClientConnection, text: bytes) -> None:
        """Send a control text (FLUSH, CLEAR, SEND_EVENT) verbatim, or, when it is not a
        JSON object with a string ``type``, queue a local ``error`` event instead."""
        fd = self._fd
        if text in (protocol.COMMIT, protocol.CLEAR):
            kind = "input_audio_buffer.commit" if text == protocol.COMMIT else "input_audio_buffer.clear"
        else:
            reason = protocol.invalid_event_reason(text)
            if reason is not None:
                fd.push_event(protocol.error_event(reason))
                return
            kind = protocol.event_type(text)
        await ws.send(text, text=True)
        if kind in _COMMIT_TYPES:
            self.audio_since_commit = 0
        fd.control_sent()


async def _settle(tasks: list[asyncio.Task]) -> None:
    """Wait for cancelled tasks to end, even if this task is cancelled meanwhile."""
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    except asyncio.CancelledError:
        await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
        raise

