"""Checklist items 56-63 through the Host's Python methods, with the real audio edge
(stub source on the I/O loop, host policy, PortAudio missing)."""

from __future__ import annotations

import builtins
import json
import threading
import time

import pytest
from hypothesis import given, settings
from test_mic_fd import malformed_requests

from spear_lab import Host
from spear_lab.abi.constants import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, Errno, MicCtl
from spear_lab.audio import portaudio
from spear_lab.host import HostConfig

EINVAL, EIO, EAGAIN, EBADF, ENOSPC = (-Errno.EINVAL, -Errno.EIO, -Errno.EAGAIN, -Errno.EBADF,
                                      -Errno.ENOSPC)
ALL = EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP


@pytest.fixture
def host():
    h = Host(HostConfig())
    yield h
    h.shutdown()


@pytest.fixture
def no_portaudio(monkeypatch):
    """Pretend the PortAudio library is not installed."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(portaudio, "_sd", None)
    monkeypatch.setattr(builtins, "__import__", fake_import)


def status(host: Host, fd: int) -> dict:
    return json.loads(host.mic_ctl(fd, MicCtl.GET_STATUS))


def set_param(host: Host, fd: int, obj) -> int:
    return host.mic_ctl(fd, MicCtl.SET_PARAM, json.dumps(obj).encode())


def wait_ready(host: Host, fd: int, events: int, timeout_ms: int = 2000) -> int:
    ep = host.spear_epoll_create()
    assert host.spear_epoll_ctl(ep, 1, fd, events) == 0
    got = host.spear_epoll_wait(ep, 8, timeout_ms)
    host.spear_epoll_close(ep)
    return got[0][1] if got else 0


def test_item56_stub_frames_then_hup(host):
    fd = host.mic_create()
    assert set_param(host, fd, {"source": "stub", "sample_rate_hz": 24000, "channels": 1,
                                "frame_ms": 20}) == 0
    ep = host.spear_epoll_create()
    assert host.spear_epoll_ctl(ep, 1, fd, ALL) == 0
    assert host.spear_epoll_wait(ep, 8, 500) == [(fd, EPOLLIN)]
    frame = host.mic_read(fd)
    assert isinstance(frame, bytes) and len(frame) == 960
    assert host.mic_close(fd) == 0
    (rfd, rev), = host.spear_epoll_wait(ep, 8, 500)
    assert rfd == fd and rev & EPOLLHUP and not rev & EPOLLOUT
    assert host.mic_read(fd) == EBADF
    assert host.mic_close(fd) == 0


def test_item57_stub_pattern(host):
    fd = host.mic_create()
    assert set_param(host, fd, {"source": "stub", "sample_rate_hz": 1000, "frame_ms": 10,
                                "stub_pcm16_base64": "AQACAAMABAA="}) == 0
    assert wait_ready(host, fd, EPOLLIN) == EPOLLIN
    first = host.mic_read(fd)
    deadline = time.monotonic() + 2
    second = host.mic_read(fd)
    while second == EAGAIN and time.monotonic() < deadline:
        time.sleep(0.005)
        second = host.mic_read(fd)
    pat = bytes([1, 0, 2, 0, 3, 0, 4, 0])
    assert first == (pat * 3)[:20]
    assert second == (pat * 4)[4:24]


def test_item58_read_before_set_param(host):
    fd = host.mic_create()
    assert fd == 1000
    assert host.mic_read(fd) == EAGAIN
    s = status(host, fd)
    assert s["config"] is None and s["running"] is False


def test_item59_device_failure_without_fallback(host):
    fd = host.mic_create()
    rc = set_param(host, fd, {"source": "device", "device": {"name": "no such microphone"},
                              "fallback": {"to_stub": False}})
    assert rc == EIO
    s = status(host, fd)
    assert s["running"] is False and s["source"] is None
    assert s["last_error"] in ("input device not found: no such microphone", portaudio.PORTAUDIO_HINT)
    assert wait_ready(host, fd, ALL, 0) == EPOLLERR
    assert set_param(host, fd, {"source": "stub"}) == 0
    assert status(host, fd)["last_error"] is None
    assert not wait_ready(host, fd, EPOLLERR, 0)


def test_item59_without_portaudio_says_what_to_install(host, no_portaudio):
    fd = host.mic_create()
    assert set_param(host, fd, {"source": "device", "fallback": {"to_stub": False}}) == EIO
    err = status(host, fd)["last_error"]
    assert "apt-get install libportaudio2" in err
    assert json.loads(host.mic_ctl(fd, MicCtl.LIST_DEVICES)) == {"default": None, "devices": []}


def test_item60_default_falls_back_to_stub(host, no_portaudio):
    fd = host.mic_create()
    assert set_param(host, fd, {}) == 0
    s = status(host, fd)
    assert s["running"] is True and s["source"] == "stub" and s["last_error"] is None
    assert wait_ready(host, fd, EPOLLIN) == EPOLLIN
    assert host.mic_read(fd) == bytes(960)


def test_item61_bad_pattern(host):
    fd = host.mic_create()
    assert set_param(host, fd, {"source": "stub", "stub_pcm16_base64": "not base64!"}) == EINVAL
    big = "A" * (((10 * 1024 * 1024 + 3) // 3) * 4)  # decodes to > 10 MiB
    assert set_param(host, fd, {"source": "stub", "stub_pcm16_base64": big}) == EINVAL
    assert status(host, fd)["config"] is None


def test_item62_queue_cap_while_nobody_reads(host):
    fd = host.mic_create()
    assert set_param(host, fd, {"source": "stub", "max_queue_bytes": 2000}) == 0
    entry = host.table.get(fd)
    deadline = time.monotonic() + 5
    seen = []
    while time.monotonic() < deadline and len(seen) < 3:
        s = status(host, fd)
        assert s["queue_bytes"] <= 1920
        if s["dropped_frames"] > (seen[-1] if seen else 0):
            seen.append(s["dropped_frames"])
        time.sleep(0.03)
    assert len(seen) == 3 and seen == sorted(seen)  # dropped_frames keeps growing
    assert entry.dropped_frames == entry.frames_pushed - len(entry.queue)


def test_item63_unknown_commands_and_no_epollout(host):
    fd = host.mic_create()
    assert host.mic_ctl(fd, 0) == EINVAL
    assert host.mic_ctl(fd, 99) == EINVAL
    assert host.mic_ctl(4242, 99) == EBADF  # fd lookup first
    assert set_param(host, fd, {"source": "stub", "frame_ms": 5}) == 0
    ep = host.spear_epoll_create()
    host.spear_epoll_ctl(ep, 1, fd, ALL)
    for _ in range(5):
        for _, rev in host.spear_epoll_wait(ep, 8, 100):
            assert not rev & EPOLLOUT
        host.mic_read(fd)


def test_set_param_json_errors_and_kinds(host):
    fd = host.mic_create()
    assert host.mic_ctl(fd, MicCtl.SET_PARAM, None) == EINVAL
    assert host.mic_ctl(fd, MicCtl.SET_PARAM, b"{oops") == EINVAL
    rt = host.rtasr_create()
    assert host.mic_ctl(rt, MicCtl.GET_STATUS) == EBADF
    assert host.mic_read(rt) == EBADF


def test_frame_kept_when_buffer_too_small(host):
    fd = host.mic_create()
    set_param(host, fd, {"source": "stub"})
    assert wait_ready(host, fd, EPOLLIN) == EPOLLIN
    assert host.mic_read(fd, cap=100) == ENOSPC
    assert len(host.mic_read(fd)) == 960


def test_bad_request_keeps_running_stub(host):
    """docs/abi.md §12 with a real producer: -EINVAL, same generation and source, frames keep coming."""
    fd = host.mic_create()
    assert set_param(host, fd, {"source": "stub", "frame_ms": 10, "sample_rate_hz": 8000}) == 0
    entry = host.table.get(fd)
    handle = entry.source
    for bad in ({"frame_ms": 0}, {"channels": 9}, {"format": "f32"}, {"stub_pcm16_base64": "@"}):
        assert set_param(host, fd, bad) == EINVAL
    assert entry.source is handle and not handle.stopped
    assert status(host, fd)["generation"] == 1
    while isinstance(host.mic_read(fd), bytes):
        pass
    assert wait_ready(host, fd, EPOLLIN) == EPOLLIN
    assert len(host.mic_read(fd)) == 160


def test_unknown_source_uses_stub(host, caplog):
    fd = host.mic_create()
    with caplog.at_level("INFO", logger="spear_lab.audio.sources"):
        assert set_param(host, fd, {"source": "microphone-please", "fallback": {"to_stub": False}}) == 0
    assert status(host, fd)["source"] == "stub"
    assert "unknown mic source" in caplog.text


def test_policy_substitutes_stub_for_device():
    with Host(HostConfig(mic_device="stub")) as h:
        fd = h.mic_create()
        assert set_param(h, fd, {"source": "device", "fallback": {"to_stub": False}}) == 0
        assert status(h, fd)["source"] == "stub"
        assert json.loads(h.mic_ctl(fd, MicCtl.LIST_DEVICES)) == {"default": None, "devices": []}


def test_invalid_policy_is_a_start_failure():
    with Host(HostConfig(mic_device="speaker")) as h:
        fd = h.mic_create()
        assert set_param(h, fd, {"fallback": {"to_stub": False}}) == EIO
        assert status(h, fd)["last_error"] == "the host's microphone policy is invalid"
        assert set_param(h, fd, {}) == 0 and status(h, fd)["source"] == "stub"


def test_no_thread_left_after_shutdown():
    before = {t.ident for t in threading.enumerate()}
    h = Host()
    fds = [h.mic_create() for _ in range(3)]
    for fd in fds:
        set_param(h, fd, {"source": "stub", "frame_ms": 5})
    assert wait_ready(h, fds[0], EPOLLIN) == EPOLLIN
    sources = [h.table.get(fd).source for fd in fds]
    h.shutdown()
    assert all(s.join(2) for s in sources)
    assert {t.ident for t in threading.enumerate()} <= before


@settings(max_examples=40, deadline=None)
@given(request=malformed_requests())
def test_bad_requests_leave_a_running_stub_alone(request):
    """docs/abi.md §12 property with the real stub: -EINVAL, and the same producer keeps running."""
    with Host() as h:
        fd = h.mic_create()
        assert set_param(h, fd, {"source": "stub", "sample_rate_hz": 8000, "frame_ms": 10}) == 0
        entry = h.table.get(fd)
        handle, before = entry.source, status(h, fd)
        assert h.mic_ctl(fd, MicCtl.SET_PARAM, json.dumps(request).encode()) == EINVAL
        after = status(h, fd)
        for key in ("config", "generation", "running", "source", "last_error", "max_queue_bytes"):
            assert after[key] == before[key]
        assert entry.source is handle and not handle.stopped and not handle.done


def test_audio_stack_crash_is_a_start_failure(host, monkeypatch):
    from spear_lab.audio import device

    def broken(*args, **kwargs):
        raise RuntimeError("PortAudio exploded")

    monkeypatch.setattr(device, "DeviceSource", broken)
    fd = host.mic_create()
    assert set_param(host, fd, {"fallback": {"to_stub": False}}) == EIO
    assert status(host, fd)["last_error"] == "device source failed: RuntimeError"
    assert set_param(host, fd, {}) == 0 and status(host, fd)["source"] == "stub"
