"""Corpora from folders: WAV + transcript pairs (and optional regions) from a directory or a
CSV manifest.

:func:`load_corpus` accepts

- a **directory**: every ``*.wav`` under it (recursively, sorted by path) with the
  transcript ``<stem>.txt`` next to it and, optionally, speech regions
  ``<stem>.regions.csv`` or ``<stem>.csv`` (``start,end[,text]`` in seconds, see
  :func:`~.corpus.load_recording`);
- a **CSV manifest** with a header naming the columns ``wav`` and ``text`` (a transcript,
  or the path of a text file), optionally ``regions`` (a regions CSV path) and ``name``;
  relative paths are relative to the manifest.

Audio of any rate, 8/16/24/32-bit integer PCM and any channel count is mixed down to
mono and resampled to 24 kHz (:func:`~.corpus.load_recording`).  A file that cannot be
used (unreadable WAV, missing or empty transcript, bad regions, silence only…) is left
out with a message naming it and what is wrong — in :attr:`Corpus.problems` and the log —
and the others load.  ``strict=True`` raises ValueError listing every problem instead.
Names are the paths relative to the directory (without ``.wav``), made unique.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import wave
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import Recording, cache_dir, load_recording
from .progress import progress as make_progress

__all__ = ["Corpus", "load_corpus", "read_any_wav"]

log = logging.getLogger(__name__)


class Corpus(list):
    """A list of :class:`~.corpus.Recording` plus ``problems``: ``(file, what is wrong)``."""

    def __init__(self, items: Iterable[Recording] = (), problems: Iterable[tuple[str, str]] = (),
                 source: str = "") -> None:
        super().__init__(items)
        self.problems = list(problems)
        self.source = source

    @property
    def duration_s(self) -> float:
        return sum(r.duration_ms for r in self) / 1000.0

    def __repr__(self) -> str:
        return (f"<Corpus {self.source!r}: {len(self)} recordings, {self.duration_s:.1f} s, "
                f"{len(self.problems)} rejected>")


def read_any_wav(path: Path) -> tuple[np.ndarray, int]:
    """``(mono int16, rate)`` of an integer-PCM WAV of any width and channel count.
    Raises ValueError saying what is wrong."""
    try:
        with wave.open(str(path), "rb") as w:
            width, channels, rate, n = w.getsampwidth(), w.getnchannels(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a readable PCM WAV ({exc})") from None
    if rate <= 0 or channels <= 0:
        raise ValueError(f"bad header (rate {rate}, channels {channels})")
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.int32)
    elif width == 3:
        b = np.frombuffer(raw[: len(raw) // 3 * 3], np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8) >> 8
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.int64) >> 16
    else:
        raise ValueError(f"{8 * width}-bit samples are not supported")
    x = x[: len(x) // channels * channels].reshape(-1, channels).mean(axis=1)
    if len(x) == 0:
        raise ValueError("no audio frames")
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16), rate


def _pairs_from_dir(root: Path) -> list[tuple[str, Path, Any, Path | None]]:
    out = []
    for wav in sorted(p for p in root.rglob("*") if p.suffix.lower() == ".wav" and p.is_file()):
        stem = wav.with_suffix("")
        regions = next((c for c in (Path(f"{stem}.regions.csv"), Path(f"{stem}.csv")) if c.is_file()), None)
        name = str(wav.relative_to(root).with_suffix("")).replace(os.sep, "/")
        out.append((name, wav, Path(f"{stem}.txt"), regions))
    return out


def _pairs_from_manifest(path: Path) -> list[tuple[str, Path, Any, Path | None]]:
    base = path.parent
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = [c.strip().lower() for c in reader.fieldnames or []]
        if "wav" not in cols or "text" not in cols:
            raise ValueError(f"{path}: a manifest needs a header with columns 'wav' and 'text' "
                             f"(found {reader.fieldnames})")
        out = []
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            wav = base / row["wav"] if row["wav"] else Path(f"<{path.name} line {line}: no wav>")
            text: Any = row["text"]
            if text.lower().endswith(".txt"):
                text = base / text
            regions = base / row["regions"] if row.get("regions") else None
            out.append((row.get("name") or Path(row["wav"]).stem, wav, text, regions))
        return out


def _load_one(name: str, wav: Path, text: Any, regions: Path | None) -> Recording:
    if not wav.is_file():
        raise ValueError("file not found")
    if isinstance(text, Path):
        if not text.is_file():
            raise ValueError(f"no transcript ({text.name} missing)")
        text = text.read_text(encoding="utf-8")
    if not str(text).strip():
        raise ValueError("empty transcript")
    pcm, rate = read_any_wav(wav)
    if not np.any(pcm):
        raise ValueError("the audio is silent (all samples zero)")
    src = wav
    with wave.open(str(wav), "rb") as w:
        plain = w.getsampwidth() == 2 and w.getnchannels() <= 2
    if not plain:  # write 16-bit mono at the source rate; load_recording resamples it
        from ..testaudio import write_wav

        tmp = cache_dir() / "folders"
        tmp.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(f"{wav.resolve()}|{wav.stat().st_mtime_ns}".encode()).hexdigest()[:20]
        src = write_wav(tmp / f"{key}.wav", pcm, rate)
    try:
        rec = load_recording(src, str(text) if "\n" in str(text) else str(text) + "\n", regions, name=name)
    except (ValueError, IndexError, OSError) as exc:
        raise ValueError(str(exc).replace(str(src), src.name)) from None
    rec.meta["source"] = str(wav)
    if regions is not None:
        rec.meta["regions"] = str(regions)
        if not rec.utterances:
            raise ValueError(f"{regions.name}: no regions")
        bad = [u for u in rec.utterances if u.end is not None and u.end > len(rec.pcm) + rec.rate // 100]
        if bad:
            raise ValueError(f"{regions.name}: a region ends after the audio "
                             f"({bad[0].end / rec.rate:.2f} s > {rec.duration_ms / 1000:.2f} s)")
    return rec


def load_corpus(source: str | os.PathLike[str], *, strict: bool = False, progress: Any = "auto") -> Corpus:
    """Recordings of a directory or CSV manifest (module docstring).  Raises
    FileNotFoundError when ``source`` does not exist, ValueError for an unusable
    manifest header (or, with ``strict``, any rejected file)."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no corpus at {path}")
    pairs = _pairs_from_dir(path) if path.is_dir() else _pairs_from_manifest(path)
    recs: list[Recording] = []
    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    bar = make_progress(len(pairs), "corpus", progress)
    try:
        for name, wav, text, regions in pairs:
            try:
                rec = _load_one(name, wav, text, regions)
            except (ValueError, OSError, UnicodeDecodeError) as exc:
                problems.append((str(wav), str(exc)))
                log.warning("skipping %s: %s", wav, exc)
            else:
                k = seen.get(rec.name, 0)
                seen[rec.name] = k + 1
                if k:
                    rec.name = f"{rec.name}#{k + 1}"
                recs.append(rec)
            bar.update(1, note=name)
    finally:
        bar.close()
    if strict and problems:
        raise ValueError("rejected files:\n" + "\n".join(f"{f}: {why}" for f, why in problems))
    if not pairs:
        log.warning("no WAV files in %s", path)
    return Corpus(recs, problems, str(path))
