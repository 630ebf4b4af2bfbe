"""The rtasr fd's transition table and refusals, the commit deadline, and the sans-I/O
RealtimeClient (spear_lab.fds.rtasr_machine, fds.segmentation, transports.client), plus
one real-WebSocket check that a time-triggered client commit goes out without polling."""

from __future__ import annotations

import base64
import json
import random
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from spear_lab.abi.constants import Errno, RtasrCtl, RtasrState
from spear_lab.abi.fdtable import FdTable
from spear_lab.fds import rtasr_machine as machine
from spear_lab.fds.ports import ConnectRefused
from spear_lab.fds.rtasr import RtasrFd
from spear_lab.fds.segmentation import DEADLINE_SLACK_S, ClientCommit, CommitClock, Segmentation
from spear_lab.transports import protocol
from spear_lab.transports.client import RealtimeClient, commit_delay
from spear_lab.transports.protocol import SessionRequest

from test_ws_support import host, make_server, status, wait_until, ws_fd  # noqa: F401

S = RtasrState


class RecordingTransport:
    """A unit-test double of the Transport port: records what the fd asks of it."""

    name, backend = "fake", None

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> None:  # what the connector (an edge) does, never the fd
        self.calls.append("start")

    def wake(self) -> None:
        self.calls.append("wake")

    def connect(self, _fd: RtasrFd) -> "RecordingTransport":
        self.start()
        return self


def new_fd(connector=None, clock=time.monotonic) -> RtasrFd:
    return FdTable().alloc(RtasrFd, connector=connector, clock=clock)


def shown_state(fd: RtasrFd) -> str:
    with fd.table.lock:
        return json.loads(fd.ctl(RtasrCtl.GET_STATUS, None))["state"]


# -- the transition table -------------------------------------------------------------------

def test_every_state_is_in_the_table_and_entered():
    assert set(machine.TRANSITIONS) == set(RtasrState)
    entered = {S.INIT} | {new for row in machine.TRANSITIONS.values() for new in row.values()}
    assert entered == set(RtasrState)
    assert {machine.shown(s) for s in RtasrState} == set(RtasrState) - {S.CONNECTING, S.DRAINING}


def test_connecting_and_draining_are_internal():
    transport = RecordingTransport()
    fd = new_fd(transport.connect)
    with fd.table.lock:
        assert fd.ctl(RtasrCtl.CONNECT, None) == 0
    assert fd.phase is S.CONNECTING and shown_state(fd) == "Connected" and fd.state is S.CONNECTED
    assert transport.calls == ["start"]
    with fd.table.lock:
        assert fd.ctl(RtasrCtl.CONNECT, None) == 0  # a second CONNECT changes nothing
        assert fd.write(b"ab") == 2
    assert transport.calls == ["start", "wake"]
    fd.opened()
    assert fd.phase is S.CONNECTED and shown_state(fd) == "Connected"
    fd.segmentation = Segmentation(flush_on_close=True)
    assert fd.table.close(fd.fd) == 0
    # The fd records what it wants (closed, flush_on_close, the unsent audio) and wakes
    # the transport, which acts; the fd never starts or stops it.
    assert fd.phase is S.DRAINING and transport.calls == ["start", "wake", "wake"]
    assert fd.closed and fd.segmentation.flush_on_close and [i.data for i in fd.unsent] == [b"ab"]
    fd.transport_ended()
    assert fd.phase is S.CLOSED


def test_without_a_connector_connect_enters_connected_at_once():
    fd = new_fd()
    with fd.table.lock:
        assert fd.ctl(RtasrCtl.CONNECT, None) == 0
    assert fd.phase is S.CONNECTED
    fd.table.close(fd.fd)
    assert fd.phase is S.CLOSED


def test_refusals_record_the_rule():
    def refuse(_fd):
        raise ConnectRefused("backend 'x' has no credential", final=True)

    fd = new_fd(refuse)
    assert fd.last_refusal is None
    with fd.table.lock:
        assert fd.ctl(RtasrCtl.SET_PARAM, b'{"key":"max_send_queue_bytes","value":16}') == 0
        assert fd.phase is S.CONFIGURED
        assert fd.write(bytes(16)) == 16
        assert fd.write(b"x") == -Errno.EAGAIN
        assert fd.last_refusal == (Errno.EAGAIN, "send queue full: 16 of 16 bytes")
        assert fd.ctl(RtasrCtl.SET_PARAM, b'{"key":"","value":1}') == -Errno.EINVAL
        assert fd.last_refusal.errno == Errno.EINVAL and "key" in fd.last_refusal.rule
        assert fd.ctl(RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"nope"}') == -Errno.EINVAL
        assert "segmentation" in fd.last_refusal.rule
        assert fd.ctl(RtasrCtl.CONNECT, None) == -Errno.EIO
        assert fd.phase is S.ERROR and fd.last_error == "backend 'x' has no credential"
        assert fd.last_refusal == (Errno.EIO, "in state Error: backend 'x' has no credential")
        assert fd.ctl(RtasrCtl.FLUSH, None) == -Errno.EIO
        assert fd.ctl(RtasrCtl.CONNECT, None) == -Errno.EIO
    fd2 = new_fd()
    fd2.hang_up()
    with fd2.table.lock:
        assert fd2.write(b"x") == -Errno.EPIPE
    assert fd2.last_refusal.errno == Errno.EPIPE and "peer closed" in fd2.last_refusal.rule


def test_connect_refused_final_defaults_to_false():
    assert ConnectRefused("x").final is False and ConnectRefused("x", final=True).final is True
    from spear_lab.transports.base import ConnectRefused as Reexported

    assert Reexported is ConnectRefused


# -- the commit deadline -----------------------------------------------------------------------

def test_next_deadline_agrees_with_due():
    rnd = random.Random(15)
    for _ in range(3000):
        cc = ClientCommit(flush_interval_ms=rnd.choice([None, rnd.randint(0, 2000)]),
                          max_buffer_bytes=rnd.choice([None, rnd.randint(0, 20000)]),
                          silence_ms=rnd.choice([None, rnd.randint(0, 1500)]),
                          min_flush_gap_ms=rnd.randint(0, 1000))
        seg = Segmentation("client_commit", None, cc)
        t = rnd.uniform(0, 1e5)
        clock = CommitClock(t, t)
        for _ in range(rnd.randint(0, 5)):
            t += rnd.uniform(0, 0.5)
            clock.audio(rnd.choice([480, 960, 4800]), t, silent=rnd.random() < 0.5)
            if rnd.random() < 0.1:
                clock.reset(t, pending=rnd.random() < 0.3)
        deadline = clock.next_deadline(seg)
        for _ in range(10):
            now = t + rnd.uniform(0, 4)
            if deadline is None:
                assert not clock.due(seg, now)
            elif now >= deadline:
                assert clock.due(seg, now)
            elif clock.due(seg, now):
                assert deadline - now <= DEADLINE_SLACK_S * 1.01


def test_fd_deadline_and_delay():
    now = [50.0]
    fd = new_fd(clock=lambda: now[0])
    assert fd.next_commit_deadline() is None  # server_vad: the host never commits
    fd.segmentation = Segmentation.parse({"strategy": "client_commit",
                                          "client_commit": {"flush_interval_ms": 300, "min_flush_gap_ms": 0}})
    assert fd.next_commit_deadline() is None  # nothing written yet
    with fd.table.lock:
        assert fd.write(bytes(960)) == 960
    assert fd.next_commit_deadline() == pytest.approx(50.3, abs=1e-5)
    assert commit_delay(fd, 0.1) == 0.1 and commit_delay(fd, 1.0) == pytest.approx(0.3, abs=1e-5)
    now[0] = 50.31
    assert commit_delay(fd, 1.0) == 0.001  # overdue: the floor, never a busy loop
    assert fd.autoflush_tick() and fd.next_commit_deadline() is None  # pending until sent


# -- the sans-I/O client ---------------------------------------------------------------------------

def test_client_frames():
    fd = new_fd()
    client = RealtimeClient(fd, SessionRequest("m"), "ga")
    first = json.loads(client.start()[0])
    assert first["type"] == "session.update"
    assert first["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert client.next_frames() == []
    with fd.table.lock:
        assert fd.write(b"\x01\x02\x03") == 3
        assert fd.ctl(RtasrCtl.FLUSH, None) == 0
        assert fd.ctl(RtasrCtl.SEND_EVENT, b"[1]") == 0  # JSON, but not an event
    (append,) = client.next_frames()
    assert base64.b64decode(json.loads(append)["audio"]) == b"\x01\x02\x03"
    assert client.audio_since_commit == 3
    client.sent()
    assert fd.commit_clock.pending_flush
    assert client.next_frames() == [protocol.COMMIT] and client.audio_since_commit == 0
    client.sent()
    assert not fd.commit_clock.pending_flush
    with fd.table.lock:
        assert fd.ctl(RtasrCtl.CLEAR, None) == 0
    assert client.next_frames() == [protocol.CLEAR]  # the invalid text was skipped...
    error = json.loads(fd.recv_queue[0])  # ...and answered locally
    assert error["type"] == "error" and error["error"]["code"] == "invalid_event"
    fd.segmentation = Segmentation.parse({"strategy": "manual"})
    update = json.loads(client.next_frames()[0])
    assert update["session"]["audio"]["input"]["turn_detection"] is None
    fd.segmentation = Segmentation.parse({"strategy": "client_commit"})  # still null: nothing
    assert client.next_frames() == []


def test_client_close_flushes_unsent_audio():
    fd = new_fd()
    client = RealtimeClient(fd, SessionRequest("m"), "beta")
    client.start()
    assert client.close(flush=True) == []  # no audio went out: no commit
    fd.segmentation = Segmentation(flush_on_close=True)
    with fd.table.lock:
        assert fd.write(b"\x00\x01") == 2
    fd.table.close(fd.fd)
    frames = client.close(flush=True)
    assert len(frames) == 2 and frames[1] == protocol.COMMIT
    assert base64.b64decode(json.loads(frames[0])["audio"]) == b"\x00\x01" and fd.unsent == []


def test_client_receive_and_closed():
    vad = (b'{"type":"%s","audio_start_ms":0,"frame_ms":32,"probabilities":[0.1]}'
           % protocol.VAD_PROBABILITIES.encode())  # the type first, as the server sends it
    delta = b'{"type":"conversation.item.input_audio_transcription.delta","delta":"hi"}'
    hidden = RealtimeClient(new_fd(), SessionRequest("m"), vad_probabilities=True)
    assert protocol.VAD_PROBABILITIES in hidden.config.include
    got = hidden.receive(vad)
    assert got.event is None and got.vad["probabilities"] == [0.1]
    assert hidden.receive(delta) == (delta, None)
    asked = RealtimeClient(new_fd(), SessionRequest("m", include=(protocol.VAD_PROBABILITIES,)),
                           vad_probabilities=True)
    assert asked.receive(vad).event == vad and asked.receive(vad).vad is not None
    plain = RealtimeClient(new_fd(), SessionRequest("m"))
    assert plain.receive(vad) == (vad, None)
    scrubbing = RealtimeClient(new_fd(), SessionRequest("m"), scrub=lambda t: t.replace("sk-1", "***"))
    assert scrubbing.closed(ConnectionClosed(Close(1000, ""), None)) == (True, "websocket closed by peer")
    out = scrubbing.closed(ConnectionClosed(Close(1011, "bad key sk-1"), None))
    assert out == (True, "websocket closed by peer (code 1011: bad key ***)")
    assert scrubbing.closed(ConnectionClosed(None, None)).peer_closed is False


# -- the WebSocket driver sleeps until the deadline ------------------------------------------

def test_time_triggered_commit_goes_out_on_its_deadline(host, make_server):  # noqa: F811
    srv = make_server()
    fd = ws_fd(host, srv.url)
    seg = b'{"strategy":"client_commit","client_commit":{"flush_interval_ms":300,"min_flush_gap_ms":0}}'
    t0 = time.monotonic()  # the interval counts from SET_AUTOFLUSH (docs/abi.md §6.5)
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, seg) == 0
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
    assert status(host, fd)["state"] == "Connected"
    srv.frames(1)  # the session configuration
    entry = host.table.get(fd)
    wait_until(lambda: entry.phase is S.CONNECTED, what="the transport to report it is open")
    assert host.rtasr_write(fd, bytes(960)) == 960
    frames = srv.frames(3)
    elapsed = time.monotonic() - t0
    assert frames[2] == protocol.COMMIT
    assert 0.29 <= elapsed < 1.5, elapsed
    assert entry.commits == 1
    # Idle with nothing buffered: the sender wakes at most every IDLE_WAIT_S (0.1 s), it
    # does not poll (the old timer ran every 5 ms, about 100 checks in 0.5 s).
    calls = []
    real = entry.next_commit_deadline
    entry.next_commit_deadline = lambda: calls.append(1) or real()
    time.sleep(0.5)
    assert len(calls) <= 15, len(calls)
