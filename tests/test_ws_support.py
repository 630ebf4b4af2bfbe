"""Helpers for the WebSocket transport tests (no tests here).

:class:`RealtimeTestServer` is a small real ``websockets`` server on loopback, running on
its own :class:`IoLoop` so that the host's loop holds only the transport's tasks.  It
records every connection (path, headers, frames received, how it closed) and lets a
test send frames, close with a code, stop reading, or abort the TCP connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Awaitable, Callable

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from spear_lab.abi.constants import RtasrCtl
from spear_lab.abi.jsonfmt import dumpb
from spear_lab.host.ioloop import IoLoop

# A logger that stays quiet at DEBUG whatever the root level (the server side would
# otherwise log the Authorization header the client sends).
SERVER_LOG = logging.getLogger("tests.realtime_server")
SERVER_LOG.setLevel(logging.WARNING)


@dataclass
class Conn:
    """One accepted connection, as the server saw it."""

    path: str
    headers: dict[str, str]
    ws: ServerConnection | None = None
    frames: list[bytes] = field(default_factory=list)
    close_code: int | None = None
    ended: bool = False
    reading: asyncio.Event | None = None

    def json(self) -> list[Any]:
        """Every frame received, parsed."""
        return [json.loads(f) for f in self.frames]

    def types(self) -> list[str]:
        return [m.get("type") for m in self.json()]


OnMessage = Callable[["RealtimeTestServer", Conn, bytes], Awaitable[None]]


class RealtimeTestServer:
    """A recording realtime server on ``127.0.0.1:<free port>``.

    - ``greeting``: frames sent right after the handshake (e.g. ``session.created``);
    - ``on_message``: an async hook called with every frame received;
    - ``require_bearer``: answer the handshake with HTTP 401 unless the request carries
      ``Authorization: Bearer <value>``; ``reject_status`` rejects every handshake.
    """

    def __init__(self, *, greeting: list[bytes] | None = None, on_message: OnMessage | None = None,
                 require_bearer: str | None = None, reject_status: int | None = None,
                 max_queue: int | None = 16) -> None:
        self.greeting = greeting or []
        self.on_message = on_message
        self.require_bearer = require_bearer
        self.reject_status = reject_status
        self.max_queue = max_queue
        self.conns: list[Conn] = []
        self.handshakes: list[dict[str, str]] = []
        self.io = IoLoop("test-ws-server")
        self._server = None
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> "RealtimeTestServer":
        self._server = self.io.run(self._serve(), timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self):
        return await serve(self._handler, "127.0.0.1", 0, max_size=None, compression=None,
                           max_queue=self.max_queue, logger=SERVER_LOG,
                           process_request=self._process_request)

    def stop(self) -> None:
        if self._server is not None:
            async def close(server):
                for conn in self.conns:
                    conn.reading.set()  # a paused handler must see the end too
                server.close()
                await server.wait_closed()
            try:
                self.io.run(close(self._server), timeout=10)
            except Exception:
                pass
        self.io.close()

    def __enter__(self) -> "RealtimeTestServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime?intent=transcription"

    # -- server side ------------------------------------------------------------------------

    def _process_request(self, connection, request):
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        self.handshakes.append(headers)
        if self.reject_status is not None:
            return connection.respond(HTTPStatus(self.reject_status), "rejected\n")
        if self.require_bearer is not None and headers.get("authorization") != f"Bearer {self.require_bearer}":
            return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or bad credential\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        conn = Conn(path=ws.request.path, headers={k.lower(): v for k, v in ws.request.headers.raw_items()},
                    ws=ws, reading=asyncio.Event())
        conn.reading.set()
        self.conns.append(conn)
        try:
            for frame in self.greeting:
                await ws.send(frame, text=True)
            while True:
                await conn.reading.wait()
                data = await ws.recv(decode=False)
                conn.frames.append(data)
                if self.on_message is not None:
                    await self.on_message(self, conn, data)
        except ConnectionClosed:
            pass
        finally:
            conn.close_code = ws.close_code
            conn.ended = True

    # -- test side (thread-safe) ------------------------------------------------------------

    def conn(self, index: int = -1, timeout: float = 10.0) -> Conn:
        """The ``index``-th connection, waiting for it to arrive."""
        wait_until(lambda: len(self.conns) > (index if index >= 0 else 0), timeout, "no connection")
        return self.conns[index]

    def send(self, frame: bytes | str, index: int = -1, text: bool = True) -> None:
        ws = self.conn(index).ws
        self.io.run(ws.send(frame, text=text), timeout=10)

    def close(self, code: int = 1000, reason: str = "", index: int = -1) -> None:
        ws = self.conn(index).ws
        self.io.run(ws.close(code, reason), timeout=10)

    def abort(self, index: int = -1) -> None:
        """Drop the TCP connection without a close frame."""
        ws = self.conn(index).ws
        self.io.call_soon(ws.transport.abort)

    def pause_reading(self, index: int = -1) -> None:
        conn = self.conn(index)
        self.io.call_soon(conn.reading.clear)

    def resume_reading(self, index: int = -1) -> None:
        conn = self.conn(index)
        self.io.call_soon(conn.reading.set)

    def frames(self, n: int, index: int = -1, timeout: float = 10.0) -> list[bytes]:
        """The first ``n`` frames of a connection, waiting for them."""
        conn = self.conn(index, timeout)
        wait_until(lambda: len(conn.frames) >= n, timeout, f"fewer than {n} frames: {conn.frames[:5]!r}")
        return conn.frames[:n]


class BlackHoleServer:
    """Accepts TCP connections and never answers (a handshake that never completes)."""

    def __init__(self) -> None:
        self.io = IoLoop("test-blackhole")
        self.accepted = 0
        self._writers: list[asyncio.StreamWriter] = []

    def start(self) -> "BlackHoleServer":
        async def serve_tcp():
            return await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self._server = self.io.run(serve_tcp(), timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        await reader.read()  # until the client goes away

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    def stop(self) -> None:
        async def close():
            for w in self._writers:
                w.close()
            self._server.close()
        try:
            self.io.run(close(), timeout=10)
        except Exception:
            pass
        self.io.close()


# -- polling and inspection --------------------------------------------------------------


def wait_until(pred: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
               interval: float = 0.005) -> Any:
    """Poll ``pred`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def loop_tasks(io: IoLoop) -> list[str]:
    """Names of the tasks still pending on ``io``'s loop (other than the probe)."""
    async def probe():
        me = asyncio.current_task()
        return [repr(t.get_coro()) for t in asyncio.all_tasks() if t is not me and not t.done()]
    return io.run(probe(), timeout=10)


def client_sockets(port: int) -> list[str]:
    """This process's open TCP sockets whose remote port is ``port`` (the client side of
    connections to a test server), from /proc."""
    mine = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            remote, inode = cols[2], cols[9]
            if int(remote.rsplit(":", 1)[1], 16) == port and inode in mine:
                found.append(f"{cols[1]}->{remote} state={cols[3]}")
    return found


def assert_clean(io: IoLoop, port: int | None = None, timeout: float = 10.0) -> None:
    """No task left on the host loop and no client socket to ``port``."""
    wait_until(lambda: not loop_tasks(io), timeout, f"host loop tasks to end: {loop_tasks(io)}")
    if port is not None:
        wait_until(lambda: not client_sockets(port), timeout, f"client sockets to close: {client_sockets(port)}")


# -- rtasr helpers over a Host ------------------------------------------------------------


def set_param(host, fd: int, key: str, value: Any) -> int:
    return host.rtasr_ctl(fd, RtasrCtl.SET_PARAM, dumpb({"key": key, "value": value}))


def status(host, fd: int) -> dict[str, Any]:
    out = host.rtasr_ctl(fd, RtasrCtl.GET_STATUS)
    assert isinstance(out, bytes), out
    return json.loads(out)


def ws_fd(host, url: str | None = None, **params: Any) -> int:
    """A new rtasr fd set up for ``transport=websocket`` (and ``ws_url`` when given)."""
    fd = host.rtasr_create()
    assert set_param(host, fd, "transport", "websocket") == 0
    if url is not None:
        assert set_param(host, fd, "ws_url", url) == 0
    for key, value in params.items():
        assert set_param(host, fd, key, value) == 0
    return fd


def read_until(host, fd: int, pred: Callable[[bytes], bool], timeout: float = 10.0) -> list[bytes]:
    """Read events until one satisfies ``pred``; returns every event read."""
    got: list[bytes] = []

    def step():
        while True:
            ev = host.rtasr_read(fd)
            if isinstance(ev, int):
                return False
            got.append(ev)
            if pred(ev):
                return True
    wait_until(step, timeout, f"an event (got {got[-3:]!r})")
    return got


def transport_of(host, fd: int):
    """The live transport object of ``fd``."""
    return host.table.get(fd).transport


def session_created(dialect: str = "ga") -> bytes:
    kind = "session.created" if dialect == "ga" else "transcription_session.created"
    return dumpb({"type": kind, "event_id": "event_1", "session": {"id": "sess_1"}})


# -- fixtures (imported by the test modules) ----------------------------------------------

import pytest  # noqa: E402

from spear_lab import Host  # noqa: E402
from spear_lab.host import HostConfig


@pytest.fixture
def host():
    """A Host that fails CONNECT instead of falling back to the stub; on teardown every
    fd is closed and no task may be left on its I/O loop."""
    h = Host(HostConfig(stub_fallback=False))
    try:
        yield h
        h.close()
        assert_clean(h.io)
    finally:
        h.shutdown()


@pytest.fixture
def make_server():
    """``make_server(**kwargs)`` starts a :class:`RealtimeTestServer`; all stop at teardown."""
    servers: list[RealtimeTestServer] = []

    def make(**kwargs) -> RealtimeTestServer:
        srv = RealtimeTestServer(**kwargs).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()
