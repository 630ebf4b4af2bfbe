"""Test speech for notebooks and tests: espeak-ng sentences with known pauses, as a WAV.

:func:`make_speech` speaks each sentence with ``espeak-ng -v en-us+klatt4 -s 190`` (the
voice the offline recogniser understands best), resamples with ``sox -D`` (no dither, so
the bytes are the same on every run) to mono pcm16 at ``rate``, joins the sentences with
``pause_s`` of silence and writes a WAV.  It returns a :class:`SpeechFile` with the path,
the samples and where each sentence lies.  Needs the Debian packages ``espeak-ng`` and
``sox`` (FileNotFoundError names the missing program).
"""

from __future__ import annotations

import os
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .server.speechgen import SENTENCES, speech_track

__all__ = ["SENTENCES", "SpeechFile", "make_speech", "read_wav", "write_wav"]


@dataclass
class SpeechFile:
    """A written speech WAV: ``segments`` are ``(start_s, end_s, text)`` per sentence."""

    path: Path
    pcm: np.ndarray
    rate: int
    segments: list[tuple[float, float, str]]

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.rate

    @property
    def texts(self) -> list[str]:
        return [t for _, _, t in self.segments]

    @property
    def nbytes(self) -> int:
        """Bytes of pcm16 audio (what a guest streams)."""
        return int(self.pcm.size) * 2


def write_wav(path: str | os.PathLike[str], pcm: np.ndarray, rate: int) -> Path:
    """Write mono int16 ``pcm`` as a WAV file; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return path


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Mono int16 samples and rate of a pcm16 WAV (ValueError for other formats)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: need mono 16-bit PCM, got {w.getnchannels()} channels "
                             f"of {8 * w.getsampwidth()} bits")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy(), w.getframerate()


def make_speech(sentences: Sequence[str] | None = None, path: str | os.PathLike[str] = "speech.wav",
                rate: int = 24000, pause_s: float | Sequence[float] = 1.0, *,
                lead_s: float = 0.5, tail_s: float = 1.0) -> SpeechFile:
    """Speak ``sentences`` (default: :data:`SENTENCES`) into a WAV at ``path``.

    ``pause_s`` is the silence between sentences (one value, or one per gap), ``lead_s`` /
    ``tail_s`` the silence before the first and after the last.  Deterministic.
    """
    track = speech_track(list(sentences) if sentences is not None else None,
                         list(pause_s) if not isinstance(pause_s, (int, float)) else float(pause_s),
                         rate=rate, lead_s=lead_s, tail_s=tail_s)
    out = write_wav(path, track.pcm, rate)
    return SpeechFile(out, track.pcm, rate, list(track.segments))
