"""Offline test speech: espeak-ng sentences joined by known pauses, plus noise.

Used by the server's tests and benchmarks (and handy in notebooks). Needs the
Debian packages ``espeak-ng`` and ``sox``; raises ``FileNotFoundError`` naming the
missing program otherwise. Output is deterministic: ``sox -D`` (no dither) and a
seeded noise generator.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SENTENCES", "Track", "synthesize", "speech_track", "add_noise"]

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "please call me back when you get home tonight",
    "we need to buy some milk and bread at the store",
    "the weather is very nice today",
    "i would like to book a table for two people",
    "she went to the library to read a new book",
]
"""Plain sentences the default pocketsphinx model recognises reasonably well."""

VOICE = "en-us+klatt4"
SPEED = 190


def _require(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise FileNotFoundError(f"{program} not found; install the Debian package {program}")
    return path


def synthesize(text: str, rate: int = 24000, voice: str = VOICE, speed: int = SPEED) -> np.ndarray:
    """Speak ``text`` with espeak-ng; returns mono int16 samples at ``rate`` Hz.

    Raises ``FileNotFoundError`` if espeak-ng or sox is missing and
    ``subprocess.CalledProcessError`` if either fails.
    """
    wav = subprocess.run(
        [_require("espeak-ng"), "-v", voice, "-s", str(speed), "--stdout", text],
        check=True, capture_output=True).stdout
    raw = subprocess.run(
        [_require("sox"), "-D", "-t", "wav", "-", "-t", "raw", "-e", "signed-integer",
         "-b", "16", "-c", "1", "-r", str(rate), "-", "gain", "-n", "-3"],
        input=wav, check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<i2").copy()


def _trim(pcm: np.ndarray, rel: float = 0.02) -> tuple[int, int]:
    """Index range [first, last+1) of samples louder than ``rel`` of the peak."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > rel * np.abs(pcm).max())
    return (int(loud[0]), int(loud[-1]) + 1) if len(loud) else (0, 0)


@dataclass
class Track:
    """Speech with known sentence positions.

    ``pcm`` is int16 at ``rate`` Hz; ``segments`` holds ``(start_s, end_s, text)``
    of each sentence's audible part (espeak's own leading/trailing silence trimmed).
    """

    pcm: np.ndarray
    rate: int
    segments: list[tuple[float, float, str]] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.rate

    @property
    def texts(self) -> list[str]:
        return [t for _, _, t in self.segments]


def speech_track(sentences: list[str] | None = None, pauses_s: list[float] | float = 1.0,
                 rate: int = 24000, lead_s: float = 0.5, tail_s: float = 1.0) -> Track:
    """Join spoken sentences with silent pauses of known length.

    ``pauses_s`` is the silence between consecutive sentences (one value or one per
    gap), measured between the trimmed audible parts. ``lead_s``/``tail_s`` pad the
    track with silence.
    """
    sentences = list(SENTENCES if sentences is None else sentences)
    if isinstance(pauses_s, (int, float)):
        pauses_s = [float(pauses_s)] * max(len(sentences) - 1, 0)
    parts = [np.zeros(int(lead_s * rate), np.int16)]
    segments = []
    pos = len(parts[0])
    for i, text in enumerate(sentences):
        pcm = synthesize(text, rate)
        a, b = _trim(pcm)
        pcm = pcm[a:b]
        segments.append((pos / rate, (pos + len(pcm)) / rate, text))
        parts.append(pcm)
        pos += len(pcm)
        gap = pauses_s[i] if i < len(sentences) - 1 else tail_s
        parts.append(np.zeros(int(gap * rate), np.int16))
        pos += len(parts[-1])
    return Track(np.concatenate(parts), rate, segments)


def add_noise(track: Track, snr_db: float, kind: str = "pink", seed: int = 0) -> Track:
    """Return a copy of ``track`` with stationary noise at ``snr_db`` (speech power
    measured over the sentence segments). ``kind`` is ``white`` or ``pink``."""
    rng = np.random.default_rng(seed)
    n = len(track.pcm)
    noise = rng.standard_normal(n)
    if kind in ("pink", "pulsing"):
        spec = np.fft.rfft(noise)
        f = np.arange(len(spec))
        spec[1:] /= np.sqrt(f[1:])
        spec[0] = 0
        noise = np.fft.irfft(spec, n)
        if kind == "pulsing":
            noise *= 10 ** (6 / 20 * np.sin(2 * np.pi * 0.3 * np.arange(n) / track.rate))
    elif kind != "white":
        raise ValueError(f"unknown noise kind {kind!r}")
    x = track.pcm.astype(np.float64)
    speech = np.concatenate([x[int(s * track.rate):int(e * track.rate)]
                             for s, e, _ in track.segments])
    p_speech = float(np.mean(speech ** 2))
    noise *= np.sqrt(p_speech / 10 ** (snr_db / 10) / np.mean(noise ** 2))
    y = np.clip(np.rint(x + noise), -32768, 32767).astype(np.int16)
    return Track(y, track.rate, list(track.segments))
