"""The realtime WebSocket transport against real loopback servers: checklist items 40–45
and 50 in the GA shape and again in the beta dialect, the exact first configuration
event per segmentation strategy, appends, FLUSH/CLEAR, SEND_EVENT, live segmentation
changes and closing."""

from __future__ import annotations

import base64
import json
import os
import socket

import pytest
from test_ws_support import (assert_clean, client_sockets, host, make_server, read_until,  # noqa: F401
                             session_created, status, transport_of, wait_until, ws_fd)

from spear_lab.abi.constants import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, Errno, RtasrCtl
from spear_lab.abi.jsonfmt import dumpb

DIALECTS = ["ga", "beta"]
UPDATE = {"ga": "session.update", "beta": "transcription_session.update"}
COMMIT = b'{"type":"input_audio_buffer.commit"}'
CLEAR = b'{"type":"input_audio_buffer.clear"}'
DELTA = b'{"content_index":0,"delta":"Hello","event_id":"event_2","item_id":"item_1",' \
        b'"type":"conversation.item.input_audio_transcription.delta"}'


def td_of(dialect: str, update: dict):
    """The turn_detection of a configuration event, in either dialect."""
    session = update["session"]
    return session["audio"]["input"]["turn_detection"] if dialect == "ga" else session["turn_detection"]


def appended(frames: list[bytes]) -> bytes:
    """Audio carried by the append events among ``frames``, decoded."""
    out = b""
    for f in frames:
        obj = json.loads(f)
        if obj["type"] == "input_audio_buffer.append":
            assert len(obj["audio"]) % 4 == 0
            out += base64.b64decode(obj["audio"], validate=True)
    return out


def connect(host, fd):
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# -- checklist 40-45, 50 -------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_item40_first_message_is_the_session_update_and_events_come_back_unchanged(host, make_server, dialect):
    srv = make_server(greeting=[session_created(dialect)])
    fd = ws_fd(host, srv.url, dialect=dialect)
    connect(host, fd)
    assert host.rtasr_write(fd, b"\x01\x02\x03") == 3
    first = srv.frames(1)[0]
    assert json.loads(first)["type"] == UPDATE[dialect]
    srv.send(DELTA)
    events = read_until(host, fd, lambda ev: b"delta" in ev)
    assert events[-1] == DELTA
    assert events[0] == session_created(dialect)
    st = status(host, fd)
    assert (st["state"], st["transport"], st["backend"], st["last_error"]) == ("Connected", "websocket", "ws_url", None)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_item41_flush_sends_commit_after_the_append(host, make_server, dialect):
    srv = make_server()
    fd = ws_fd(host, srv.url, dialect=dialect)
    connect(host, fd)
    assert host.rtasr_write(fd, b"abc") == 3
    assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == 0
    frames = srv.frames(3)
    assert frames[1] == b'{"audio":"YWJj","type":"input_audio_buffer.append"}'
    assert frames[2] == COMMIT


@pytest.mark.parametrize("dialect", DIALECTS)
def test_item42_server_vad_silence_reaches_the_session(host, make_server, dialect):
    srv = make_server()
    fd = ws_fd(host, srv.url, dialect=dialect)
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"server_vad","vad":{"silence_ms":321}}') == 0
    connect(host, fd)
    first = json.loads(srv.frames(1)[0])
    assert first["type"] == UPDATE[dialect]
    assert td_of(dialect, first) == {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                     "silence_duration_ms": 321}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_item43_client_commit_has_null_turn_detection_and_padded_base64(host, make_server, dialect):
    srv = make_server()
    fd = ws_fd(host, srv.url, dialect=dialect)
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"client_commit"}') == 0
    connect(host, fd)
    assert host.rtasr_write(fd, b"\xff\xfe\xfd\xfc") == 4
    frames = srv.frames(2)
    assert td_of(dialect, json.loads(frames[0])) is None
    assert frames[1] == b'{"audio":"//79/A==","type":"input_audio_buffer.append"}'


@pytest.mark.parametrize("dialect", DIALECTS)
def test_item44_autoflush_before_connect_then_append_and_commit(host, make_server, dialect):
    srv = make_server()
    fd = ws_fd(host, srv.url, dialect=dialect)
    seg = b'{"strategy":"client_commit","client_commit":{"max_buffer_bytes":1000,"min_flush_gap_ms":0}}'
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, seg) == 0
    audio = os.urandom(1000)
    assert host.rtasr_write(fd, audio) == 1000
    assert status(host, fd)["send_queue_bytes"] == 1036
    connect(host, fd)
    frames = srv.frames(3)
    assert appended(frames[1:2]) == audio
    assert frames[2] == COMMIT
    wait_until(lambda: status(host, fd)["send_queue_bytes"] == 0, what="the queue to drain")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_item45_refused_port_is_an_error(host, dialect):
    port = free_port()
    fd = ws_fd(host, f"ws://127.0.0.1:{port}/v1/realtime", dialect=dialect)
    ep = host.spear_epoll_create()
    assert host.spear_epoll_ctl(ep, 1, fd, EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP) == 0
    connect(host, fd)
    wait_until(lambda: status(host, fd)["state"] == "Error", what="Error state")
    ready = host.spear_epoll_wait(ep, 8, 0)
    assert ready == [(fd, EPOLLERR)]
    st = status(host, fd)
    assert st["last_error"].startswith("websocket connect failed")
    assert host.rtasr_write(fd, b"abc") == -Errno.EIO
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == -Errno.EIO
    assert host.rtasr_read(fd) == -Errno.EAGAIN
    assert_clean(host.io, port)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_item50_peer_close_is_a_sticky_hangup(host, make_server, dialect):
    srv = make_server()
    fd = ws_fd(host, srv.url, dialect=dialect)
    ep = host.spear_epoll_create()
    assert host.spear_epoll_ctl(ep, 1, fd, EPOLLIN | EPOLLHUP | EPOLLERR) == 0
    connect(host, fd)
    assert host.rtasr_write(fd, b"abcd") == 4
    srv.frames(2)
    srv.send(DELTA)
    srv.close(1000)
    wait_until(lambda: status(host, fd)["peer_closed"], what="the hang-up")
    assert host.spear_epoll_wait(ep, 8, 0) == [(fd, EPOLLIN | EPOLLHUP)]
    assert host.rtasr_read(fd) == DELTA
    for _ in range(3):
        assert host.spear_epoll_wait(ep, 8, 0) == [(fd, EPOLLHUP)]
        assert host.rtasr_read(fd) == -Errno.EAGAIN
        assert host.rtasr_write(fd, b"ab") == -Errno.EPIPE
    assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == -Errno.EPIPE
    st = status(host, fd)
    assert (st["state"], st["last_error"]) == ("Connected", "websocket closed by peer")
    assert_clean(host.io, srv.port)


# -- the first configuration event, byte for byte --------------------------------------------

FIRST = {
    ("ga", "server_vad"): b'{"session":{"audio":{"input":{"format":{"rate":24000,"type":"audio/pcm"},'
                          b'"noise_reduction":null,"transcription":{"model":"gpt-4o-mini-transcribe"},'
                          b'"turn_detection":{"prefix_padding_ms":250,"silence_duration_ms":640,'
                          b'"threshold":0.7,"type":"server_vad"}}},"type":"transcription"},"type":"session.update"}',
    ("ga", "client_commit"): b'{"session":{"audio":{"input":{"format":{"rate":24000,"type":"audio/pcm"},'
                             b'"noise_reduction":null,"transcription":{"model":"gpt-4o-mini-transcribe"},'
                             b'"turn_detection":null}},"type":"transcription"},"type":"session.update"}',
    ("beta", "server_vad"): b'{"session":{"input_audio_format":"pcm16","input_audio_noise_reduction":null,'
                            b'"input_audio_transcription":{"model":"gpt-4o-mini-transcribe"},'
                            b'"turn_detection":{"prefix_padding_ms":250,"silence_duration_ms":640,'
                            b'"threshold":0.7,"type":"server_vad"}},"type":"transcription_session.update"}',
    ("beta", "client_commit"): b'{"session":{"input_audio_format":"pcm16","input_audio_noise_reduction":null,'
                               b'"input_audio_transcription":{"model":"gpt-4o-mini-transcribe"},'
                               b'"turn_detection":null},"type":"transcription_session.update"}',
}
FIRST[("ga", "manual")] = FIRST[("ga", "client_commit")]
FIRST[("beta", "manual")] = FIRST[("beta", "client_commit")]
SEGMENTATION = {
    "server_vad": b'{"strategy":"server_vad","vad":{"silence_ms":640,"threshold":0.7,"prefix_padding_ms":250}}',
    "client_commit": b'{"strategy":"client_commit","client_commit":{"flush_interval_ms":1000}}',
    "manual": b'{"strategy":"manual"}',
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("strategy", ["server_vad", "client_commit", "manual"])
def test_first_session_update_exact_bytes(host, make_server, dialect, strategy):
    srv = make_server()
    fd = ws_fd(host, srv.url, dialect=dialect)
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, SEGMENTATION[strategy]) == 0
    connect(host, fd)
    assert srv.frames(1)[0] == FIRST[(dialect, strategy)]
    conn = srv.conn()
    assert conn.path == "/v1/realtime?intent=transcription"
    assert "authorization" not in conn.headers
    assert ("openai-beta" in conn.headers) == (dialect == "beta")
    if dialect == "beta":
        assert conn.headers["openai-beta"] == "realtime=v1"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_session_params_feed_the_update(host, make_server, dialect):
    srv = make_server()
    fd = ws_fd(host, srv.url, dialect=dialect, model="whisper-1", language="en", prompt="Ada, Grace",
               noise_reduction="near_field", include=["item.input_audio_transcription.logprobs"],
               vad_unknown_key=7)
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"manual"}') == 0
    connect(host, fd)
    first = srv.frames(1)[0]
    if dialect == "ga":
        assert first == (b'{"session":{"audio":{"input":{"format":{"rate":24000,"type":"audio/pcm"},'
                         b'"noise_reduction":{"type":"near_field"},"transcription":{"language":"en",'
                         b'"model":"whisper-1","prompt":"Ada, Grace"},"turn_detection":null}},'
                         b'"include":["item.input_audio_transcription.logprobs"],"type":"transcription"},'
                         b'"type":"session.update"}')
    else:
        assert first == (b'{"session":{"include":["item.input_audio_transcription.logprobs"],'
                         b'"input_audio_format":"pcm16","input_audio_noise_reduction":{"type":"near_field"},'
                         b'"input_audio_transcription":{"language":"en","model":"whisper-1","prompt":"Ada, Grace"},'
                         b'"turn_detection":null},"type":"transcription_session.update"}')


# -- audio, FLUSH, CLEAR, SEND_EVENT -------------------------------------------------------------


def test_appends_decode_back_to_the_audio_written(host, make_server):
    srv = make_server()
    fd = ws_fd(host, srv.url)
    connect(host, fd)
    chunks = [os.urandom(n) for n in (1, 2, 3, 959, 960, 4800, 4801, 7)]
    for chunk in chunks:
        assert host.rtasr_write(fd, chunk) == len(chunk)
    frames = srv.frames(1 + len(chunks))
    assert [json.loads(f)["type"] for f in frames[1:]] == ["input_audio_buffer.append"] * len(chunks)
    for frame, chunk in zip(frames[1:], chunks):
        assert appended([frame]) == chunk  # one write, one append


def test_a_write_larger_than_15_mib_of_base64_is_split(host, make_server):
    srv = make_server()
    fd = ws_fd(host, srv.url, max_send_queue_bytes=16 * 1024 * 1024)
    connect(host, fd)
    audio = os.urandom(12 * 1024 * 1024)
    assert host.rtasr_write(fd, audio) == len(audio)
    assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == 0
    conn = srv.conn()
    wait_until(lambda: conn.frames and conn.frames[-1] == COMMIT, 60, "the commit after the big append")
    appends = conn.frames[1:-1]
    assert len(appends) == 2
    assert all(len(f) <= 15 * 1024 * 1024 for f in appends)
    assert appended(appends) == audio


@pytest.mark.parametrize("dialect", DIALECTS)
def test_flush_and_clear_send_commit_and_clear(host, make_server, dialect):
    srv = make_server()
    fd = ws_fd(host, srv.url, dialect=dialect)
    connect(host, fd)
    assert host.rtasr_write(fd, b"\x00\x01") == 2
    assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == 0
    assert host.rtasr_write(fd, b"\x02\x03") == 2
    assert host.rtasr_ctl(fd, RtasrCtl.CLEAR) == 0
    frames = srv.frames(5)
    assert [json.loads(f)["type"] for f in frames[1:]] == [
        "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.append",
        "input_audio_buffer.clear"]
    assert frames[2] == COMMIT and frames[4] == CLEAR


def test_client_commit_timer_fires_without_further_writes(host, make_server):
    """The interval trigger fires from the transport's idle tick (a fix, docs/abi.md §12)."""
    srv = make_server()
    fd = ws_fd(host, srv.url)
    seg = b'{"strategy":"client_commit","client_commit":{"flush_interval_ms":50,"min_flush_gap_ms":0}}'
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, seg) == 0
    connect(host, fd)
    assert host.rtasr_write(fd, b"\x10\x00" * 10) == 20
    frames = srv.frames(3)
    assert frames[2] == COMMIT


def test_send_event_passes_valid_events_through(host, make_server):
    srv = make_server()
    fd = ws_fd(host, srv.url)
    event = b'{"type":"input_audio_buffer.commit","event_id":"evt_7"}'
    assert host.rtasr_ctl(fd, RtasrCtl.SEND_EVENT, event) == 0  # before CONNECT: sent after setup
    connect(host, fd)
    assert srv.frames(2)[1] == b'{"event_id":"evt_7","type":"input_audio_buffer.commit"}'


@pytest.mark.parametrize("payload", [b"[1,2]", b'{"foo":1}', b'{"type":5}', b'"x"', b"null"])
def test_send_event_without_a_type_is_answered_locally(host, make_server, payload):
    srv = make_server()
    fd = ws_fd(host, srv.url)
    connect(host, fd)
    assert host.rtasr_ctl(fd, RtasrCtl.SEND_EVENT, payload) == 0
    assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == 0
    events = read_until(host, fd, lambda ev: b'"error"' in ev)
    err = json.loads(events[-1])
    assert err["type"] == "error"
    assert (err["error"]["type"], err["error"]["code"], err["error"]["param"]) == (
        "invalid_request_error", "invalid_event", None)
    frames = srv.frames(2)
    assert frames[1] == COMMIT  # the invalid event never went out
    assert status(host, fd)["state"] == "Connected"


# -- segmentation changes on a live connection (docs/abi.md §6.6) ---------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_segmentation_change_sends_turn_detection_only(host, make_server, dialect):
    srv = make_server()
    fd = ws_fd(host, srv.url, dialect=dialect)
    connect(host, fd)
    srv.frames(1)
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"manual"}') == 0
    update = srv.frames(2)[1]
    if dialect == "ga":
        assert update == (b'{"session":{"audio":{"input":{"turn_detection":null}},"type":"transcription"},'
                          b'"type":"session.update"}')
    else:
        assert update == b'{"session":{"turn_detection":null},"type":"transcription_session.update"}'
    # Same mapping (null) again: nothing to tell the server.
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"client_commit"}') == 0
    assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == 0
    assert srv.frames(3)[2] == COMMIT
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"server_vad","vad":{"silence_ms":900}}') == 0
    last = json.loads(srv.frames(4)[3])
    assert last["type"] == UPDATE[dialect]
    assert td_of(dialect, last) == {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                    "silence_duration_ms": 900}
    session = last["session"]
    assert set(session) == ({"type", "audio"} if dialect == "ga" else {"turn_detection"})


# -- closing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("flush", [True, False])
def test_close_sends_commit_when_flush_on_close_then_a_close_frame(host, make_server, flush):
    srv = make_server()
    fd = ws_fd(host, srv.url)
    seg = {"strategy": "manual", "flush_on_close": flush}
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, dumpb(seg)) == 0
    connect(host, fd)
    assert host.rtasr_write(fd, b"\x00" * 480) == 480
    srv.frames(2)
    transport = transport_of(host, fd)
    assert host.rtasr_close(fd) == 0
    assert transport.join(10)
    conn = srv.conn()
    wait_until(lambda: conn.ended, what="the server to see the close")
    assert conn.close_code == 1000
    assert conn.frames[2:] == ([COMMIT] if flush else [])
    assert_clean(host.io, srv.port)


def test_flush_on_close_sends_audio_still_queued_then_commit(host, make_server):
    srv = make_server()
    fd = ws_fd(host, srv.url)
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"manual","flush_on_close":true}') == 0
    connect(host, fd)
    srv.frames(1)  # the session update: the connection is up
    audio = bytes(range(256)) * 19 * 50  # 50 chunks of 4864 bytes
    for i in range(50):
        assert host.rtasr_write(fd, audio[i * 4864:(i + 1) * 4864]) == 4864
    assert host.rtasr_close(fd) == 0  # most of it is still queued
    conn = srv.conn()
    wait_until(lambda: conn.ended, what="the server to see the close")
    appends = [json.loads(f) for f in conn.frames[1:-1]]
    assert all(a["type"] == "input_audio_buffer.append" for a in appends)
    assert b"".join(base64.b64decode(a["audio"]) for a in appends) == audio
    assert conn.frames[-1] == COMMIT and conn.close_code == 1000
    assert_clean(host.io, srv.port)


def test_flush_on_close_sends_nothing_when_everything_was_committed(host, make_server):
    srv = make_server()
    fd = ws_fd(host, srv.url)
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"manual","flush_on_close":true}') == 0
    connect(host, fd)
    assert host.rtasr_write(fd, b"\x00" * 480) == 480
    assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == 0
    srv.frames(3)
    assert host.rtasr_close(fd) == 0
    conn = srv.conn()
    wait_until(lambda: conn.ended, what="the server to see the close")
    assert conn.frames[1:] == [conn.frames[1], COMMIT] and conn.close_code == 1000
    assert_clean(host.io, srv.port)


def test_close_before_connect_finishes_leaves_nothing(host, make_server):
    srv = make_server()
    fd = ws_fd(host, srv.url)
    connect(host, fd)
    assert host.rtasr_close(fd) == 0  # possibly while the handshake is in flight
    assert_clean(host.io, srv.port)


def test_host_shutdown_closes_the_connection(make_server):
    from spear_lab import Host
    from spear_lab.host import HostConfig

    srv = make_server()
    h = Host(HostConfig(stub_fallback=False))
    fd = ws_fd(h, srv.url)
    connect(h, fd)
    srv.frames(1)
    h.shutdown()
    conn = srv.conn()
    wait_until(lambda: conn.ended, what="the server to see the connection end")
    wait_until(lambda: not client_sockets(srv.port), what="client sockets to close")
    assert conn.ended and not client_sockets(srv.port)

