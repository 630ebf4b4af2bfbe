"""Checklist items 56-63 from a WAT guest: every call goes through the wasm glue
(guest memory, length cells, output protocol)."""

from __future__ import annotations

import json
import time

import pytest
from fixtures_audio import CTL_BUF, FRAME_BUF, PROBE_WAT, capture_guest_wat

from spear_lab import Host
from spear_lab.abi.constants import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, Errno, MicCtl
from spear_lab.host import HostConfig
from spear_lab.runtime.guest import instantiate, start_guest

EINVAL, EIO, EAGAIN, ENOSPC = -Errno.EINVAL, -Errno.EIO, -Errno.EAGAIN, -Errno.ENOSPC
ALL = EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP


@pytest.fixture
def guest():
    host = Host(HostConfig(mic_device="stub"))
    inst = instantiate(host, PROBE_WAT)
    yield inst
    inst.close()
    host.shutdown()


def ctl(inst, fd: int, cmd: int, payload: bytes = b"", cap: int = 0) -> tuple[int, bytes]:
    """mic_ctl from the guest; returns (rc, output bytes when rc > 0)."""
    if payload:
        inst.write(CTL_BUF, payload)
    rc = inst.call("ctl", fd, cmd, len(payload) or cap)
    return rc, inst.read(CTL_BUF, rc) if rc > 0 else b""


def status(inst, fd: int) -> dict:
    rc, out = ctl(inst, fd, MicCtl.GET_STATUS, cap=4096)
    assert rc > 0
    return json.loads(out)


def read(inst, fd: int, cap: int = 65536) -> bytes | int:
    rc = inst.call("read", fd, cap)
    return inst.read(FRAME_BUF, rc) if rc >= 0 else rc


def wait(inst, ep: int, timeout_ms: int) -> list[tuple[int, int]]:
    n = inst.call("ep_wait", ep, timeout_ms)
    assert n >= 0
    return [(inst.call("rec_fd", i), inst.call("rec_ev", i)) for i in range(n)]


def test_items_56_and_63_stub_in_a_guest(guest):
    fd = guest.call("create")
    assert fd == 1000
    assert ctl(guest, fd, 0)[0] == EINVAL and ctl(guest, fd, 99)[0] == EINVAL
    rc, _ = ctl(guest, fd, MicCtl.SET_PARAM,
                b'{"sample_rate_hz":24000,"channels":1,"frame_ms":20,"source":"stub"}')
    assert rc == 0
    ep = guest.call("ep_create")
    assert guest.call("ep_add", ep, fd, ALL) == 0
    assert wait(guest, ep, 500) == [(fd, EPOLLIN)]
    frame = read(guest, fd)
    assert frame == bytes(960)
    assert guest.call("close", fd) == 0
    (rfd, rev), = wait(guest, ep, 500)
    assert rfd == fd and rev & EPOLLHUP and not rev & EPOLLOUT
    assert guest.call("close", fd) == 0


def test_item57_pattern_in_a_guest(guest):
    fd = guest.call("create")
    assert ctl(guest, fd, MicCtl.SET_PARAM, b'{"sample_rate_hz":1000,"frame_ms":10,"source":"stub",'
                                             b'"stub_pcm16_base64":"AQACAAMABAA="}')[0] == 0
    ep = guest.call("ep_create")
    guest.call("ep_add", ep, fd, EPOLLIN)
    frames = []
    deadline = time.monotonic() + 2
    while len(frames) < 2 and time.monotonic() < deadline:
        if wait(guest, ep, 500):
            got = read(guest, fd)
            if isinstance(got, bytes):
                frames.append(got)
    pat = bytes([1, 0, 2, 0, 3, 0, 4, 0])
    assert frames == [(pat * 3)[:20], (pat * 4)[4:24]]


def test_item58_before_set_param(guest):
    fd = guest.call("create")
    assert read(guest, fd) == EAGAIN
    s = status(guest, fd)
    assert s["config"] is None and s["running"] is False


def test_item59_device_failure_in_a_guest():
    with Host(HostConfig()) as host:
        inst = instantiate(host, PROBE_WAT)
        try:
            fd = inst.call("create")
            rc, _ = ctl(inst, fd, MicCtl.SET_PARAM,
                        b'{"source":"device","device":{"name":"no such microphone"},'
                        b'"fallback":{"to_stub":false}}')
            assert rc == EIO
            s = status(inst, fd)
            assert s["running"] is False and s["last_error"]
            ep = inst.call("ep_create")
            inst.call("ep_add", ep, fd, ALL)
            assert wait(inst, ep, 0) == [(fd, EPOLLERR)]
            assert ctl(inst, fd, MicCtl.SET_PARAM, b'{"source":"stub"}')[0] == 0
            assert status(inst, fd)["last_error"] is None
        finally:
            inst.close()


def test_items_60_61_in_a_guest(guest):
    fd = guest.call("create")
    # The host substitutes the stub for "device" (HostConfig.mic_device="stub").
    assert ctl(guest, fd, MicCtl.SET_PARAM, b"{}")[0] == 0
    assert status(guest, fd)["source"] == "stub"
    assert ctl(guest, fd, MicCtl.SET_PARAM, b'{"stub_pcm16_base64":"%%%"}')[0] == EINVAL
    assert status(guest, fd)["generation"] == 1  # nothing changed (docs/abi.md §12)


def test_item62_in_a_guest(guest):
    fd = guest.call("create")
    assert ctl(guest, fd, MicCtl.SET_PARAM, b'{"source":"stub","max_queue_bytes":2000,"frame_ms":5}')[0] == 0
    s = status(guest, fd)
    while s["dropped_frames"] < 3:
        assert s["queue_bytes"] <= 2000
        time.sleep(0.01)
        s = status(guest, fd)
    assert s["queue_bytes"] <= 2000


def test_too_small_buffer_keeps_the_frame(guest):
    fd = guest.call("create")
    ctl(guest, fd, MicCtl.SET_PARAM, b'{"source":"stub","stub_pcm16_base64":"AQACAAMABAA="}')
    ep = guest.call("ep_create")
    guest.call("ep_add", ep, fd, EPOLLIN)
    assert wait(guest, ep, 1000) == [(fd, EPOLLIN)]
    assert read(guest, fd, cap=100) == ENOSPC
    assert guest.call("read_cell") == 960  # the needed size is written back
    frame = read(guest, fd, cap=960)
    assert frame[:8] == bytes([1, 0, 2, 0, 3, 0, 4, 0])  # the first frame, not a later one
    rc, _ = ctl(guest, fd, MicCtl.GET_STATUS, cap=10)
    assert rc == ENOSPC and guest.call("cell") > 10


def test_list_devices_from_a_guest(guest):
    fd = guest.call("create")
    rc, out = ctl(guest, fd, MicCtl.LIST_DEVICES, cap=4096)
    assert rc > 0 and json.loads(out) == {"default": None, "devices": []}  # mic_device="stub"


def test_capture_guest_with_a_file_source(tmp_path):
    """The epoll-driven capture guest reads a file source frame by frame to stdout."""
    import numpy as np
    from fixtures_audio import write_wav

    pcm = (np.arange(480 * 10) * 7 % 20000 - 10000).astype("<i2")
    wav = write_wav(tmp_path / "in.wav", pcm, 24000)
    with Host(HostConfig(mic_device=f"file:{wav}")) as host:
        run = start_guest(host, capture_guest_wat(b'{"fallback":{"to_stub":false}}'), entry="run",
                          call_args=(10, 0, 0))
        result = run.wait(10)
        data = run.stdout_path.read_bytes()
        run.cleanup()
    assert result.value == 10 and result.trap is None
    assert data == pcm.tobytes()
    st = json.loads(result.stderr)
    assert st["source"] == "file" and st["dropped_frames"] == 0
