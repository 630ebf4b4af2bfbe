"""Real human speech with exact transcripts, from Debian's ``pocketsphinx-testdata``.

:func:`real_speech` loads one of :data:`SETS` from :data:`DATA_DIR`
(``/usr/share/pocketsphinx/test/data``; the pocketsphinx sdist's ``test/data`` has the
same files):

- ``librivox``: 5 utterances read from *Sense and Sensibility* (LibriVox, public domain),
  16 kHz WAV, 24.7 s, 71 words; transcripts from ``librivox/transcription``;
- ``cards``: 5 short clips naming playing cards (``cards/001–005.wav``,
  ``cards/cards.transcription``);
- ``goforward``: ``goforward.raw`` (raw 16 kHz int16), "go forward ten meters".

Each utterance becomes one :class:`~.corpus.Recording`: the whole clip resampled to
:data:`~.corpus.RATE` (``sox -D``, as :func:`~.corpus.load_recording` does) with one
:class:`~.corpus.Utterance` whose region is the clip's audible part
(:func:`spear_lab.testaudio.audible_bounds`: these recordings have a noise floor, so
the sample-peak rule of generated speech would keep the whole clip).  Transcripts are
exactly the files' words (lower case, no punctuation, disfluencies kept).  The
resampled audio is cached under ``cache_dir()/real``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np

from ..testaudio import audible_bounds, read_wav
from .corpus import RATE, Recording, Utterance, _resample, cache_dir

__all__ = ["SETS", "DATA_DIR", "DEBIAN_PACKAGE", "SpeechDataMissing", "real_speech"]

log = logging.getLogger(__name__)

DEBIAN_PACKAGE = "pocketsphinx-testdata"
DATA_DIR = Path("/usr/share/pocketsphinx/test/data")
"""Where :data:`DEBIAN_PACKAGE` installs its files."""
SETS = ("librivox", "cards", "goforward")
MARGIN_MS = 100.0
"""Room left around the energy-detected speech of each clip (ms): soft onsets and decays
(an unstressed first "and", a final plosive) sit near the noise floor."""
LOADER_VERSION = 1
"""Bumped whenever the loaded audio would change; part of the cache key."""

_LINE = re.compile(r"^\s*(?:<s>)?(?P<text>.*?)(?:</s>)?\s*\((?P<id>[^()]+)\)\s*$")


class SpeechDataMissing(FileNotFoundError):
    """The files of a real-speech set are not installed."""


def _parse_transcription(path: Path) -> dict[str, str]:
    """``{fileid: text}`` of a Sphinx transcription file (``<s> words </s> (fileid)``;
    trailing numbers after the id, as in hypothesis files, are not expected)."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            raise ValueError(f"{path}:{n}: not a transcription line: {line!r}")
        out[m["id"].strip()] = " ".join(m["text"].split())
    return out


def _fileids(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _sources(which: str, root: Path) -> list[tuple[str, Path, str]]:
    """``(name, audio file, transcript)`` of each utterance of set ``which``."""
    if which == "goforward":
        return [("goforward", root / "goforward.raw", "go forward ten meters")]
    folder = root / which
    trans = folder / ("transcription" if which == "librivox" else "cards.transcription")
    ids = folder / ("fileids" if which == "librivox" else "cards.fileids")
    texts = _parse_transcription(trans)
    out = []
    for fid in _fileids(ids):
        if fid not in texts:
            raise ValueError(f"{trans}: no transcript for {fid!r}")
        out.append((f"{which}-{fid.rsplit('-', 1)[-1]}", folder / f"{fid}.wav", texts[fid]))
    return out


def _load_audio(path: Path, cache: bool) -> tuple[np.ndarray, int]:
    """The file's samples resampled to :data:`RATE`, and its own rate."""
    data = path.read_bytes()
    head = f"{LOADER_VERSION}\n{RATE}\n{path.suffix}\n".encode()
    key = hashlib.sha256(head + data).hexdigest()[:24]
    cached = cache_dir() / "real" / f"{key}.npy"
    if path.suffix == ".raw":
        pcm, rate = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16), 16000
    else:
        pcm, rate = read_wav(path)
    if cache and cached.is_file():
        return np.load(cached), rate
    out = _resample(pcm, rate, RATE)
    if cache:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.stem}.tmp{os.getpid()}.npy")
        np.save(tmp, out)
        os.replace(tmp, cached)
    return out, rate


def real_speech(set: str = "librivox", *, data_dir: str | os.PathLike[str] | None = None,
                cache: bool = True) -> list[Recording]:
    """The utterances of real-speech set ``set`` (one of :data:`SETS`), one
    :class:`~.corpus.Recording` each, in the files' order (see module docstring).

    ``data_dir`` defaults to :data:`DATA_DIR`.  Raises :class:`SpeechDataMissing` (a
    FileNotFoundError naming the Debian package) when the files are absent, ValueError
    for an unknown set or a malformed transcription file.
    """
    which = set
    if which not in SETS:
        raise ValueError(f"unknown real-speech set {which!r} (one of {', '.join(SETS)})")
    root = Path(data_dir) if data_dir is not None else DATA_DIR
    try:
        sources = _sources(which, root)
        missing = [p for _, p, _ in sources if not p.is_file()]
    except FileNotFoundError as e:
        missing = [Path(e.filename or root)]
    if missing:
        raise SpeechDataMissing(
            f"real-speech set {which!r} not found ({missing[0]} is missing): install the Debian "
            f"package {DEBIAN_PACKAGE} (apt-get install {DEBIAN_PACKAGE})")
    recs = []
    for name, path, text in sources:
        pcm, rate = _load_audio(path, cache)
        start, end = audible_bounds(pcm, RATE, margin_ms=MARGIN_MS)
        if end <= start:
            raise ValueError(f"{path}: no audible speech found")
        meta = {"source": str(path), "source_rate": rate, "set": which, "package": DEBIAN_PACKAGE,
                "license": "public domain (LibriVox)" if which == "librivox"
                else "BSD-2 (CMU Sphinx test data)"}
        recs.append(Recording(name, pcm, RATE, [Utterance(text, start, end)], None, meta))
    log.debug("loaded real speech %r: %d utterances from %s", which, len(recs), root)
    return recs
