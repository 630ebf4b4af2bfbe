"""asyncio adapter: the WebSocket server around the sans-I/O protocol core.

:class:`RealtimeServer` accepts ``/v1/realtime`` (also ``/realtime``) with
``?intent=transcription`` or ``?model=…`` (or neither), authenticates, picks the
dialect, and runs one :class:`_Connection` per client: it feeds client messages to
a :class:`~spear_lab.server.protocol.TranscriptionSession`, performs the actions
the session returns (send events, drive the recogniser lane), and applies
recogniser results as they arrive. Recognition runs in worker processes, so a
busy session never stalls another's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .config import DEFAULT_SILENCE_MS
from .engines import EngineSpec, engine_spec
from . import admission
from .keepalive import keepalive
from .events import (AbortStream, CloseConnection, FeedAudio, FinishStream, Ids, OpenStream,
                     RequestPartial, Send, error_event)
from .protocol import TranscriptionSession
from .recognizers import Lane, ProcessRecognizer, Recognizer, Stream
from .vad import resolve_vad

__all__ = ["ServerOptions", "RealtimeServer"]

log = logging.getLogger(__name__)

PATHS = ("/v1/realtime", "/realtime")
INFO_PATH = "/v1/spear/info"
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
"""Largest WebSocket message accepted (a 15 MiB append is about 20 MiB of JSON)."""
BETA_REJECTION = admission.BETA_REJECTION
POLICY_CLOSE_TIMEOUT_S = 5.0
SESSIONS_PER_CORE = 32
"""Default session cap: this many per CPU core (``ServerOptions.max_sessions``)."""
DETERMINISTIC_EPOCH = 1_700_000_000
OFFLOAD_BYTES = 256 * 1024
"""Messages larger than this are parsed and decoded in a worker thread."""
_SECRET_HEADERS = {"authorization", "sec-websocket-protocol", "openai-organization"}


class _RedactSecrets(logging.Filter):
    """Hides credentials in websockets' handshake debug logs ("< Authorization: …")."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], str) \
                and args[0].lower() in _SECRET_HEADERS:
            record.args = (args[0], "[redacted]")
        return True


ws_log = logging.getLogger("spear_lab.server.ws")
"""Logger of the WebSocket layer (handshakes, frames); credentials are redacted."""
ws_log.addFilter(_RedactSecrets())


@dataclass
class ServerOptions:
    """Server settings.

    ``api_key``: if set, clients must send ``Authorization: Bearer <key>`` (or the
    ``openai-insecure-api-key.<key>`` subprotocol). ``require_auth``: ``None`` means
    "only when not bound to loopback" (then ``api_key`` must be set). ``dialect``:
    the shape for clients that send no ``OpenAI-Beta`` header (``ga`` or ``beta``).
    ``strict_ga``: answer beta clients with ``beta_api_shape_disabled`` and close
    4000, as api.openai.com does. ``deterministic``: counter ids, a fixed clock, and
    every client message fully processed (recognition included) before the next.
    ``vad``: the server_vad/semantic_vad frame estimator, ``"silero"``,
    ``"statistical"`` or ``"auto"`` (Silero when onnxruntime and its model file are
    installed, else statistical with a log notice); an explicit ``"silero"`` that
    cannot load makes the server refuse to start
    (:class:`~spear_lab.server.silero.SileroUnavailable`). ``engine``: the recogniser,
    ``"auto"`` (whisper when installed, else pocketsphinx), ``"whisper"``,
    ``"pocketsphinx"`` or an :class:`EngineSpec`; ``whisper_model``: a model name or
    directory for whisper (default: the bundled, hash-verified tiny.en).

    Profiles: by default the server behaves as OpenAI's service does (partial updates
    merge, GA sessions start with ``transcription: null``, the rejections of
    docs/server.md); ``lenient=True`` keeps the older acceptance for legacy clients.
    Bounds: ``max_sessions`` open sessions (default :data:`SESSIONS_PER_CORE` per
    core; past it an ``error`` and close 1013); ``max_backlog`` commits per session
    waiting for recognition (past it ``…transcription.failed``); ``max_outbox_bytes``
    of events queued for one client (past it the client is closed with 1008).
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = field(default=None, repr=False)
    require_auth: bool | None = None
    dialect: str = "ga"
    strict_ga: bool = False
    default_silence_ms: int = DEFAULT_SILENCE_MS
    deterministic: bool = False
    engine: str | EngineSpec = "auto"
    whisper_model: str | None = None
    workers: int | None = None
    recognizer: Recognizer | None = None
    clock: Callable[[], float] | None = None
    vad: str = "auto"
    lenient: bool = False
    max_sessions: int | None = None
    max_backlog: int = 4
    max_outbox_bytes: int = 4 * 1024 * 1024


def _engine_for(opts: ServerOptions) -> tuple[EngineSpec, int | None]:
    """The engine spec and worker count of ``opts``. Whisper defaults to one worker
    process whose CTranslate2 threads use every core (one model in memory, and the
    fastest single decode); its threads are cores / workers when more are asked for."""
    spec = opts.engine if isinstance(opts.engine, EngineSpec) else engine_spec(
        opts.engine, whisper_model=opts.whisper_model)
    workers = opts.workers
    if spec.factory.endswith(":WhisperEngine"):
        workers = workers or 1
        if "cpu_threads" not in spec.kwargs:
            spec = EngineSpec(spec.factory, {**spec.kwargs, "cpu_threads": max(
                1, (os.cpu_count() or 1) // workers)})
    return spec, workers


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RealtimeServer:
    """The local OpenAI-compatible realtime transcription server (one event loop).

    ``await start()`` binds and starts recognition workers; ``await aclose()``
    closes every connection and worker. Raises ``ValueError`` for unsafe settings
    (a non-loopback address without an API key).
    """

    def __init__(self, options: ServerOptions | None = None) -> None:
        self.options = opts = options or ServerOptions()
        if opts.dialect not in ("ga", "beta"):
            raise ValueError(f"dialect must be 'ga' or 'beta', not {opts.dialect!r}")
        need_auth = opts.require_auth if opts.require_auth is not None else not _is_loopback(opts.host)
        if need_auth and not opts.api_key:
            raise ValueError(f"serving on {opts.host} requires an API key (api_key)")
        self._need_auth = bool(opts.api_key) and need_auth
        self.max_sessions = opts.max_sessions or max(8, SESSIONS_PER_CORE * (os.cpu_count() or 1))
        if self.max_sessions < 1 or opts.max_backlog < 1 or opts.max_outbox_bytes < 1024:
            raise ValueError("max_sessions and max_backlog must be >= 1, max_outbox_bytes >= 1024")
        self.vad = resolve_vad(opts.vad)  # before any worker starts: fail early
        self._own_recognizer = opts.recognizer is None
        self.recognizer: Recognizer = opts.recognizer or ProcessRecognizer(*_engine_for(opts))
        self._server: Server | None = None
        self._connections: set[_Connection] = set()
        self._decoder_pool = ThreadPoolExecutor(2, thread_name_prefix="spear-decode")
        self.port: int | None = None

    @property
    def url(self) -> str:
        """``ws://host:port/v1/realtime?intent=transcription`` (after ``start``)."""
        host = self.options.host if ":" not in self.options.host else f"[{self.options.host}]"
        return f"ws://{host}:{self.port}/v1/realtime?intent=transcription"

    async def start(self) -> None:
        await self.recognizer.start()
        self._server = await serve(
            self._handle, self.options.host, self.options.port,
            process_request=self._process_request, select_subprotocol=self._subprotocol,
            max_size=MAX_MESSAGE_BYTES, compression=None, server_header="spear-lab",
            close_timeout=0.5, logger=ws_log,  # loopback peers answer in ms
            ping_interval=None)  # each _Connection runs keepalive() instead (issue 19)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("realtime transcription server listening on %s (VAD: %s)", self.url, self.vad)

    async def wait_ready(self) -> None:
        """Wait until the recogniser has loaded its model."""
        await self.recognizer.wait_ready()

    def info(self) -> dict:
        """What this server runs: recognition engine and model, VAD, workers (JSON-able).
        Also served as ``GET /v1/spear/info``."""
        return {"server": "spear-lab", "recognition": self.recognizer.describe(),
                "vad": self.vad, "dialect": self.options.dialect}

    async def aclose(self) -> None:
        """Close every connection and stop the workers (in parallel): about 2 s at most."""
        server, self._server = self._server, None
        for conn in list(self._connections):
            conn.closing = True  # take no further client messages (a flood would delay us)
        closing = []
        if server is not None:
            server.close()  # stop listening; close connections (close_timeout 0.5 s)
            closing.append(server.wait_closed())
        if self._own_recognizer:
            closing.append(self.recognizer.aclose())  # workers drop queued work at once
        await asyncio.gather(*closing)
        self._decoder_pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ handshake
    @staticmethod
    def _subprotocol(_conn: ServerConnection, offered: list[str]) -> str | None:
        return "realtime" if "realtime" in offered else None

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path.rstrip("/")
        if path == INFO_PATH and not (self._need_auth and not self._authorized(request)):
            return conn.respond(HTTPStatus.OK, json.dumps(self.info()) + "\n")
        if path not in PATHS:
            return conn.respond(HTTPStatus.NOT_FOUND, json.dumps({"error": {
                "message": "Not found: use /v1/realtime", "type": "invalid_request_error",
                "code": "not_found", "param": None}}) + "\n")
        if self._need_auth and self.options.lenient and not self._authorized(request):
            log.info("rejected a connection without a valid API key")
            return conn.respond(HTTPStatus.UNAUTHORIZED, json.dumps({"error": {
                "message": "Incorrect API key provided.", "type": "invalid_request_error",
                "code": "invalid_api_key", "param": None}}) + "\n")
        return None

    def _authorized(self, request: Request) -> bool:
        key = self.options.api_key or ""
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip(), key):
            return True
        for proto in request.headers.get_all("Sec-WebSocket-Protocol"):
            for p in proto.split(","):
                p = p.strip()
                if p.startswith("openai-insecure-api-key.") and hmac.compare_digest(
                        p[len("openai-insecure-api-key."):], key):
                    return True
        return False

    def _key_state(self, request: Request) -> str:
        if not self._need_auth or self._authorized(request):
            return "ok"
        offered = request.headers.get("Authorization") or any(
            "openai-insecure-api-key." in p for p in request.headers.get_all("Sec-WebSocket-Protocol"))
        return "wrong" if offered else "missing"

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path).query)
        beta_header = "realtime=v1" in ws.request.headers.get("OpenAI-Beta", "").replace(" ", "")
        ids = Ids(self.options.deterministic)  # deterministic: counters per session
        opts = self.options
        refused = admission.rejection(
            ids, lenient=opts.lenient, key_state=self._key_state(ws.request),
            beta_header=beta_header, strict_ga=opts.strict_ga, dialect=opts.dialect, query=query,
            sessions=len(self._connections), max_sessions=self.max_sessions)
        if refused is not None:
            log.info("refused a connection: %s", refused.reason)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps(refused.event))
                await ws.close(refused.code, refused.reason)
            return
        dialect = "beta" if beta_header else self.options.dialect
        model = (query.get("model") or [None])[0]
        intent = (query.get("intent") or [None])[0]
        obj = "realtime.session" if (model and intent != "transcription") else \
            "realtime.transcription_session"
        clock = self.options.clock or ((lambda: DETERMINISTIC_EPOCH) if self.options.deterministic
                                       else time.time)
        session = TranscriptionSession(dialect, ids=ids, beta_object=obj, url_model=model,
                                       default_silence_ms=self.options.default_silence_ms,
                                       vad=self.vad, lenient=opts.lenient,
                                       clock=clock)
        conn = _Connection(ws, session, self.recognizer.lane(), self.options.deterministic,
                           self._decoder_pool, opts)
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)


class _Connection:
    """One client: message loop, event sender, recognition results, idle timer.

    Bounded: at most ``max_outbox_bytes`` of serialized events wait for a client
    (past that it is closed with 1008 and nothing more is queued for it), at most
    ``max_backlog`` committed items wait for recognition: while that many wait, the
    client's next message is not read (TCP backpressure paces a client that streams
    faster than real time), and commits that one message adds past the cap fail."""

    def __init__(self, ws: ServerConnection, session: TranscriptionSession, lane: Lane,
                 lockstep: bool, decoder_pool: ThreadPoolExecutor, opts: ServerOptions) -> None:
        self.ws, self.session, self.lane, self.lockstep = ws, session, lane, lockstep
        self.decoder_pool = decoder_pool
        self.opts = opts
        self.outbox: asyncio.Queue[str | tuple | None] = asyncio.Queue()
        self.outbox_bytes = 0
        self.results: asyncio.Queue[tuple[str, Stream | str]] = asyncio.Queue()
        self.backlog = 0  # committed items whose recognition is not applied yet
        self.backlog_fell = asyncio.Event()
        self.streams: dict[str, Stream] = {}
        self.wake = asyncio.Event()
        self.closing = False
        self._closer: asyncio.Task | None = None
        #: Loop time the last client message was taken (the keepalive's sign of life).
        self.last_message = asyncio.get_running_loop().time()

    async def run(self) -> None:
        sid = self.session.session_id
        log.debug("session %s opened (%s)", sid, self.session.dialect)
        tasks = [asyncio.create_task(self._sender(), name=f"spear-send-{sid}"),
                 asyncio.create_task(self._collector(), name=f"spear-results-{sid}"),
                 asyncio.create_task(self._idle_timer(), name=f"spear-idle-{sid}"),
                 asyncio.create_task(keepalive(self.ws, lambda: self.last_message),
                                     name=f"spear-keepalive-{sid}")]
        self._sender_task = tasks[0]
        try:
            self._do(self.session.start())
            loop = asyncio.get_running_loop()
            async for message in self.ws:
                self.last_message = loop.time()
                if self.closing:
                    break
                if isinstance(message, bytes) and not self.opts.lenient:
                    self._send(error_event(self.session.ids, "invalid_event",
                                           "Binary WebSocket messages are not supported: send each "
                                           "client event as a JSON text message."))
                    continue
                if len(message) > OFFLOAD_BYTES:  # decode big appends off the loop
                    prepared = await loop.run_in_executor(self.decoder_pool, self.session.prepare,
                                                          message)
                else:
                    prepared = self.session.prepare(message)
                self._do(self.session.handle(prepared))
                await self.lane.drain()
                while self.backlog >= self.opts.max_backlog and not self.closing:
                    self.backlog_fell.clear()  # read no more until recognition catches up
                    if await self._closed_while(self.backlog_fell.wait()):
                        raise ConnectionClosed(None, None)  # vanished: cancel its work now
                if self.lockstep:
                    await self.lane.sync()
                    await self.results.join()
                self.wake.set()
                await asyncio.sleep(0)  # queued messages must not starve other clients
        except ConnectionClosed:
            pass
        finally:
            self._do(self.session.close())
            self.lane.close()
            self.outbox.put_nowait(None)
            for t in tasks[1:]:
                t.cancel()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(tasks[0]), 1.0)
            tasks[0].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._closer is not None:
                await asyncio.gather(self._closer, return_exceptions=True)
            log.debug("session %s closed", sid)

    async def _closed_while(self, aw) -> bool:
        """Await ``aw`` unless the connection closes first (then True)."""
        waiter = asyncio.ensure_future(aw)
        closed = asyncio.ensure_future(self.ws.wait_closed())
        await asyncio.wait([waiter, closed], return_when=asyncio.FIRST_COMPLETED)
        for t in (waiter, closed):
            t.cancel()
        return closed.done() and not closed.cancelled()

    def _send(self, event: dict) -> None:
        """Queue one event, unless the client is being closed; past the outbox cap,
        close it with 1008 (its queued events are dropped with the connection)."""
        if self.closing:
            return
        data = json.dumps(event, separators=(",", ":"))
        if self.outbox_bytes + len(data) > self.opts.max_outbox_bytes:
            log.warning("session %s: client does not read its events (%d bytes queued); "
                        "closing it", self.session.session_id, self.outbox_bytes)
            self.closing = True
            self._closer = asyncio.ensure_future(self._close(admission.CLOSE_POLICY,
                                                             "client is not reading events"))
            return
        self.outbox_bytes += len(data)
        self.outbox.put_nowait(data)

    async def _close(self, code: int, reason: str) -> None:
        # the close frame waits behind the events already in the socket: give a slow
        # reader a few seconds to reach it (what it holds meanwhile is bounded)
        self.ws.close_timeout = POLICY_CLOSE_TIMEOUT_S
        sender = getattr(self, "_sender_task", None)
        if sender is not None:  # stop it mid-send (a whole frame is already written)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close(code, reason)

    def _do(self, actions: list) -> None:
        """Perform the session's actions, in order."""
        for a in actions:
            if isinstance(a, Send):
                self._send(a.event)
            elif isinstance(a, CloseConnection):
                if not self.closing:
                    self.closing = True
                    self.outbox.put_nowait(("close", a.code, a.reason))
            elif isinstance(a, FeedAudio):
                s = self.streams.get(a.item_id)
                if s is not None:
                    s.feed(a.pcm)
            elif isinstance(a, OpenStream):
                item = a.item_id
                self.streams[item] = self.lane.open(
                    on_partial=lambda text, item=item: self._do(self.session.partial(item, text)),
                    language=a.language, prompt=a.prompt, partials=a.partials)
            elif isinstance(a, RequestPartial):
                if a.item_id in self.streams:
                    self.streams[a.item_id].request_partial()
            elif isinstance(a, FinishStream):
                s = self.streams.pop(a.item_id, None)
                if s is not None:
                    if self.backlog >= self.opts.max_backlog:
                        s.abort()
                        s = (f"transcription backlog full: {self.backlog} earlier items of this "
                             "session are still waiting for recognition")
                    else:
                        s.finish()
                    self.backlog += 1
                    self.results.put_nowait((a.item_id, s))
            elif isinstance(a, AbortStream):
                s = self.streams.pop(a.item_id, None)
                if s is not None:
                    s.abort()

    async def _collector(self) -> None:
        """Apply final recognitions in commit order."""
        while True:
            item_id, stream = await self.results.get()
            try:
                if isinstance(stream, str):  # refused at commit: over the backlog cap
                    self._do(self.session.failed(item_id, stream))
                    continue
                await asyncio.wait([stream.result])
                if stream.result.cancelled():
                    continue
                exc = stream.result.exception()
                if exc is not None:
                    (log.debug if self.closing else log.warning)(
                        "transcription of %s failed: %s", item_id, exc)
                    self._do(self.session.failed(item_id, str(exc)))
                else:
                    self._do(self.session.recognized(item_id, stream.result.result()))
            except Exception:  # noqa: BLE001 - keep collecting the next items
                log.exception("applying the transcription of %s failed", item_id)
            finally:
                self.backlog -= 1
                self.backlog_fell.set()
                self.results.task_done()

    async def _sender(self) -> None:
        while True:
            data = await self.outbox.get()
            if data is None:
                return
            try:
                if isinstance(data, tuple):  # ("close", code, reason) after the events before it
                    await self.ws.close(data[1], data[2])
                    return
                self.outbox_bytes -= len(data)
                await self.ws.send(data)
            except ConnectionClosed:
                return

    async def _idle_timer(self) -> None:
        """Calls ``session.tick`` at the idle deadline (re-read after every message)."""
        while True:
            self.wake.clear()
            deadline = self.session.idle_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
            self._do(self.session.tick())
