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
from .engines import DEFAULT_ENGINE, EngineSpec
from .events import (AbortStream, FeedAudio, FinishStream, Ids, OpenStream,
                     RequestPartial, Send, error_event)
from .protocol import TranscriptionSession
from .recognizers import Lane, ProcessRecognizer, Recognizer, Stream

__all__ = ["ServerOptions", "RealtimeServer"]

log = logging.getLogger(__name__)

PATHS = ("/v1/realtime", "/realtime")
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
"""Largest WebSocket message accepted (a 15 MiB append is about 20 MiB of JSON)."""
BETA_REJECTION = ("The Realtime Beta API is no longer supported. Please use /v1/realtime "
                  "for the GA API.")
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
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = field(default=None, repr=False)
    require_auth: bool | None = None
    dialect: str = "ga"
    strict_ga: bool = False
    default_silence_ms: int = DEFAULT_SILENCE_MS
    deterministic: bool = False
    engine: EngineSpec = DEFAULT_ENGINE
    workers: int | None = None
    recognizer: Recognizer | None = None
    clock: Callable[[], float] | None = None


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
        self._own_recognizer = opts.recognizer is None
        self.recognizer: Recognizer = opts.recognizer or ProcessRecognizer(opts.engine, opts.workers)
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
            close_timeout=2.0, logger=ws_log)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("realtime transcription server listening on %s", self.url)

    async def wait_ready(self) -> None:
        """Wait until the recogniser has loaded its model."""
        await self.recognizer.wait_ready()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._own_recognizer:
            await self.recognizer.aclose()
        self._decoder_pool.shutdown(wait=True)  # idle by now: connections are closed

    # ------------------------------------------------------------------ handshake
    @staticmethod
    def _subprotocol(_conn: ServerConnection, offered: list[str]) -> str | None:
        return "realtime" if "realtime" in offered else None

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path.rstrip("/") not in PATHS:
            return conn.respond(HTTPStatus.NOT_FOUND, json.dumps({"error": {
                "message": "Not found: use /v1/realtime", "type": "invalid_request_error",
                "code": "not_found", "param": None}}) + "\n")
        if self._need_auth and not self._authorized(request):
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

    async def _handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path).query)
        beta_header = "realtime=v1" in ws.request.headers.get("OpenAI-Beta", "").replace(" ", "")
        ids = Ids(self.options.deterministic)  # deterministic: counters per session
        if beta_header and self.options.strict_ga:
            await ws.send(json.dumps(error_event(ids, "beta_api_shape_disabled", BETA_REJECTION)))
            await ws.close(4000, "beta_api_shape_disabled")
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
                                       clock=clock)
        conn = _Connection(ws, session, self.recognizer.lane(), self.options.deterministic,
                           self._decoder_pool)
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)


class _Connection:
    """One client: message loop, event sender, recognition results, idle timer."""

    def __init__(self, ws: ServerConnection, session: TranscriptionSession, lane: Lane,
                 lockstep: bool, decoder_pool: ThreadPoolExecutor) -> None:
        self.ws, self.session, self.lane, self.lockstep = ws, session, lane, lockstep
        self.decoder_pool = decoder_pool
        self.outbox: asyncio.Queue[dict | None] = asyncio.Queue()
        self.results: asyncio.Queue[tuple[str, Stream] | None] = asyncio.Queue()
        self.streams: dict[str, Stream] = {}
        self.wake = asyncio.Event()

    async def run(self) -> None:
        sid = self.session.session_id
        log.debug("session %s opened (%s)", sid, self.session.dialect)
        tasks = [asyncio.create_task(self._sender(), name=f"spear-send-{sid}"),
                 asyncio.create_task(self._collector(), name=f"spear-results-{sid}"),
                 asyncio.create_task(self._idle_timer(), name=f"spear-idle-{sid}")]
        try:
            self._do(self.session.start())
            loop = asyncio.get_running_loop()
            async for message in self.ws:
                if len(message) > OFFLOAD_BYTES:  # decode big appends off the loop
                    prepared = await loop.run_in_executor(self.decoder_pool, self.session.prepare,
                                                          message)
                else:
                    prepared = self.session.prepare(message)
                self._do(self.session.handle(prepared))
                await self.lane.drain()
                if self.lockstep:
                    await self.lane.sync()
                    await self.results.join()
                self.wake.set()
        except ConnectionClosed:
            pass
        finally:
            self._do(self.session.close())
            self.lane.close()
            self.outbox.put_nowait(None)
            for t in tasks[1:]:
                t.cancel()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(tasks[0]), 5.0)
            tasks[0].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            log.debug("session %s closed", sid)

    def _do(self, actions: list) -> None:
        """Perform the session's actions, in order."""
        for a in actions:
            if isinstance(a, Send):
                self.outbox.put_nowait(a.event)
            elif isinstance(a, FeedAudio):
                s = self.streams.get(a.item_id)
                if s is not None:
                    s.feed(a.pcm)
            elif isinstance(a, OpenStream):
                item = a.item_id
                self.streams[item] = self.lane.open(
                    on_partial=lambda text, item=item: self._do(self.session.partial(item, text)),
                    language=a.language, prompt=a.prompt)
            elif isinstance(a, RequestPartial):
                if a.item_id in self.streams:
                    self.streams[a.item_id].request_partial()
            elif isinstance(a, FinishStream):
                s = self.streams.pop(a.item_id, None)
                if s is not None:
                    s.finish()
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
                await asyncio.wait([stream.result])
                if stream.result.cancelled():
                    continue
                exc = stream.result.exception()
                if exc is not None:
                    log.warning("transcription of %s failed: %s", item_id, exc)
                    self._do(self.session.failed(item_id, str(exc)))
                else:
                    self._do(self.session.recognized(item_id, stream.result.result()))
            except Exception:  # noqa: BLE001 - keep collecting the next items
                log.exception("applying the transcription of %s failed", item_id)
            finally:
                self.results.task_done()

    async def _sender(self) -> None:
        while True:
            event = await self.outbox.get()
            if event is None:
                return
            try:
                await self.ws.send(json.dumps(event, separators=(",", ":")))
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
