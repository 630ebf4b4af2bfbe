"""asyncio adapter: the WebSocket server around the sans-I/O protocol core.

:class:`RealtimeServer` accepts ``/v1/realtime`` (also ``/realtime``) with
``?intent=transcription`` or ``?model=…`` (or neither), authenticates, picks the
dialect, and runs one :class:`~spear_lab.server.connection.Connection` per client:
it feeds client messages to a
:class:`~spear_lab.server.protocol.TranscriptionSession`, performs the actions
the session returns (send events, drive the recogniser lane), and applies
recogniser results as they arrive. Recognition runs in worker processes, so a
busy session never stalls another's events. Settings: :class:`ServerOptions`
(:mod:`.options`); who may connect: :mod:`.admission`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import admission
from .connection import OFFLOAD_BYTES, POLICY_CLOSE_TIMEOUT_S, Connection  # noqa: F401
from .events import Ids
from .options import SESSIONS_PER_CORE, ServerOptions, engine_for
from .lanes import Recognizer
from .process_recognizer import ProcessRecognizer
from .protocol import TranscriptionSession
from .vad import resolve_vad

__all__ = ["ServerOptions", "RealtimeServer"]

log = logging.getLogger(__name__)

PATHS = ("/v1/realtime", "/realtime")
INFO_PATH = "/v1/spear/info"
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
"""Largest WebSocket message accepted (a 15 MiB append is about 20 MiB of JSON)."""
BETA_REJECTION = admission.BETA_REJECTION
DETERMINISTIC_EPOCH = 1_700_000_000
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
        need_auth = opts.require_auth if opts.require_auth is not None else \
            not admission.is_loopback(opts.host)
        if need_auth and not opts.api_key:
            raise ValueError(f"serving on {opts.host} requires an API key (api_key)")
        self._need_auth = bool(opts.api_key) and need_auth
        self.max_sessions = opts.max_sessions or max(8, SESSIONS_PER_CORE * (os.cpu_count() or 1))
        if self.max_sessions < 1 or opts.max_backlog < 1 or opts.max_outbox_bytes < 1024:
            raise ValueError("max_sessions and max_backlog must be >= 1, max_outbox_bytes >= 1024")
        self.vad = resolve_vad(opts.vad)  # before any worker starts: fail early
        self._own_recognizer = opts.recognizer is None
        self.recognizer: Recognizer = opts.recognizer or ProcessRecognizer(*engine_for(opts))
        self._server: Server | None = None
        self._connections: set[Connection] = set()
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
        return admission.authorized(request.headers, self.options.api_key)

    async def _handle(self, ws: ServerConnection) -> None:
        opts = self.options
        query = parse_qs(urlsplit(ws.request.path).query)
        beta_header = "realtime=v1" in ws.request.headers.get("OpenAI-Beta", "").replace(" ", "")
        ids = Ids(opts.deterministic)  # deterministic: counters per session
        refused = admission.rejection(
            ids, lenient=opts.lenient,
            key_state=admission.key_state(ws.request.headers, opts.api_key, self._need_auth),
            beta_header=beta_header, strict_ga=opts.strict_ga, dialect=opts.dialect, query=query,
            sessions=len(self._connections), max_sessions=self.max_sessions)
        if refused is not None:
            log.info("refused a connection: %s", refused.reason)
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps(refused.event))
                await ws.close(refused.code, refused.reason)
            return
        dialect = "beta" if beta_header else opts.dialect
        model = (query.get("model") or [None])[0]
        intent = (query.get("intent") or [None])[0]
        obj = "realtime.session" if (model and intent != "transcription") else \
            "realtime.transcription_session"
        clock = opts.clock or ((lambda: DETERMINISTIC_EPOCH) if opts.deterministic else time.time)
        session = TranscriptionSession(dialect, ids=ids, beta_object=obj, url_model=model,
                                       default_silence_ms=opts.default_silence_ms,
                                       vad=self.vad, lenient=opts.lenient, clock=clock)
        conn = Connection(ws, session, self.recognizer.lane(), opts.deterministic,
                          self._decoder_pool, opts)
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)
