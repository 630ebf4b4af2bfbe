"""Resampler comparison: windowed-sinc polyphase vs linear interpolation (both numpy).

For each rate pair it measures, in the same run:

- speed: seconds of audio resampled per second of CPU, and the cost relative to linear;
- in-band accuracy: SNR (dB) of a 1234.5 Hz tone against the same tone computed
  analytically at the output rate;
- high-band accuracy: the same at 0.4 x the lower rate (where linear interpolation's
  droop shows);
- alias rejection (downsampling only): level (dB re the input) of a tone above the
  output Nyquist that should vanish;
- frequency: |FFT-peak error| of the in-band tone, Hz (both must preserve it).

Run: ``PYTHONPATH=. python bench/bench_resample.py [seconds]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from spear_lab.audio.resample import resample

PAIRS = [(48000, 24000), (44100, 24000), (44100, 16000), (16000, 24000), (8000, 24000)]


def tone(freq: float, rate: int, seconds: float) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def snr_db(y: np.ndarray, ref: np.ndarray, edge: int = 200) -> float:
    core = slice(edge, min(len(y), len(ref)) - edge)
    err = y[core] - ref[core]
    return 10 * np.log10(np.mean(ref[core] ** 2) / max(np.mean(err ** 2), 1e-30))


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spec[1:])) + 1
    a, b, c = np.log(spec[k - 1:k + 2] + 1e-300)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(x)


def timed(x: np.ndarray, fr: int, to: int, method: str, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        resample(x, fr, to, method)
        best = min(best, time.perf_counter() - t0)
    return best


def main(seconds: float = 2.0) -> None:
    print(f"{'pair':>13} {'method':>6} {'x realtime':>10} {'cost/lin':>8} {'SNR 1k':>7} "
          f"{'SNR hi':>7} {'alias':>7} {'f err':>6}")
    for fr, to in PAIRS:
        x = tone(1234.5, fr, seconds)
        hi = 0.4 * min(fr, to)
        xh = tone(hi, fr, seconds)
        base = timed(x, fr, to, "linear")
        for method in ("linear", "sinc"):
            t = timed(x, fr, to, method)
            y = resample(x, fr, to, method)
            snr = snr_db(y, tone(1234.5, to, seconds))
            snr_hi = snr_db(resample(xh, fr, to, method), tone(hi, to, seconds))
            alias = ""
            if to < fr:
                xa = tone(0.5 * to + 0.3 * (0.5 * fr - 0.5 * to), fr, seconds)
                ya = resample(xa, fr, to, method)[200:-200]
                alias = f"{20 * np.log10(np.sqrt(np.mean(ya ** 2)) / (0.5 / np.sqrt(2)) + 1e-12):7.1f}"
            ferr = abs(peak_hz(y, to) - 1234.5)
            print(f"{fr:>6}->{to:<6} {method:>6} {seconds / t:10.0f} {t / base:8.1f} {snr:7.1f} "
                  f"{snr_hi:7.1f} {alias:>7} {ferr:6.3f}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
