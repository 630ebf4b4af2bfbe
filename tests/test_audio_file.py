"""The file source and the host policy: frames and content match the WAV for several
rates and channel counts, real-time and reader-paced pacing, looping, end of file."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from fixtures_audio import (CHIRP_S, align, left, mono_mix, right, stereo_pcm, tone_frequency,
                            write_wav)

from spear_lab import Host
from spear_lab.abi.constants import EPOLLERR, EPOLLHUP, EPOLLIN, Errno, MicCtl
from spear_lab.audio import pcm16_to_float, remix, resample
from spear_lab.audio.filesource import WavFrames
from spear_lab.fds.mic import MicConfig, SourceError
from spear_lab.host import HostConfig

EAGAIN = -Errno.EAGAIN


def read_until_hup(host: Host, fd: int, timeout_ms: int = 5000) -> list[bytes]:
    """Read every frame with epoll until EPOLLHUP (asserting it comes, without ERR)."""
    ep = host.spear_epoll_create()
    assert host.spear_epoll_ctl(ep, 1, fd, EPOLLIN | EPOLLERR | EPOLLHUP) == 0
    frames = []
    while True:
        ready = host.spear_epoll_wait(ep, 8, timeout_ms)
        assert ready, "no EPOLLHUP at the end of the file"
        (_, rev), = ready
        assert not rev & EPOLLERR
        if rev & EPOLLIN:
            frame = host.mic_read(fd)
            assert isinstance(frame, bytes)
            frames.append(frame)
        elif rev & EPOLLHUP:
            assert host.mic_read(fd) == EAGAIN
            return frames


def play_file(tmp_path, pcm: np.ndarray, file_rate: int, request: dict, **cfg) -> tuple[list[bytes], dict]:
    wav = write_wav(tmp_path / "in.wav", pcm, file_rate)
    with Host(HostConfig(mic_file=str(wav), **cfg)) as host:
        fd = host.mic_create()
        assert host.mic_ctl(fd, MicCtl.SET_PARAM, json.dumps({"source": "file", **request}).encode()) == 0
        frames = read_until_hup(host, fd)
        status = json.loads(host.mic_ctl(fd, MicCtl.GET_STATUS))
    return frames, status


CASES = [  # (file rate, file channels, requested rate, requested channels)
    (48000, 2, 24000, 1),
    (44100, 2, 16000, 1),
    (16000, 1, 24000, 1),
    (8000, 1, 48000, 2),
    (22050, 2, 24000, 2),
    (24000, 1, 24000, 1),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "%d-%dch-to-%d-%dch" % c)
def test_file_frames_match_the_wav(tmp_path, case):
    file_rate, file_ch, rate, ch = case
    st = stereo_pcm(file_rate)
    pcm = st if file_ch == 2 else st[:, 0]
    frames, status = play_file(tmp_path, pcm, file_rate,
                               {"sample_rate_hz": rate, "channels": ch, "frame_ms": 20},
                               mic_file_realtime=False)
    cfg = MicConfig(rate, ch, 20)
    assert status["running"] is False and status["source"] == "file"
    assert status["dropped_frames"] == 0 and status["last_error"] is None
    assert {len(f) for f in frames} == {cfg.frame_bytes}
    n_out = -(-len(pcm) * rate // file_rate)
    assert len(frames) == -(-n_out // cfg.frame_samples)  # last frame padded, none lost
    got = pcm16_to_float(b"".join(frames), ch, np.float64)
    # Content: the streamed result equals a one-shot remix + resample of the whole file ...
    expect = resample(remix(pcm16_to_float(pcm.tobytes(), file_ch, np.float64), ch), file_rate, rate)
    assert np.abs(got[:n_out] - expect).max() <= 1 / 32768 + 1e-9
    assert not got[n_out:].any()  # zero padding
    if file_rate == rate and file_ch == ch:
        assert b"".join(frames)[: len(pcm.tobytes())] == pcm.tobytes()  # passthrough, bit exact
    # ... and matches the analytic signal at the requested rate.
    signals = {1: [left] if file_ch == 1 else [mono_mix], 2: [left, left] if file_ch == 1 else [left, right]}
    for c, signal in enumerate(signals[ch]):
        corr, delay = align(got[:, c], signal, rate)
        assert corr > 0.999 and abs(delay) < 0.5 / rate


def test_resampled_tone_keeps_its_frequency(tmp_path):
    t = np.arange(44100) / 44100
    pcm = np.round(0.5 * np.sin(2 * np.pi * 997.0 * t) * 32767).astype("<i2")
    frames, _ = play_file(tmp_path, pcm, 44100, {"sample_rate_hz": 16000}, mic_file_realtime=False)
    got = pcm16_to_float(b"".join(frames), 1, np.float64)[:16000, 0]
    assert abs(tone_frequency(got, 16000) - 997.0) < 0.5


def test_realtime_file_source(tmp_path):
    pcm = stereo_pcm(24000, dur=0.3)[:, 0]
    frames, status = play_file(tmp_path, pcm, 24000, {"frame_ms": 20})
    assert len(frames) == 15 and status["dropped_frames"] == 0
    assert b"".join(frames) == pcm.tobytes()


def test_last_partial_frame_is_padded(tmp_path):
    pcm = (np.arange(1000) - 500).astype("<i2")  # 1000 samples = 2 frames of 480 + 40
    frames, _ = play_file(tmp_path, pcm, 24000, {}, mic_file_realtime=False)
    assert len(frames) == 3
    assert b"".join(frames) == pcm.tobytes() + bytes(2 * (1440 - 1000))


def test_reader_paced_never_drops(tmp_path):
    pcm = stereo_pcm(16000, dur=1.0)[:, 0]
    wav = write_wav(tmp_path / "in.wav", pcm, 16000)
    with Host(HostConfig(mic_file=str(wav), mic_file_realtime=False)) as host:
        fd = host.mic_create()
        req = {"source": "file", "sample_rate_hz": 16000, "frame_ms": 10, "max_queue_bytes": 3 * 320}
        assert host.mic_ctl(fd, MicCtl.SET_PARAM, json.dumps(req).encode()) == 0
        frames = read_until_hup(host, fd)
        status = json.loads(host.mic_ctl(fd, MicCtl.GET_STATUS))
    assert status["dropped_frames"] == 0 and len(frames) == 100
    assert b"".join(frames) == pcm.tobytes()


def test_loop_restarts_the_file(tmp_path):
    pcm = (np.arange(480 * 4) % 3000).astype("<i2")  # exactly 4 frames
    wav = write_wav(tmp_path / "in.wav", pcm, 24000)
    with Host(HostConfig(mic_file=str(wav), mic_file_realtime=False, mic_file_loop=True)) as host:
        fd = host.mic_create()
        assert host.mic_ctl(fd, MicCtl.SET_PARAM, b'{"source":"file","max_queue_bytes":2000}') == 0
        ep = host.spear_epoll_create()
        host.spear_epoll_ctl(ep, 1, fd, EPOLLIN | EPOLLHUP)
        frames = []
        while len(frames) < 10:
            (_, rev), = host.spear_epoll_wait(ep, 8, 2000)
            assert rev == EPOLLIN
            frames.append(host.mic_read(fd))
    raw = pcm.tobytes()
    assert frames == [raw[(i % 4) * 960:(i % 4 + 1) * 960] for i in range(10)]


def test_device_policy_plays_a_file(tmp_path):
    """docs/abi.md §7.3: HostConfig.mic_device "file:PATH" makes a guest's device read the WAV."""
    pcm = stereo_pcm(48000, dur=0.5)
    wav = write_wav(tmp_path / "speech.wav", pcm, 48000)
    with Host(HostConfig(mic_device=f"file:{wav}", mic_file_realtime=False)) as host:
        fd = host.mic_create()
        assert host.mic_ctl(fd, MicCtl.SET_PARAM,
                            b'{"source":"device","fallback":{"to_stub":false}}') == 0
        assert json.loads(host.mic_ctl(fd, MicCtl.GET_STATUS))["source"] == "file"
        frames = read_until_hup(host, fd)
    assert len(frames) == 25


def test_file_without_host_file_uses_stub():
    with Host(HostConfig()) as host:
        fd = host.mic_create()
        assert host.mic_ctl(fd, MicCtl.SET_PARAM, b'{"source":"file","fallback":{"to_stub":false}}') == 0
        assert json.loads(host.mic_ctl(fd, MicCtl.GET_STATUS))["source"] == "stub"


def test_bad_wav_is_a_start_failure(tmp_path):
    bad = tmp_path / "secret-dir" / "notes.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF....WAVEjunk")
    with Host(HostConfig(mic_file=str(bad))) as host:
        fd = host.mic_create()
        rc = host.mic_ctl(fd, MicCtl.SET_PARAM, b'{"source":"file","fallback":{"to_stub":false}}')
        assert rc == -Errno.EIO
        err = json.loads(host.mic_ctl(fd, MicCtl.GET_STATUS))["last_error"]
        assert "notes.wav" in err and "secret-dir" not in err  # no host path for the guest
        assert host.mic_ctl(fd, MicCtl.SET_PARAM, b'{"source":"file"}') == 0
        assert json.loads(host.mic_ctl(fd, MicCtl.GET_STATUS))["source"] == "stub"


def test_wav_frames_rejects_non_pcm16(tmp_path):
    import wave

    path = tmp_path / "eight.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes(800))
    with pytest.raises(SourceError, match="not 16-bit PCM"):
        WavFrames(path, MicConfig())
    with pytest.raises(SourceError, match="cannot open"):
        WavFrames(tmp_path / "missing.wav", MicConfig())


def test_close_mid_file_stops_the_task(tmp_path):
    wav = write_wav(tmp_path / "in.wav", stereo_pcm(24000, dur=CHIRP_S), 24000)
    before = {t.ident for t in threading.enumerate()}
    host = Host(HostConfig(mic_file=str(wav)))
    fd = host.mic_create()
    host.mic_ctl(fd, MicCtl.SET_PARAM, b'{"source":"file"}')
    source = host.table.get(fd).source
    assert host.mic_close(fd) == 0
    assert source.join(2) and source.frames._wav.getfp() is None  # wave file closed
    host.shutdown()
    assert {t.ident for t in threading.enumerate()} <= before
