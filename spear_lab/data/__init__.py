"""Recordings that ship with the package, reachable from any folder.

- :func:`demo_speech`: the bundled demo recording (espeak-ng, 24 kHz mono pcm16 WAV) and
  its reference text;
- :func:`demo_path` / :func:`demo_text`: the same, separately.

``Session(mic="demo")`` uses :func:`demo_path` as the guest's microphone.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

__all__ = ["DemoSpeech", "demo_path", "demo_speech", "demo_text"]

_HERE = Path(__file__).resolve().parent


class DemoSpeech(NamedTuple):
    """A recording and what is said in it."""

    path: Path  #: the WAV file
    text: str  #: the reference transcript


def demo_path() -> Path:
    """The bundled demo WAV (absolute path, inside the installed package)."""
    return _HERE / "demo_speech.wav"


def demo_text() -> str:
    """The reference transcript of :func:`demo_path`."""
    return (_HERE / "demo_speech.txt").read_text(encoding="utf-8").strip()


def demo_speech() -> DemoSpeech:
    """``(path, text)`` of the bundled demo recording."""
    return DemoSpeech(demo_path(), demo_text())
