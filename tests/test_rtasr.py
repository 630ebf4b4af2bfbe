"""rtasr fds through the Host methods: checklist items 31-39 and 46-50 (docs/abi.md §5)."""

from __future__ import annotations

import json
import time

import pytest

from spear_lab import Host
from spear_lab.abi import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EpollOp, Errno, RtasrCtl
from spear_lab.abi.jsonfmt import dumpb
from spear_lab.host import HostConfig

EAGAIN, EBADF, EINVAL, EIO, ENOSPC, EPIPE = (-Errno.EAGAIN, -Errno.EBADF, -Errno.EINVAL, -Errno.EIO,
                                             -Errno.ENOSPC, -Errno.EPIPE)
REFERENCE_STATUS_KEYS = {"dropped_events", "last_error", "max_recv_queue_bytes", "max_send_queue_bytes",
                         "recv_queue_bytes", "send_queue_bytes", "state"}
EXT_STATUS_KEYS = {"transport", "backend", "peer_closed"}


def set_param(host: Host, fd: int, key, value) -> int:
    return host.rtasr_ctl(fd, RtasrCtl.SET_PARAM, dumpb({"key": key, "value": value}))


def status(host: Host, fd: int) -> dict:
    out = host.rtasr_ctl(fd, RtasrCtl.GET_STATUS)
    assert isinstance(out, bytes), out
    return json.loads(out)


def watch(host: Host, fd: int, events: int) -> int:
    ep = host.spear_epoll_create()
    assert host.spear_epoll_ctl(ep, EpollOp.ADD, fd, events) == 0
    return ep


def until(predicate, timeout_s: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` (a generous bound, not a timing check)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


# -- item 31: backpressure ----------------------------------------------------------------

def test_send_queue_limit_16_bytes(host):
    fd = host.rtasr_create()
    ep = watch(host, fd, EPOLLOUT)
    assert host.spear_epoll_wait(ep, 8, 0) == [(fd, EPOLLOUT)]
    assert set_param(host, fd, "max_send_queue_bytes", 16) == 0
    assert host.rtasr_write(fd, b"x" * 16) == 16
    assert host.spear_epoll_wait(ep, 8, 0) == []
    assert host.rtasr_write(fd, b"y") == EAGAIN
    st = status(host, fd)
    assert st["send_queue_bytes"] == 16 and st["state"] == "Configured"


def test_write_is_all_or_nothing_and_exact_fit_succeeds(host):
    fd = host.rtasr_create()
    set_param(host, fd, "max_send_queue_bytes", 100)
    assert host.rtasr_write(fd, bytes(60)) == 60
    assert host.rtasr_write(fd, bytes(41)) == EAGAIN
    assert status(host, fd)["send_queue_bytes"] == 60
    assert host.rtasr_write(fd, bytes(40)) == 40
    assert status(host, fd)["send_queue_bytes"] == 100


def test_write_larger_than_limit_never_succeeds(host):
    fd = host.rtasr_create()
    set_param(host, fd, "max_send_queue_bytes", 10)
    assert host.rtasr_write(fd, bytes(11)) == EAGAIN
    assert status(host, fd)["send_queue_bytes"] == 0


def test_limit_zero_is_never_writable(host):
    fd = host.rtasr_create()
    set_param(host, fd, "max_send_queue_bytes", 0)
    ep = watch(host, fd, EPOLLOUT)
    assert host.spear_epoll_wait(ep, 8, 0) == []
    assert host.rtasr_write(fd, b"a") == EAGAIN


def test_non_integer_limits_are_stored_but_ignored(host):
    fd = host.rtasr_create()
    for value in (16.0, "16", -1, True, None, [16]):
        assert set_param(host, fd, "max_send_queue_bytes", value) == 0
        assert status(host, fd)["max_send_queue_bytes"] == 1048576
    assert set_param(host, fd, "max_recv_queue_bytes", 5) == 0
    assert status(host, fd)["max_recv_queue_bytes"] == 5


def test_lowering_the_limit_drops_nothing(host):
    fd = host.rtasr_create()
    assert host.rtasr_write(fd, bytes(100)) == 100
    set_param(host, fd, "max_send_queue_bytes", 50)
    st = status(host, fd)
    assert st["send_queue_bytes"] == 100 and st["max_send_queue_bytes"] == 50
    assert host.rtasr_write(fd, b"a") == EAGAIN


def test_host_caps_clamp_guest_limits():
    h = Host(HostConfig(max_send_queue_bytes=4096, max_recv_queue_bytes=2048))
    try:
        fd = h.rtasr_create()
        st = status(h, fd)
        assert st["max_send_queue_bytes"] == 4096 and st["max_recv_queue_bytes"] == 2048
        set_param(h, fd, "max_send_queue_bytes", 1 << 30)
        assert status(h, fd)["max_send_queue_bytes"] == 4096
    finally:
        h.shutdown()


# -- item 32: states ----------------------------------------------------------------------

def test_fresh_fd_read_and_state_progression(host):
    fd = host.rtasr_create()
    assert fd == 1000
    assert host.rtasr_read(fd) == EAGAIN
    assert status(host, fd)["state"] == "Init"
    assert set_param(host, fd, "anything", {"nested": [1, 2]}) == 0
    assert status(host, fd)["state"] == "Configured"
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
    assert status(host, fd)["state"] == "Connected"


def test_connect_from_init_is_immediate(host):
    fd = host.rtasr_create()
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
    st = status(host, fd)
    assert st["state"] == "Connected" and st["transport"] == "stub" and st["backend"] is None


def test_writes_before_connect_are_queued(host):
    fd = host.rtasr_create()
    assert host.rtasr_write(fd, bytes(960)) == 960
    assert host.rtasr_write(fd, bytes(960)) == 960
    assert status(host, fd)["send_queue_bytes"] == 1920
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
    # the stub drains one item per tick
    assert until(lambda: status(host, fd)["send_queue_bytes"] == 0)


# -- item 33, 34: control errors ------------------------------------------------------------

@pytest.mark.parametrize("payload", [None, b"", b"{", b"not json", b"[]", b"42", b'"key"',
                                     b"{}", b'{"value":1}', b'{"key":""}', b'{"key":5,"value":1}',
                                     b'{"key":null}', b"\xff\xfe"])
def test_set_param_rejects(host, payload):
    fd = host.rtasr_create()
    assert host.rtasr_ctl(fd, RtasrCtl.SET_PARAM, payload) == EINVAL
    assert status(host, fd)["state"] == "Init"


def test_set_param_value_may_be_missing(host):
    fd = host.rtasr_create()
    assert host.rtasr_ctl(fd, RtasrCtl.SET_PARAM, b'{"key":"model"}') == 0
    assert host.table.get(fd).params == {"model": None}


@pytest.mark.parametrize("cmd", [0, 9, 10, 99, -1])
def test_unknown_ctl_command(host, cmd):
    fd = host.rtasr_create()
    assert host.rtasr_ctl(fd, cmd) == EINVAL


def test_unknown_fd_is_checked_before_the_command(host):
    assert host.rtasr_ctl(4242, RtasrCtl.GET_STATUS) == EBADF
    assert host.rtasr_ctl(4242, 99) == EBADF
    assert host.rtasr_write(4242, b"x") == EBADF
    assert host.rtasr_read(4242) == EBADF


def test_wrong_kind_fd(host):
    ep = host.spear_epoll_create()
    assert host.rtasr_ctl(ep, RtasrCtl.GET_STATUS) == EBADF
    assert host.rtasr_ctl(ep, RtasrCtl.SET_PARAM, b'{"key":"a"}') == EBADF
    # JSON is parsed before the kind check
    assert host.rtasr_ctl(ep, RtasrCtl.SET_PARAM, b"nope") == EINVAL
    assert host.rtasr_ctl(ep, RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"nope"}') == EINVAL
    assert host.rtasr_ctl(ep, RtasrCtl.SEND_EVENT, b"{") == EINVAL
    assert host.rtasr_ctl(ep, 99) == EINVAL
    assert host.rtasr_write(ep, b"x") == EBADF
    assert host.rtasr_read(ep) == EBADF


# -- SEND_EVENT, FLUSH, CLEAR -----------------------------------------------------------------

def queued(host: Host, fd: int) -> list[tuple[bool, bytes]]:
    return [(item.audio, item.data) for item in host.table.get(fd).send_queue]


def test_send_event_is_reserialised_compactly_with_sorted_keys(host):
    fd = host.rtasr_create()
    assert host.rtasr_ctl(fd, RtasrCtl.SEND_EVENT, '{ "type" : "x",  "a" : [1, 2] , "é":"ü"}'.encode()) == 0
    assert host.rtasr_ctl(fd, RtasrCtl.SEND_EVENT, b" 7 ") == 0
    text = '{"a":[1,2],"type":"x","é":"ü"}'.encode()
    assert queued(host, fd) == [(False, text), (False, b"7")]
    assert status(host, fd)["send_queue_bytes"] == len(text) + 1


@pytest.mark.parametrize("payload", [None, b"", b"{", b"nan-ish"])
def test_send_event_rejects_non_json(host, payload):
    fd = host.rtasr_create()
    assert host.rtasr_ctl(fd, RtasrCtl.SEND_EVENT, payload) == EINVAL
    assert queued(host, fd) == []


@pytest.mark.parametrize("cmd, payload", [
    (RtasrCtl.SEND_EVENT, b"NaN"), (RtasrCtl.SEND_EVENT, b'{"type":Infinity}'),
    (RtasrCtl.SEND_EVENT, b'"\\ud800"'), (RtasrCtl.SEND_EVENT, b'{"\\udfff":1}'),
    (RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"server_vad","vad":{"threshold":NaN}}'),
    (RtasrCtl.SET_PARAM, b'{"key":"k","value":-Infinity}'),
])
def test_json_python_accepts_but_rfc_8259_does_not(host, cmd, payload):
    # Python's json takes NaN/Infinity and lone surrogates; forwarding them would send
    # invalid JSON upstream (or fail inside the host): -EINVAL like the reference parser
    fd = host.rtasr_create()
    assert host.rtasr_ctl(fd, cmd, payload) == EINVAL
    assert queued(host, fd) == [] and host.table.get(fd).params == {}
    assert b"NaN" not in host.rtasr_ctl(fd, RtasrCtl.GET_AUTOFLUSH)


def test_flush_and_clear_texts_and_capacity(host):
    fd = host.rtasr_create()
    assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == 0
    assert host.rtasr_ctl(fd, RtasrCtl.CLEAR) == 0
    assert queued(host, fd) == [(False, b'{"type":"input_audio_buffer.commit"}'),
                                (False, b'{"type":"input_audio_buffer.clear"}')]
    assert status(host, fd)["send_queue_bytes"] == 36 + 35
    set_param(host, fd, "max_send_queue_bytes", 36 + 35 + 35)
    assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == EAGAIN
    assert host.rtasr_ctl(fd, RtasrCtl.CLEAR) == 0
    assert host.rtasr_ctl(fd, RtasrCtl.SEND_EVENT, b"1") == EAGAIN


def test_flush_sets_pending_and_clear_resets_it(host):
    fd = host.rtasr_create()
    entry = host.table.get(fd)
    host.rtasr_write(fd, bytes(10))
    assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == 0
    assert entry.commit_clock.pending_flush and entry.commit_clock.buffered_bytes == 0
    host.rtasr_write(fd, bytes(10))
    assert host.rtasr_ctl(fd, RtasrCtl.CLEAR) == 0
    assert not entry.commit_clock.pending_flush and entry.commit_clock.buffered_bytes == 0
    # CLEAR does not remove queued audio
    assert [a for a, _ in queued(host, fd)] == [True, False, True, False]


# -- item 35, 38: stub events, second CONNECT -----------------------------------------------

def test_stub_events_arrive_and_drain_to_eagain(host):
    fd = host.rtasr_create()
    assert set_param(host, fd, "stub_event_interval_ms", 20) == 0
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
    ep = watch(host, fd, EPOLLIN)
    assert host.spear_epoll_wait(ep, 8, 500) == [(fd, EPOLLIN)]
    n = 0
    while isinstance(event := host.rtasr_read(fd), bytes):
        assert isinstance(json.loads(event).get("type"), str)
        n += 1
    assert n >= 1 and event == EAGAIN
    assert host.spear_epoll_wait(ep, 8, 0) in ([], [(fd, EPOLLIN)])  # a new event may land


def test_second_connect_is_a_no_op(host):
    fd = host.rtasr_create()
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
    entry = host.table.get(fd)
    transport = entry.transport
    before = {k: v for k, v in status(host, fd).items() if k not in ("recv_queue_bytes",)}
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
    after = {k: v for k, v in status(host, fd).items() if k not in ("recv_queue_bytes",)}
    assert entry.transport is transport
    assert before["state"] == after["state"] == "Connected"
    assert before["transport"] == after["transport"] == "stub"


# -- item 39: websocket without a backend --------------------------------------------------------

def test_websocket_without_matching_backend_falls_back_to_stub():
    h = Host(HostConfig(stub_fallback=True))
    try:
        fd = h.rtasr_create()
        set_param(h, fd, "transport", "websocket")
        set_param(h, fd, "backend", "no-such-backend-anywhere")
        set_param(h, fd, "stub_event_interval_ms", 10)
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        st = status(h, fd)
        assert st["state"] == "Connected" and st["transport"] == "stub" and st["last_error"] is None
        ep = watch(h, fd, EPOLLIN)
        assert h.spear_epoll_wait(ep, 8, 2000) == [(fd, EPOLLIN)]
        assert json.loads(h.rtasr_read(fd))["type"] == "transcription.delta"
    finally:
        h.shutdown()


def test_websocket_without_backend_and_no_fallback_fails_connect():
    h = Host(HostConfig(stub_fallback=False))
    try:
        fd = h.rtasr_create()
        set_param(h, fd, "transport", "websocket")
        set_param(h, fd, "backend", "no-such-backend-anywhere")
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == EIO
        st = status(h, fd)
        assert st["state"] == "Error" and st["last_error"] and st["transport"] is None
        assert h.rtasr_write(h.rtasr_create(), b"") == 0  # other fds unaffected
    finally:
        h.shutdown()


# -- item 37: receive overflow ----------------------------------------------------------------

def test_receive_queue_drops_oldest_and_never_exceeds_limit(host):
    fd = host.rtasr_create()
    set_param(host, fd, "max_recv_queue_bytes", 1000)  # four 224-byte events
    set_param(host, fd, "stub_event_interval_ms", 0)
    host.rtasr_ctl(fd, RtasrCtl.CONNECT)
    seen = []

    def grown() -> bool:
        st = status(host, fd)
        seen.append(st)
        return st["dropped_events"] >= 5

    assert until(grown)
    assert all(st["recv_queue_bytes"] <= 1000 for st in seen)
    counts = [st["dropped_events"] for st in seen]
    assert counts == sorted(counts)
    # the survivors are the newest events, in order
    seqs = []
    while isinstance(ev := host.rtasr_read(fd), bytes):
        seqs.append(json.loads(ev)["seq"])
    assert seqs == sorted(seqs) and seqs[0] > 1


def test_event_larger_than_the_limit_is_dropped_at_once(host):
    fd = host.rtasr_create()
    entry = host.table.get(fd)
    set_param(host, fd, "max_recv_queue_bytes", 10)
    entry.push_event(b"x" * 11)
    st = status(host, fd)
    assert st["dropped_events"] == 1 and st["recv_queue_bytes"] == 0
    entry.push_event(b"y" * 10)
    assert host.rtasr_read(fd) == b"y" * 10


# -- item 46: status keys -----------------------------------------------------------------------

def test_status_has_the_seven_reference_keys_plus_three_ext(host):
    fd = host.rtasr_create()
    out = host.rtasr_ctl(fd, RtasrCtl.GET_STATUS)
    st = json.loads(out)
    assert set(st) == REFERENCE_STATUS_KEYS | EXT_STATUS_KEYS
    assert len(st) == 10
    assert out.startswith(b'{"backend":null,"dropped_events":0,"last_error":null,'
                          b'"max_recv_queue_bytes":1048576,"max_send_queue_bytes":1048576,')
    assert b" " not in out  # item 66: compact
    assert list(st) == sorted(st)
    assert st == {"backend": None, "dropped_events": 0, "last_error": None,
                  "max_recv_queue_bytes": 1048576, "max_send_queue_bytes": 1048576,
                  "peer_closed": False, "recv_queue_bytes": 0, "send_queue_bytes": 0,
                  "state": "Init", "transport": None}


# -- item 47: close ---------------------------------------------------------------------------

def test_close_is_idempotent_and_later_calls_are_ebadf(host):
    fd = host.rtasr_create()
    host.rtasr_ctl(fd, RtasrCtl.CONNECT)
    transport = host.table.get(fd).transport
    assert host.rtasr_close(fd) == 0
    assert host.rtasr_close(fd) == 0
    assert transport.finished.wait(5)
    for cmd in RtasrCtl:
        payload = b'{"key":"a","value":1}' if cmd == RtasrCtl.SET_PARAM else b"{}"
        assert host.rtasr_ctl(fd, cmd, payload) == EBADF, cmd
    assert host.rtasr_write(fd, b"x") == EBADF
    assert host.rtasr_write(fd, b"") == EBADF
    assert host.rtasr_read(fd) == EBADF
    assert host.rtasr_close(99999) == EBADF


def test_close_reports_hup_keeping_previous_bits(host):
    fd = host.rtasr_create()
    ep = watch(host, fd, EPOLLOUT | EPOLLHUP)
    host.rtasr_close(fd)
    assert host.spear_epoll_wait(ep, 8, 0) == [(fd, EPOLLOUT | EPOLLHUP)]


# -- item 48, 49: fixes ---------------------------------------------------------------------------

def test_short_read_keeps_the_event(host):
    fd = host.rtasr_create()
    entry = host.table.get(fd)
    entry.push_event(b'{"type":"a","n":1}')
    entry.push_event(b'{"type":"b"}')
    assert host.rtasr_read(fd, cap=5) == ENOSPC
    assert status(host, fd)["recv_queue_bytes"] == 18 + 12
    assert host.rtasr_read(fd, cap=18) == b'{"type":"a","n":1}'
    assert host.rtasr_read(fd) == b'{"type":"b"}'
    assert host.rtasr_read(fd) == EAGAIN


def test_zero_length_write_queues_nothing(host):
    fd = host.rtasr_create()
    assert host.rtasr_write(fd, b"") == 0
    st = status(host, fd)
    assert st["send_queue_bytes"] == 0 and queued(host, fd) == []
    # still 0 when the queue is full (nothing to queue)
    set_param(host, fd, "max_send_queue_bytes", 0)
    assert host.rtasr_write(fd, b"") == 0


# -- Error state and item 50 (peer close), through the sans-I/O transport side ------------------

def test_error_state(host):
    fd = host.rtasr_create()
    host.rtasr_ctl(fd, RtasrCtl.CONNECT)
    entry = host.table.get(fd)
    ep = watch(host, fd, EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP)
    entry.push_event(b'{"type":"left"}')
    entry.fail("backend went away")
    st = status(host, fd)
    assert st["state"] == "Error" and st["last_error"] == "backend went away"
    revents = dict(host.spear_epoll_wait(ep, 8, 0))[fd]
    assert revents & EPOLLERR and revents & EPOLLIN and not revents & EPOLLOUT  # a fix, docs/abi.md §12
    assert host.rtasr_write(fd, b"x") == EIO
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == EIO
    for cmd in (RtasrCtl.FLUSH, RtasrCtl.CLEAR):
        assert host.rtasr_ctl(fd, cmd) == EIO
    assert host.rtasr_ctl(fd, RtasrCtl.SEND_EVENT, b"{}") == EIO
    # still accepted in Error
    assert set_param(host, fd, "k", 1) == 0
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"manual"}') == 0
    assert isinstance(host.rtasr_ctl(fd, RtasrCtl.GET_AUTOFLUSH), bytes)
    # queued events still drain
    assert host.rtasr_read(fd) == b'{"type":"left"}'
    assert host.rtasr_read(fd) == EAGAIN
    entry.fail("second failure")
    assert status(host, fd)["last_error"] == "backend went away"


def test_peer_close_is_sticky(host):
    fd = host.rtasr_create()
    entry = host.table.get(fd)
    ep = watch(host, fd, EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP)
    entry.push_event(b'{"type":"a"}')
    entry.push_event(b'{"type":"b"}')
    entry.hang_up()
    for expected in (b'{"type":"a"}', b'{"type":"b"}', EAGAIN):
        revents = dict(host.spear_epoll_wait(ep, 8, 0))[fd]
        assert revents & EPOLLHUP and not revents & EPOLLOUT
        assert host.rtasr_read(fd) == expected
    assert dict(host.spear_epoll_wait(ep, 8, 0))[fd] == EPOLLHUP
    assert host.rtasr_write(fd, b"abc") == EPIPE
    assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == EPIPE
    st = status(host, fd)
    assert st["peer_closed"] is True and st["last_error"] and st["state"] == "Init"
