"""Shared helpers for the mic and audio tests: analytic test signals, WAV files, alignment,
a WAT guest that drives mic fds, and the session-wide virtual microphone fixture.

Import the fixtures into a test module with
``from fixtures_audio import virtual_mic, virtual_mic_daemon``.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from spear_lab.audio import devices
from spear_lab.audio.virtual_mic import VirtualMic

# -- analytic signals -----------------------------------------------------------------------

#: Duration (s) of the test chirps.
CHIRP_S = 2.0


def chirp(t: np.ndarray, f0: float, f1: float, dur: float = CHIRP_S, amp: float = 0.4) -> np.ndarray:
    """A linear chirp from ``f0`` to ``f1`` Hz over ``dur`` s, zero outside [0, dur)."""
    k = (f1 - f0) / dur
    y = amp * np.sin(2 * np.pi * (f0 * t + 0.5 * k * t * t))
    # Short raised-cosine fades so the band limit holds at the edges too.
    fade = 0.01
    env = np.clip(np.minimum(t, dur - t) / fade, 0.0, 1.0)
    env = 0.5 - 0.5 * np.cos(np.pi * env)
    return np.where((t >= 0) & (t < dur), y * env, 0.0)


def left(t: np.ndarray) -> np.ndarray:
    """Left channel of the stereo test signal: 150 -> 3000 Hz."""
    return chirp(t, 150.0, 3000.0)


def right(t: np.ndarray) -> np.ndarray:
    """Right channel: 2500 -> 300 Hz."""
    return chirp(t, 2500.0, 300.0)


def mono_mix(t: np.ndarray) -> np.ndarray:
    """The mean of both channels (what a mono request must capture)."""
    return 0.5 * (left(t) + right(t))


def stereo_pcm(rate: int, dur: float = CHIRP_S, pad_s: float = 0.0) -> np.ndarray:
    """The stereo test signal as int16 ``(n, 2)``, with ``pad_s`` of silence after."""
    t = np.arange(int((dur + pad_s) * rate)) / rate
    x = np.stack([left(t), right(t)], axis=1)
    return np.round(x * 32767).astype("<i2")


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> Path:
    """Write int16 samples (``(n,)`` or ``(n, ch)``) as a WAV."""
    pcm = np.asarray(pcm, dtype="<i2")
    ch = 1 if pcm.ndim == 1 else pcm.shape[1]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(ch)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def tone_frequency(x: np.ndarray, rate: int) -> float:
    """Frequency (Hz) of the strongest FFT bin, refined by parabolic interpolation."""
    x = np.asarray(x, dtype=np.float64)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spec[1:])) + 1
    a, b, c = np.log(spec[k - 1:k + 2] + 1e-300)
    shift = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + shift) * rate / len(x)


def align(captured: np.ndarray, signal: Callable[[np.ndarray], np.ndarray], rate: int,
          dur: float = CHIRP_S) -> tuple[float, float]:
    """Best ``(correlation, delay_s)`` of ``captured`` against the analytic ``signal``.

    ``delay_s`` is when the signal starts, counted from the first captured sample (negative
    when the capture begins mid-signal).  The integer lag comes from an FFT
    cross-correlation, then the delay is refined to a hundredth of a sample (the signal is
    analytic, so it can be evaluated at any delay); the correlation is Pearson's over the
    part of the signal the capture covers.
    """
    y = np.asarray(captured, dtype=np.float64)
    n_ref = int(dur * rate)
    ref = signal(np.arange(n_ref) / rate)
    size = 1 << int(np.ceil(np.log2(len(y) + n_ref)))
    xc = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(ref, size)), size)
    lag = int(np.argmax(xc))
    if lag > size - n_ref:
        lag -= size

    def corr(delay: float) -> float:
        start = int(np.floor(delay * rate))
        idx = np.arange(max(start, 0), min(start + n_ref + 2, len(y)))
        r = signal(idx / rate - delay)
        return float(np.corrcoef(y[idx], r)[0, 1])

    best = max(((corr((lag + d) / rate), (lag + d) / rate) for d in np.linspace(-1, 1, 41)))
    fine = max(((corr(best[1] + d / rate), best[1] + d / rate) for d in np.linspace(-0.05, 0.05, 11)))
    return fine


# -- a WAT guest for mic fds ----------------------------------------------------------------

_IMPORTS = """
  (import "spear" "mic_create" (func $mic_create (result i32)))
  (import "spear" "mic_ctl" (func $mic_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "mic_read" (func $mic_read (param i32 i32 i32) (result i32)))
  (import "spear" "mic_close" (func $mic_close (param i32) (result i32)))
  (import "spear" "spear_epoll_create" (func $ep_create (result i32)))
  (import "spear" "spear_epoll_ctl" (func $ep_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_wait" (func $ep_wait (param i32 i32 i32 i32) (result i32)))
  (import "spear" "sleep_ms" (func $sleep_ms (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
"""

#: Memory layout of the probe guest.
CELL = 0  # u32 length cell for ctl
READ_CELL = 4  # u32 length cell for mic_read
EP_CELL = 8  # u32 capacity cell for epoll_wait
EP_BUF = 1024  # epoll records
CTL_BUF = 4096  # ctl payloads (in and out), 60 KiB
FRAME_BUF = 65536  # mic_read output, 64 KiB

PROBE_WAT = f"""
(module
{_IMPORTS}
  (memory (export "memory") 4)
  (func (export "create") (result i32) (call $mic_create))
  (func (export "close") (param $fd i32) (result i32) (call $mic_close (local.get $fd)))
  ;; mic_ctl with the payload/output at CTL_BUF and the length cell holding $len
  (func (export "ctl") (param $fd i32) (param $cmd i32) (param $len i32) (result i32)
    (i32.store (i32.const {CELL}) (local.get $len))
    (call $mic_ctl (local.get $fd) (local.get $cmd) (i32.const {CTL_BUF}) (i32.const {CELL})))
  (func (export "cell") (result i32) (i32.load (i32.const {CELL})))
  ;; mic_read into FRAME_BUF with capacity $cap
  (func (export "read") (param $fd i32) (param $cap i32) (result i32)
    (i32.store (i32.const {READ_CELL}) (local.get $cap))
    (call $mic_read (local.get $fd) (i32.const {FRAME_BUF}) (i32.const {READ_CELL})))
  (func (export "read_cell") (result i32) (i32.load (i32.const {READ_CELL})))
  (func (export "ep_create") (result i32) (call $ep_create))
  (func (export "ep_add") (param $ep i32) (param $fd i32) (param $ev i32) (result i32)
    (call $ep_ctl (local.get $ep) (i32.const 1) (local.get $fd) (local.get $ev)))
  ;; epoll_wait into EP_BUF (64 records); returns the count
  (func (export "ep_wait") (param $ep i32) (param $timeout i32) (result i32)
    (i32.store (i32.const {EP_CELL}) (i32.const 512))
    (call $ep_wait (local.get $ep) (i32.const {EP_BUF}) (i32.const {EP_CELL}) (local.get $timeout)))
  (func (export "rec_fd") (param $i i32) (result i32)
    (i32.load (i32.add (i32.const {EP_BUF}) (i32.mul (local.get $i) (i32.const 8)))))
  (func (export "rec_ev") (param $i i32) (result i32)
    (i32.load (i32.add (i32.const {EP_BUF + 4}) (i32.mul (local.get $i) (i32.const 8)))))
)
"""


def _wat_bytes(data: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in data)


def capture_guest_wat(config: bytes) -> str:
    """A guest whose export ``run(frames, k, sleep_ms)`` configures a mic with ``config``,
    waits with epoll for IN|ERR|HUP, reads ``frames`` frames and writes each to stdout,
    sleeping ``sleep_ms`` after the ``k``-th; then writes the mic status to stderr, closes
    and returns the frame count (or a negative hostcall result, -1000 on a 3 s timeout,
    -2000 - revents on ERR/HUP)."""
    return f"""
(module
{_IMPORTS}
  (memory (export "memory") 4)
  (data (i32.const {CTL_BUF}) "{_wat_bytes(config)}")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 256) (local.get $ptr))
    (i32.store (i32.const 260) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 256) (i32.const 1) (i32.const 264))))
  (func (export "run") (param $frames i32) (param $k i32) (param $sleep i32) (result i32)
    (local $mic i32) (local $ep i32) (local $n i32) (local $got i32) (local $rc i32) (local $ev i32)
    (local.set $mic (call $mic_create))
    (i32.store (i32.const {CELL}) (i32.const {len(config)}))
    (local.set $rc (call $mic_ctl (local.get $mic) (i32.const 1) (i32.const {CTL_BUF}) (i32.const {CELL})))
    (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (return (local.get $rc))))
    (local.set $ep (call $ep_create))
    (drop (call $ep_ctl (local.get $ep) (i32.const 1) (local.get $mic) (i32.const 0x19)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_s (local.get $got) (local.get $frames)))
        (i32.store (i32.const {EP_CELL}) (i32.const 512))
        (local.set $n (call $ep_wait (local.get $ep) (i32.const {EP_BUF}) (i32.const {EP_CELL})
                                     (i32.const 3000)))
        (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (local.get $n))))
        (if (i32.eqz (local.get $n)) (then (return (i32.const -1000))))
        (local.set $ev (i32.load (i32.const {EP_BUF + 4})))
        (if (i32.and (local.get $ev) (i32.const 0x18))
          (then (return (i32.sub (i32.const -2000) (local.get $ev)))))
        (i32.store (i32.const {READ_CELL}) (i32.const 65536))
        (local.set $rc (call $mic_read (local.get $mic) (i32.const {FRAME_BUF}) (i32.const {READ_CELL})))
        (if (i32.eq (local.get $rc) (i32.const -11)) (then (br $next)))
        (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (return (local.get $rc))))
        (call $write (i32.const 1) (i32.const {FRAME_BUF}) (local.get $rc))
        (local.set $got (i32.add (local.get $got) (i32.const 1)))
        (if (i32.eq (local.get $got) (local.get $k)) (then (call $sleep_ms (local.get $sleep))))
        (br $next)))
    (i32.store (i32.const {CELL}) (i32.const 4096))
    (local.set $rc (call $mic_ctl (local.get $mic) (i32.const 2) (i32.const {CTL_BUF}) (i32.const {CELL})))
    (if (i32.gt_s (local.get $rc) (i32.const 0))
      (then (call $write (i32.const 2) (i32.const {CTL_BUF}) (local.get $rc))))
    (drop (call $mic_close (local.get $mic)))
    (local.get $got))
)
"""


# -- the virtual microphone -----------------------------------------------------------------


@pytest.fixture(scope="session")
def virtual_mic_daemon(tmp_path_factory: pytest.TempPathFactory):
    """A private PulseAudio daemon for the whole session (fails, naming the Debian packages,
    when PulseAudio is not installed); stopped at the end."""
    vm = VirtualMic(tmp_path_factory.mktemp("vmic"))
    vm.start()
    yield vm
    vm.stop()


@pytest.fixture(scope="module")
def virtual_mic(virtual_mic_daemon: VirtualMic):
    """The session's virtual microphone made visible to PortAudio in this process for one
    test module: PULSE_SERVER and ALSA's asoundrc (XDG_CONFIG_HOME) set in os.environ,
    PortAudio re-initialised; the environment is restored afterwards."""
    with virtual_mic_daemon.activated():
        devices(refresh=True)
        yield virtual_mic_daemon
    try:
        devices(refresh=True)
    except Exception:  # pragma: no cover - PortAudio gone is fine here
        pass
