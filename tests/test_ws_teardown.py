"""A connection torn down under a pending send (issue 19), against a raw loopback server.

The server completes the WebSocket handshake, then stops reading, so the client's send
backs up: the rtasr send queue fills and the transport waits in ``send`` with bytes in
its write buffer.  Then the server tears the connection down in one of two ways:

- ``fail``: what websockets' server does on a keepalive timeout — a close frame 1011,
  half-close (EOF), and it discards whatever else arrives.  The client's transport closes
  after its buffer drains, and asyncio's ``abort()`` then raises AttributeError inside
  websockets' ``send`` (the failure of the issue: ``websocket send failed:
  AttributeError``, a guest left waiting).
- ``reset``: the server aborts the TCP connection with bytes unread (RST).

Either way the fd must end in its documented state — EPOLLHUP (peer close frame) or
EPOLLERR (connection lost) — with the real cause in ``last_error`` and the log, and no
task or socket left behind.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import socket
import struct

import pytest
from test_ws_support import assert_clean, host, status, transport_of, wait_until, ws_fd  # noqa: F401

from spear_lab.abi.constants import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, Errno, RtasrCtl
from spear_lab.host.ioloop import IoLoop

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_1011 = struct.pack("!BBH", 0x88, 2 + 22, 1011) + b"keepalive ping timeout"


class _Peer(asyncio.Protocol):
    """Server side of one connection: handshake, then reads only when told to."""

    def __init__(self, owner: "StallingServer") -> None:
        self.owner = owner
        self.buf = b""
        self.open = False
        self.discarded = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.owner.peers.append(self)

    def data_received(self, data: bytes) -> None:
        if self.open:
            self.discarded += len(data)
            return
        self.buf += data
        if b"\r\n\r\n" not in self.buf:
            return
        head = self.buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                   if line.lower().startswith("sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        self.transport.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept
                              + "\r\n\r\n").encode())
        self.open = True
        self.transport.pause_reading()  # the stall: nothing more is read

    def eof_received(self):
        return None  # close our side too

    def fail_like_websockets(self) -> None:
        """Close frame 1011 + EOF (websockets' fail()); :meth:`discard` follows."""
        self.transport.write(CLOSE_1011)
        self.transport.write_eof()

    def discard(self) -> None:
        """Read and discard whatever arrives (websockets' fail() does that too)."""
        self.transport.resume_reading()

    def reset(self) -> None:
        """Abort with unread bytes in the socket: the kernel answers with RST."""
        sock = self.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


class StallingServer:
    """A loopback WebSocket endpoint (own loop) with a small receive buffer."""

    def __init__(self) -> None:
        self.io = IoLoop("test-stalling-server")
        self.peers: list[_Peer] = []

    def start(self) -> "StallingServer":
        async def listen():
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # inherited
            sock.bind(("127.0.0.1", 0))
            return await asyncio.get_running_loop().create_server(lambda: _Peer(self), sock=sock)
        self.server = self.io.run(listen(), timeout=10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime?intent=transcription"

    def peer(self) -> _Peer:
        wait_until(lambda: self.peers and self.peers[0].open, what="the handshake")
        return self.peers[0]

    def stop(self) -> None:
        async def close():
            for p in self.peers:
                p.transport.abort()
            self.server.close()
        try:
            self.io.run(close(), timeout=10)
        finally:
            self.io.close()


@pytest.fixture
def stalling():
    srv = StallingServer().start()
    yield srv
    srv.stop()


def _pending_send(host, fd: int) -> None:
    """Write audio until the fd's send queue is full and the transport is blocked in
    ``send`` with bytes in its write buffer."""
    chunk = os.urandom(960)  # 20 ms of 24 kHz pcm16, as the guests write
    t = transport_of(host, fd)

    def blocked() -> bool:
        while host.rtasr_write(fd, chunk) == len(chunk):
            pass  # until -EAGAIN: the send queue is full
        ws = t._ws
        return ws is not None and ws.transport.get_write_buffer_size() > 0
    wait_until(blocked, timeout=20, what="a send blocked on a stalled server")


def _epoll(host, fd: int, events: int) -> int:
    ep = host.spear_epoll_create()
    assert host.spear_epoll_ctl(ep, 1, fd, events) == 0
    return ep


def _final_state(host, fd: int) -> list:
    """Wait (20 s at most) for ERR or HUP, then report every bit that is set."""
    assert host.spear_epoll_wait(_epoll(host, fd, EPOLLERR | EPOLLHUP), 4, 20000) != []
    return host.spear_epoll_wait(_epoll(host, fd, EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP), 4, 0)


@pytest.mark.parametrize("attempt", range(3))
def test_close_frame_and_eof_under_a_pending_send(host, stalling, caplog, attempt):
    """Before the fix this ended in ERR|HUP with ``websocket send failed: AttributeError``
    (every attempt); a few attempts guard against a scheduling-dependent pass."""
    caplog.set_level(logging.INFO, logger="spear_lab.transports.realtime_ws")
    fd = ws_fd(host, stalling.url)
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
    peer = stalling.peer()
    _pending_send(host, fd)
    transport = transport_of(host, fd)
    stalling.io.call_soon(peer.fail_like_websockets)
    # The client has the close frame and the EOF, and its closing transport still holds
    # bytes; once the server reads them, the transport detaches itself.
    wait_until(lambda: transport._ws.transport.is_closing(), what="the client to see EOF")
    stalling.io.call_soon(peer.discard)

    assert _final_state(host, fd) == [(fd, EPOLLHUP)]  # OUT gone, not ERR
    st = status(host, fd)
    assert (st["state"], st["peer_closed"]) == ("Connected", True), st
    assert st["last_error"] == "websocket closed by peer (code 1011: keepalive ping timeout)"
    assert host.rtasr_write(fd, b"\0\0") == -Errno.EPIPE
    assert "websocket closed by peer (code 1011: keepalive ping timeout)" in caplog.text
    assert "AttributeError" not in caplog.text
    assert transport.join(10) and transport.finished
    wait_until(lambda: peer.discarded > 0, what="the server to drain the client's bytes")
    assert host.rtasr_close(fd) == 0
    assert_clean(host.io, stalling.port)


def test_reset_under_a_pending_send(host, stalling, caplog):
    caplog.set_level(logging.INFO, logger="spear_lab.transports.realtime_ws")
    fd = ws_fd(host, stalling.url)
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
    peer = stalling.peer()
    _pending_send(host, fd)
    transport = transport_of(host, fd)
    stalling.io.call_soon(peer.reset)

    assert _final_state(host, fd) == [(fd, EPOLLERR)]
    st = status(host, fd)
    assert (st["state"], st["peer_closed"]) == ("Error", False), st
    # The real cause: the class and the message of the socket error.
    assert st["last_error"].startswith("websocket closed (connection lost without a close frame: ")
    assert "ConnectionResetError: [Errno 104] Connection reset by peer" in st["last_error"]
    assert st["last_error"] in caplog.text
    assert host.rtasr_write(fd, b"\0\0") == -Errno.EIO
    assert transport.join(10)
    assert host.rtasr_close(fd) == 0
    assert_clean(host.io, stalling.port)
