"""Faults of the realtime WebSocket transport, each against a real loopback server.

After every fault: no task left on the host's I/O loop and no client socket open.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from test_ws_support import (BlackHoleServer, assert_clean, host, make_server, read_until,  # noqa: F401
                             status, transport_of, wait_until, ws_fd)

from spear_lab import Host
from spear_lab.abi.constants import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, Errno, RtasrCtl
from spear_lab.abi.jsonfmt import dumpb
from spear_lab.host import HostConfig
from spear_lab.transports.backends import Backend, BackendRegistry

BETA_DISABLED = dumpb({"type": "error", "error": {
    "type": "invalid_request_error", "code": "beta_api_shape_disabled",
    "message": "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."}})


def connect(host, fd):
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0


def epoll_for(host, fd, events=EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP) -> int:
    ep = host.spear_epoll_create()
    assert host.spear_epoll_ctl(ep, 1, fd, events) == 0
    return ep


@pytest.mark.parametrize("code,message", [
    (1000, "websocket closed by peer"),
    (1001, "websocket closed by peer"),
    (1011, "websocket closed by peer (code 1011: server error)"),
])
def test_server_closes_mid_stream(host, make_server, code, message):
    async def close_after_five(srv, conn, data):
        if len(conn.frames) == 6:
            await conn.ws.close(code, "server error" if code == 1011 else "")

    srv = make_server(on_message=close_after_five)
    fd = ws_fd(host, srv.url)
    connect(host, fd)
    chunk = b"\x01\x00" * 480
    results = []

    def write_until_pipe():
        rc = host.rtasr_write(fd, chunk)
        results.append(rc)
        return rc == -Errno.EPIPE
    wait_until(write_until_pipe, what="writes to fail with EPIPE", interval=0.002)
    assert all(rc in (len(chunk), -Errno.EAGAIN) for rc in results[:-1])
    st = status(host, fd)
    assert (st["state"], st["peer_closed"], st["last_error"]) == ("Connected", True, message)
    wait_until(lambda: srv.conn().ended, what="the server handler to end")
    assert srv.conn().close_code == code
    ep = epoll_for(host, fd, EPOLLHUP | EPOLLERR | EPOLLOUT)
    assert host.spear_epoll_wait(ep, 4, 0) == [(fd, EPOLLHUP)]
    assert_clean(host.io, srv.port)


def test_close_4000_after_beta_rejection_event(host, make_server):
    """A strict-GA server answers the beta header with an error event and close 4000: the
    guest reads the error, then sees HUP."""
    async def strict_ga(srv, conn, data):
        if "openai-beta" in conn.headers:
            await conn.ws.send(BETA_DISABLED)
            await conn.ws.close(4000, "beta api shape disabled")

    srv = make_server(on_message=strict_ga)
    fd = ws_fd(host, srv.url, dialect="beta")
    ep = epoll_for(host, fd, EPOLLIN | EPOLLHUP | EPOLLERR)
    connect(host, fd)
    assert json.loads(srv.frames(1)[0])["type"] == "transcription_session.update"
    wait_until(lambda: status(host, fd)["peer_closed"], what="the hang-up")
    assert host.spear_epoll_wait(ep, 4, 0) == [(fd, EPOLLIN | EPOLLHUP)]
    event = host.rtasr_read(fd)
    assert event == BETA_DISABLED
    assert json.loads(event)["error"]["code"] == "beta_api_shape_disabled"
    assert host.spear_epoll_wait(ep, 4, 0) == [(fd, EPOLLHUP)]
    assert host.rtasr_write(fd, b"ab") == -Errno.EPIPE
    assert status(host, fd)["last_error"] == "websocket closed by peer (code 4000: beta api shape disabled)"
    assert_clean(host.io, srv.port)

    # The same server accepts the GA shape.
    fd2 = ws_fd(host, srv.url)
    connect(host, fd2)
    assert host.rtasr_write(fd2, b"ab") == 2
    frames = srv.frames(2, index=1)
    assert json.loads(frames[0])["type"] == "session.update"
    assert status(host, fd2)["peer_closed"] is False


def test_garbage_frames_pass_through_unchanged(host, make_server):
    srv = make_server()
    fd = ws_fd(host, srv.url)
    connect(host, fd)
    srv.frames(1)
    garbage = [
        (b"\x00\xff\xfe binary \x80", False),
        (b"this is not json {", True),
        (b"\xc3\x28 invalid utf-8 in a text frame", True),
        (b"", True),
        (b'{"type":"conversation.item.input_audio_transcription.delta","delta":"ok"}', True),
    ]
    for frame, text in garbage:
        srv.send(frame, text=text)
    events = read_until(host, fd, lambda ev: b'"delta":"ok"' in ev)
    assert events == [frame for frame, _ in garbage]
    assert host.rtasr_write(fd, b"\x00\x00") == 2
    assert srv.frames(2)[1] == b'{"audio":"AAA=","type":"input_audio_buffer.append"}'
    st = status(host, fd)
    assert (st["state"], st["last_error"], st["dropped_events"]) == ("Connected", None, 0)
    assert host.rtasr_close(fd) == 0
    assert_clean(host.io, srv.port)


def test_slow_server_backpressure_and_epollout_returns(host, make_server):
    srv = make_server(max_queue=1)
    CHUNK = 32768  # divides the 1 MiB limit: a full queue clears EPOLLOUT
    fd = ws_fd(host, srv.url)
    ep = epoll_for(host, fd, EPOLLOUT | EPOLLERR | EPOLLHUP)
    connect(host, fd)
    srv.frames(1)
    srv.pause_reading()
    sent = hashlib.sha256()
    total = 0
    chunk = os.urandom(CHUNK)
    while True:  # fill the socket buffers, then the fd's queue
        rc = host.rtasr_write(fd, chunk)
        if rc == -Errno.EAGAIN:
            if host.spear_epoll_wait(ep, 4, 1000) == []:
                break  # still full a second later: the sender is stuck on the socket
            continue
        assert rc == len(chunk)
        sent.update(chunk)
        total += rc
        chunk = os.urandom(CHUNK)
        assert total < 1 << 30, "the queue never filled"
    frames_while_paused = len(srv.conn().frames)
    assert status(host, fd)["send_queue_bytes"] == 1048576
    assert host.spear_epoll_wait(ep, 4, 0) == []  # not writable
    assert host.rtasr_write(fd, chunk) == -Errno.EAGAIN
    assert len(srv.conn().frames) == frames_while_paused
    srv.resume_reading()
    assert host.spear_epoll_wait(ep, 4, 30000) == [(fd, EPOLLOUT)]
    wait_until(lambda: status(host, fd)["send_queue_bytes"] == 0, 60, "the queue to drain")
    conn = srv.conn()

    def received() -> int:
        return sum(len(base64.b64decode(json.loads(f)["audio"])) for f in conn.frames[1:])
    wait_until(lambda: received() == total, 60, "every byte at the server")
    got = hashlib.sha256()
    for f in conn.frames[1:]:
        got.update(base64.b64decode(json.loads(f)["audio"]))
    assert got.digest() == sent.digest()
    assert status(host, fd)["state"] == "Connected"
    assert host.rtasr_close(fd) == 0
    assert_clean(host.io, srv.port)


@pytest.mark.parametrize("http_status", [401, 403])
def test_handshake_rejected_with_http_status(monkeypatch, make_server, http_status):
    key = "sk-test-" + os.urandom(12).hex()
    monkeypatch.setenv("SPEAR_TEST_REJECTED_KEY", key)
    srv = make_server(reject_status=http_status)
    registry = BackendRegistry([Backend("lab", srv.url, credential_env="SPEAR_TEST_REJECTED_KEY")])
    h = Host(HostConfig(backends=registry, stub_fallback=False))
    try:
        fd = ws_fd(h, backend="lab")
        ep = epoll_for(h, fd, EPOLLERR)
        connect(h, fd)
        assert h.spear_epoll_wait(ep, 4, 20000) == [(fd, EPOLLERR)]
        st = status(h, fd)
        assert st["state"] == "Error"
        assert str(http_status) in st["last_error"]
        assert key not in json.dumps(st)
        assert srv.handshakes[-1]["authorization"] == f"Bearer {key}"  # it was sent, to the server only
        assert h.rtasr_write(fd, b"ab") == -Errno.EIO
        assert_clean(h.io, srv.port)
    finally:
        h.shutdown()


def test_connect_timeout(host):
    bh = BlackHoleServer().start()
    try:
        fd = ws_fd(host, bh.url, connect_timeout_ms=300)
        ep = epoll_for(host, fd, EPOLLERR)
        connect(host, fd)
        assert host.spear_epoll_wait(ep, 4, 20000) == [(fd, EPOLLERR)]
        assert status(host, fd)["last_error"] == "websocket connect timed out after 0.3 s"
        assert bh.accepted == 1
        assert_clean(host.io, bh.port)
    finally:
        bh.stop()


def test_close_while_connecting(host):
    bh = BlackHoleServer().start()
    try:
        fd = ws_fd(host, bh.url)
        connect(host, fd)
        wait_until(lambda: bh.accepted == 1, what="the TCP connection")
        transport = transport_of(host, fd)
        assert host.rtasr_close(fd) == 0
        assert transport.join(10)
        assert_clean(host.io, bh.port)
    finally:
        bh.stop()


def test_connection_lost_without_close_frame(host, make_server):
    srv = make_server()
    fd = ws_fd(host, srv.url)
    ep = epoll_for(host, fd, EPOLLERR | EPOLLHUP)
    connect(host, fd)
    srv.frames(1)
    srv.abort()
    assert host.spear_epoll_wait(ep, 4, 20000) == [(fd, EPOLLERR)]
    st = status(host, fd)
    assert (st["state"], st["peer_closed"]) == ("Error", False)
    assert st["last_error"] == "websocket closed (connection lost without a close frame)"
    assert_clean(host.io, srv.port)


def test_close_against_a_server_that_stopped_reading(host, make_server):
    """The closing handshake cannot complete: the socket is aborted after a bounded wait."""
    srv = make_server(max_queue=1)
    fd = ws_fd(host, srv.url)
    connect(host, fd)
    srv.frames(1)
    srv.pause_reading()
    for _ in range(40):
        host.rtasr_write(fd, os.urandom(48000))
    transport = transport_of(host, fd)
    assert host.rtasr_close(fd) == 0
    assert transport.join(15)
    assert_clean(host.io, srv.port)


def test_no_reconnect_after_a_failure(host, make_server):
    srv = make_server()
    fd = ws_fd(host, srv.url)
    connect(host, fd)
    srv.frames(1)
    srv.abort()
    wait_until(lambda: status(host, fd)["state"] == "Error", what="Error")
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == -Errno.EIO
    assert_clean(host.io, srv.port)
    assert len(srv.conns) == 1
