"""The device source against a virtual microphone (a private PulseAudio daemon): checklist
item 64, content (correlation with the played WAV), drops of a slow reader, run-time
device errors, and nothing left running after close."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest
from fixtures_audio import (
    CHIRP_S,
    align,
    capture_guest_wat,
    left,
    mono_mix,
    right,
    stereo_pcm,
    virtual_mic,  # noqa: F401  (fixtures)
    virtual_mic_daemon,  # noqa: F401
    write_wav,
)

from spear_lab import Host
from spear_lab.abi.constants import EPOLLERR, EPOLLHUP, EPOLLIN, MicCtl
from spear_lab.audio import devices, pcm16_to_float
from spear_lab.audio.device import DeviceSource
from spear_lab.fds.mic import MicFd
from spear_lab.host import HostConfig
from spear_lab.runtime.guest import start_guest

FILE_RATE = 48000


@pytest.fixture(scope="module")
def vmic(virtual_mic):  # noqa: F811
    """The virtual microphone, active for this module."""
    return virtual_mic


@pytest.fixture(scope="module")
def chirp_wav(tmp_path_factory):
    """The stereo test signal at 48 kHz (left 150->3000 Hz, right 2500->300 Hz)."""
    return write_wav(tmp_path_factory.mktemp("wav") / "chirp48k.wav", stereo_pcm(FILE_RATE), FILE_RATE)


def mic_running(host: Host) -> bool:
    with host.table.lock:
        return any(isinstance(e, MicFd) and e.running and not e.closed for e in host.table)


def wait_until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def capture_with_guest(vm, wav, config: dict, frames: int, k: int = 0, sleep_ms: int = 0,
                       host_config: HostConfig | None = None) -> tuple[bytes, dict, int]:
    """Run the capture guest while ``wav`` plays into the virtual microphone."""
    with Host(host_config or HostConfig()) as host:
        run = start_guest(host, capture_guest_wat(json.dumps(config).encode()), entry="run",
                          call_args=(frames, k, sleep_ms))
        try:
            wait_until(lambda: mic_running(run.host) or run.done)
            player = vm.play(wav, wait=False)
            result = run.wait(30)
            player.wait(10)
            data = run.stdout_path.read_bytes()
        finally:
            run.cleanup()
    assert result.trap is None, result.trap
    return data, json.loads(result.stderr), result.value


def test_virtual_mic_is_the_default_input(vmic):
    found = devices()
    default = [d for d in found if d.is_default]
    assert len(default) == 1 and default[0].channels >= 2
    with Host() as host:
        fd = host.mic_create()
        listed = json.loads(host.mic_ctl(fd, MicCtl.LIST_DEVICES))
    assert listed["default"] == default[0].name
    assert {d["name"] for d in listed["devices"]} == {d.name for d in found}
    assert set(listed["devices"][0]) == {"channels", "default_rate_hz", "index", "is_default", "name"}


def test_item64_guest_captures_the_played_wav(vmic, chirp_wav):
    """A guest reads 960-byte frames (24 kHz, 20 ms, mono) from the device source; they
    correlate with the WAV's mono mixdown."""
    frames = int((CHIRP_S + 1.0) / 0.02)
    data, status, got = capture_with_guest(
        vmic, chirp_wav,
        {"sample_rate_hz": 24000, "channels": 1, "format": "pcm16", "frame_ms": 20,
         "source": "device", "fallback": {"to_stub": False}}, frames)
    assert got == frames and len(data) == frames * 960  # every frame 960 bytes
    assert status["source"] == "device" and status["last_error"] is None
    assert status["dropped_frames"] == 0
    y = pcm16_to_float(data, 1, np.float64)[:, 0]
    corr, delay = align(y, mono_mix, 24000)
    assert corr >= 0.99, corr
    assert -0.5 / 24000 < delay < 1.0  # the whole chirp was captured


def test_slow_guest_loses_exactly_the_dropped_frames(vmic, chirp_wav):
    """The guest reads 25 frames, sleeps 1 s with a 10-frame queue, reads on: the audio it
    misses is exactly ``dropped_frames`` frames (drop-oldest)."""
    k, frames = 25, 110
    data, status, got = capture_with_guest(
        vmic, chirp_wav,
        {"source": "device", "fallback": {"to_stub": False}, "max_queue_bytes": 9600},
        frames, k=k, sleep_ms=1000)
    assert got == frames
    dropped = status["dropped_frames"]
    assert dropped >= 30  # ~1 s of 20 ms frames, minus the 10 queued
    y = pcm16_to_float(data, 1, np.float64)[:, 0]
    part_a, part_b = y[: k * 480], y[k * 480:]
    corr_a, delay_a = align(part_a, mono_mix, 24000)
    corr_b, delay_b = align(part_b, mono_mix, 24000)
    assert corr_a >= 0.99 and corr_b >= 0.99, (corr_a, corr_b)
    # Part B starts (k + dropped) frames after part A in the device's output stream.
    gap_s = delay_a - delay_b
    assert abs(gap_s - (k + dropped) * 0.02) < 1.5 / 24000, (gap_s, dropped)


def read_frames(host: Host, fd: int, seconds: float) -> bytes:
    """Read frames for ``seconds`` of frames produced (not wall time): count-based."""
    cfg = host.table.get(fd).config
    want = int(seconds * 1000 / cfg.frame_ms)
    ep = host.spear_epoll_create()
    host.spear_epoll_ctl(ep, 1, fd, EPOLLIN | EPOLLERR | EPOLLHUP)
    out = []
    while len(out) < want:
        ready = host.spear_epoll_wait(ep, 8, 3000)
        assert ready and ready[0][1] == EPOLLIN, ready
        out.append(host.mic_read(fd))
    host.spear_epoll_close(ep)
    return b"".join(out)


def test_stereo_at_the_device_rate_is_bit_exact(vmic, chirp_wav):
    """Opened at 48 kHz (HostConfig.mic_device_rate) nothing resamples: the WAV's samples
    come back exactly."""
    with Host(HostConfig(mic_device_rate=48000)) as host:
        fd = host.mic_create()
        req = {"sample_rate_hz": 48000, "channels": 2, "frame_ms": 10, "fallback": {"to_stub": False}}
        assert host.mic_ctl(fd, MicCtl.SET_PARAM, json.dumps(req).encode()) == 0
        player = vmic.play(chirp_wav, wait=False)
        data = read_frames(host, fd, CHIRP_S + 0.8)
        player.wait(10)
    got = np.frombuffer(data, "<i2").reshape(-1, 2)
    want = stereo_pcm(FILE_RATE)
    first = int(np.flatnonzero(got[:, 0])[0])
    start = first - int(np.flatnonzero(want[:, 0])[0])
    assert np.array_equal(got[start:start + len(want)], want)


def test_mono_16k_from_the_default_rate(vmic, chirp_wav):
    """At the device's default rate (44.1 kHz here) PulseAudio and our resampler both run;
    each requested channel still correlates with the played signal."""
    with Host() as host:
        fd = host.mic_create()
        assert host.mic_ctl(fd, MicCtl.SET_PARAM, json.dumps(
            {"sample_rate_hz": 16000, "channels": 2, "fallback": {"to_stub": False}}).encode()) == 0
        src = host.table.get(fd).source
        assert isinstance(src, DeviceSource) and src.rate == src.device.default_rate
        player = vmic.play(chirp_wav, wait=False)
        data = read_frames(host, fd, CHIRP_S + 0.8)
        player.wait(10)
    y = pcm16_to_float(data, 2, np.float64)
    for ch, expect in ((0, left), (1, right)):
        corr, _ = align(y[:, ch], expect, 16000)
        assert corr >= 0.99, (ch, corr)


def test_device_by_name_and_index(vmic):
    default = next(d for d in devices() if d.is_default)
    with Host() as host:
        fd = host.mic_create()
        for spec in (default.name, default.index):
            assert host.mic_ctl(fd, MicCtl.SET_PARAM, json.dumps(
                {"device": {"name": spec}, "fallback": {"to_stub": False}}).encode()) == 0
            assert host.table.get(fd).source.device == default
            assert len(read_frames(host, fd, 0.1)) == 5 * 960


def test_close_leaves_no_thread_or_stream(vmic):
    before = {t.ident for t in threading.enumerate()}
    host = Host()
    fd = host.mic_create()
    assert host.mic_ctl(fd, MicCtl.SET_PARAM, b'{"fallback":{"to_stub":false}}') == 0
    first = host.table.get(fd).source
    read_frames(host, fd, 0.1)
    # A restart closes the first stream and opens a second.
    assert host.mic_ctl(fd, MicCtl.SET_PARAM, b'{"sample_rate_hz":16000,"fallback":{"to_stub":false}}') == 0
    second = host.table.get(fd).source
    assert second is not first and first.wait_closed(5) and first.stream.closed
    read_frames(host, fd, 0.1)
    assert host.mic_close(fd) == 0
    assert second.wait_closed(5) and second.stream.closed and second.done
    host.shutdown()
    assert {t.ident for t in threading.enumerate()} <= before
    assert not [t for t in threading.enumerate() if t.name.startswith("spear-mic")]


def test_runtime_device_failure_sets_epollerr(vmic):
    """Killing the sound server mid-capture: EPOLLERR and a readable last_error."""
    with Host() as host:
        fd = host.mic_create()
        assert host.mic_ctl(fd, MicCtl.SET_PARAM, b'{"fallback":{"to_stub":false}}') == 0
        read_frames(host, fd, 0.1)
        ep = host.spear_epoll_create()
        host.spear_epoll_ctl(ep, 1, fd, EPOLLERR)
        os.kill(vmic.pid(), signal.SIGKILL)
        try:
            ready = host.spear_epoll_wait(ep, 8, 10000)
            assert ready == [(fd, EPOLLERR)]
            status = json.loads(host.mic_ctl(fd, MicCtl.GET_STATUS))
            assert "stopped unexpectedly" in status["last_error"] or "stalled" in status["last_error"]
            src = host.table.get(fd).source
        finally:
            vmic.stop()
            vmic.start()
        assert host.mic_close(fd) == 0
        assert src.wait_closed(5)
    devices(refresh=True)
