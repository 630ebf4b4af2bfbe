"""Recordings with ground truth: generated speech (espeak-ng) or a user's WAV plus text.

A :class:`Recording` is mono int16 audio at :data:`RATE` (24 kHz, the ABI's rate), its
reference utterances (text, and where known the exact sample range of each one's speech),
and a WAV file on disk that a file microphone can replay.

:func:`generate` speaks sentences with :mod:`spear_lab.testaudio` (espeak-ng, ``sox -D``,
so runs are bit-identical), trims each sentence clip to its audible part (first to last
sample louder than :data:`TRIM_REL` of the clip's peak), joins the clips with silences of
exactly the requested lengths, and optionally mixes white, pink or babble noise at a given
SNR (dB, speech power measured over the speech regions of the clean signal) from a seeded
generator.  The speech regions are therefore known to the sample.  :func:`join_recordings`
does the same with recorded utterances (e.g. :func:`~.realspeech.real_speech`): each
utterance's region is cut out and placed, so it is again the exact extent of its audio.

:func:`load_recording` takes a WAV (any rate, mono or stereo pcm16), the reference text
(a string or a text file; one line per utterance when it is paired with regions) and an
optional regions CSV (``start,end[,text]`` in seconds, header optional).

Generated audio and sentence clips are cached under :func:`cache_dir`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import subprocess
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..testaudio import (RATE, SENTENCES, SPEED, VOICE, espeak_version, join_speech, mix_noise,
                         per_gap, read_wav, write_wav)

__all__ = [
    "RATE", "SENTENCES", "TRIM_REL", "GENERATOR_VERSION", "Utterance", "Recording",
    "cache_dir", "generate", "join_recordings", "noise_levels", "load_recording",
]

log = logging.getLogger(__name__)

TRIM_REL = 0.01
"""A sample is speech for trimming when louder than this fraction of the clip's peak."""
GENERATOR_VERSION = 1
"""Bumped whenever generated audio would change; part of every cache key."""


def cache_dir() -> Path:
    """``$SPEAR_LAB_CACHE`` or ``~/.cache/spear_lab`` (created on demand)."""
    env = os.environ.get("SPEAR_LAB_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "spear_lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Utterance:
    """One reference utterance: its text and, when known, its speech as samples
    ``[start, end)`` of the recording (None when the regions are unknown)."""

    text: str
    start: int | None = None
    end: int | None = None

    def span_ms(self, rate: int = RATE) -> tuple[float, float] | None:
        """``(start_ms, end_ms)`` or None when the region is unknown."""
        if self.start is None or self.end is None:
            return None
        return self.start * 1000.0 / rate, self.end * 1000.0 / rate


@dataclass
class Recording:
    """Mono int16 audio at ``rate`` Hz with its reference utterances.

    ``path`` is a WAV of exactly this audio (written on demand by :meth:`wav`);
    ``meta`` describes how it was made (generator parameters, source file).
    """

    name: str
    pcm: np.ndarray
    rate: int = RATE
    utterances: list[Utterance] = field(default_factory=list)
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The whole reference transcript (utterances joined by spaces)."""
        return " ".join(u.text for u in self.utterances if u.text)

    @property
    def duration_ms(self) -> float:
        return len(self.pcm) * 1000.0 / self.rate

    @property
    def has_regions(self) -> bool:
        """True when every utterance has a known speech region."""
        return bool(self.utterances) and all(u.start is not None for u in self.utterances)

    def regions_ms(self) -> list[tuple[float, float]]:
        """Speech regions ``(start_ms, end_ms)`` of the utterances (empty when unknown)."""
        if not self.has_regions:
            return []
        return [u.span_ms(self.rate) for u in self.utterances]  # type: ignore[misc]

    @property
    def audio_digest(self) -> str:
        """sha256 (hex) of the audio and its rate: what a replay depends on (cache key)."""
        h = hashlib.sha256()
        h.update(f"{self.rate}\n".encode())
        h.update(np.ascontiguousarray(self.pcm, dtype="<i2").tobytes())
        return h.hexdigest()

    @property
    def digest(self) -> str:
        """sha256 (hex) of the audio, rate and ground truth: the recording's identity."""
        h = hashlib.sha256(self.audio_digest.encode())
        h.update(json.dumps([[u.text, u.start, u.end] for u in self.utterances]).encode())
        return h.hexdigest()

    def wav(self, directory: Path | None = None) -> Path:
        """Path of a WAV holding exactly ``pcm`` (written under ``directory`` or the cache
        the first time)."""
        if self.path is not None and self.path.is_file():
            return self.path
        directory = directory or cache_dir() / "recordings"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{self.audio_digest[:20]}.wav"
        if not self.path.is_file():
            write_wav(self.path, self.pcm, self.rate)
        return self.path

    def __repr__(self) -> str:
        return (f"<Recording {self.name!r} {self.duration_ms / 1000:.1f} s "
                f"{len(self.utterances)} utterances{'' if self.has_regions else ' (no regions)'}>")


# -- generated speech -----------------------------------------------------------------------


def generate(sentences: Sequence[str] | None = None, *, pauses_ms: float | Sequence[float] = 800,
             snr_db: float | None = None, noise: str = "pink", seed: int = 0,
             lead_ms: float = 500, tail_ms: float = 1500, voice: str = VOICE,
             speed: int = SPEED, name: str | None = None, cache: bool = True) -> Recording:
    """Speak ``sentences`` one after the other with known pauses; optional noise.

    - ``pauses_ms``: silence between consecutive sentences' audible parts (one value or
      one per gap);
    - ``lead_ms`` / ``tail_ms``: silence before the first and after the last sentence;
    - ``snr_db``: None for clean audio, else ``noise`` (``white``, ``pink``, ``pulsing``
      or ``babble``: :func:`spear_lab.testaudio.mix_noise`) at that SNR, seeded.

    Each utterance's ``start``/``end`` are the exact sample range of its trimmed clip.
    The result (audio WAV + ground truth JSON) is cached under ``cache_dir()/corpus``.
    """
    sentences = list(SENTENCES[:4] if sentences is None else sentences)
    if not sentences:
        raise ValueError("generate needs at least one sentence")
    pauses = per_gap(pauses_ms, len(sentences))
    params = {"v": GENERATOR_VERSION, "espeak": espeak_version(), "sentences": sentences,
              "pauses_ms": pauses, "snr_db": snr_db, "noise": noise if snr_db is not None else None,
              "seed": seed if snr_db is not None else None, "lead_ms": lead_ms, "tail_ms": tail_ms,
              "voice": voice, "speed": speed, "rate": RATE}
    key = _key(params)
    label = name or _label(snr_db, noise)
    if cache and (hit := _cached(key, label)) is not None:
        return hit

    def samples(ms: float) -> int:
        return round(ms * RATE / 1000)

    pcm, spans = join_speech(sentences, [samples(p) for p in pauses], lead=samples(lead_ms),
                             tail=samples(tail_ms), rate=RATE, voice=voice, speed=speed,
                             trim_rel=TRIM_REL, cache=cache_dir() / "clips" if cache else None)
    utts = [Utterance(text, a, b) for text, (a, b) in zip(sentences, spans)]
    if snr_db is not None:
        pcm = mix_noise(pcm, spans, snr_db, noise, seed, rate=RATE,
                        cache=cache_dir() / "clips" if cache else None)
    rec = Recording(label, pcm, RATE, utts, None, {"generator": params, "key": key})
    if cache:
        _store(rec, key)
    log.debug("generated %r: %.1f s, %d utterances", label, rec.duration_ms / 1000, len(utts))
    return rec


def join_recordings(recordings: Sequence[Recording], *, pauses_ms: float | Sequence[float] = 800,
                    snr_db: float | None = None, noise: str = "pink", seed: int = 0,
                    lead_ms: float = 500, tail_ms: float = 1500, name: str | None = None,
                    cache: bool = True) -> Recording:
    """Join recorded utterances with known pauses; optional noise (as :func:`generate`).

    Every utterance of every recording, in order, contributes exactly the samples of its
    region (:func:`~.realspeech.real_speech` regions are each clip's audible part), with
    ``pauses_ms`` of digital silence between consecutive ones (one value or one per gap),
    ``lead_ms`` before the first and ``tail_ms`` after the last.  ``snr_db`` / ``noise``
    / ``seed`` as in :func:`generate` (speech power over the placed regions).  Each
    output utterance's ``start``/``end`` is where its samples were placed.  Cached under
    ``cache_dir()/corpus``, keyed by the recordings' digests and the parameters.

    Raises ValueError for no recordings, a recording without regions or at another rate
    than :data:`RATE`, or a wrong number of pauses.
    """
    recordings = list(recordings)
    if not recordings:
        raise ValueError("join_recordings needs at least one recording")
    for rec in recordings:
        if not rec.has_regions:
            raise ValueError(f"recording {rec.name!r} has no speech regions to join "
                             "(load it with regions, or use real_speech())")
        if rec.rate != RATE:
            raise ValueError(f"recording {rec.name!r} is at {rec.rate} Hz, not {RATE} Hz")
    pieces = [(rec, u) for rec in recordings for u in rec.utterances]
    pauses = per_gap(pauses_ms, len(pieces))
    params = {"v": GENERATOR_VERSION, "join": [r.digest for r in recordings], "pauses_ms": pauses,
              "snr_db": snr_db, "noise": noise if snr_db is not None else None,
              "seed": seed if snr_db is not None else None, "lead_ms": lead_ms,
              "tail_ms": tail_ms, "rate": RATE}
    key = _key(params)
    sets = {str(r.meta.get("set", "")) for r in recordings}
    label = name or f"{sets.pop() if len(sets) == 1 and '' not in sets else 'joined'}-" \
                    f"{_label(snr_db, noise)}"
    if cache and (hit := _cached(key, label)) is not None:
        return hit
    gaps = [round(p * RATE / 1000) for p in pauses] + [round(tail_ms * RATE / 1000)]
    parts = [np.zeros(round(lead_ms * RATE / 1000), np.int16)]
    pos = len(parts[0])
    utts = []
    for (rec, u), gap in zip(pieces, gaps):
        clip = rec.pcm[u.start:u.end]
        utts.append(Utterance(u.text, pos, pos + len(clip)))
        parts += [clip.astype(np.int16), np.zeros(gap, np.int16)]
        pos += len(clip) + gap
    pcm = np.concatenate(parts)
    if snr_db is not None:
        pcm = mix_noise(pcm, [(u.start, u.end) for u in utts], snr_db, noise, seed, rate=RATE,
                        cache=cache_dir() / "clips" if cache else None)
    sources = [{"name": r.name, "digest": r.digest, "source": r.meta.get("source")}
               for r in recordings]
    rec = Recording(label, pcm, RATE, utts, None, {"joined": sources, "params": params, "key": key})
    if cache:
        _store(rec, key)
    log.debug("joined %r: %.1f s, %d utterances", label, rec.duration_ms / 1000, len(utts))
    return rec


def _key(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:24]


def _label(snr_db: float | None, noise: str) -> str:
    return "clean" if snr_db is None else f"{noise}{snr_db:g}dB"


def _cached(key: str, label: str) -> Recording | None:
    """The corpus recording stored under ``key``, or None."""
    directory = cache_dir() / "corpus"
    wav_path, truth_path = directory / f"{key}.wav", directory / f"{key}.json"
    if not (wav_path.is_file() and truth_path.is_file()):
        return None
    pcm, rate = read_wav(wav_path)
    truth = json.loads(truth_path.read_text())
    utts = [Utterance(t, a, b) for t, a, b in truth["utterances"]]
    return Recording(label, pcm, rate, utts, wav_path, truth["meta"])


def _store(rec: Recording, key: str) -> None:
    """Write ``rec``'s audio and ground truth under ``key`` (atomically); sets its path."""
    directory = cache_dir() / "corpus"
    directory.mkdir(parents=True, exist_ok=True)
    rec.path = write_wav(directory / f"{key}.wav", rec.pcm, rec.rate)
    truth_path = directory / f"{key}.json"
    tmp = truth_path.with_name(truth_path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"utterances": [[u.text, u.start, u.end] for u in rec.utterances],
                               "meta": rec.meta}))
    os.replace(tmp, truth_path)


def noise_levels(snr_db: Sequence[float | None], sentences: Sequence[str] | None = None,
                 **kwargs: Any) -> list[Recording]:
    """The same speech at several noise levels (None = clean), e.g. ``[None, 20, 10]``."""
    return [generate(sentences, snr_db=s, **kwargs) for s in snr_db]


# -- user recordings ------------------------------------------------------------------------


def _read_text(text: str | os.PathLike[str]) -> str:
    if isinstance(text, os.PathLike) or ("\n" not in str(text) and len(str(text)) < 4096
                                          and Path(str(text)).is_file()):
        return Path(text).read_text(encoding="utf-8")
    return str(text)


def _read_regions(path: str | os.PathLike[str]) -> list[tuple[float, float, str | None]]:
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            try:
                start, end = float(row[0]), float(row[1])
            except ValueError:
                if rows:
                    raise ValueError(f"{path}: bad row {row!r} (want start,end[,text] in seconds)")
                continue  # a header
            if end < start:
                raise ValueError(f"{path}: region ends before it starts: {row!r}")
            text = row[2].strip() if len(row) > 2 and row[2].strip() else None
            rows.append((start, end, text))
    return rows


def _resample(pcm: np.ndarray, rate: int, to: int = RATE) -> np.ndarray:
    """Resample with ``sox -D`` when available, else by linear interpolation."""
    if rate == to:
        return pcm.astype(np.int16)
    sox = shutil.which("sox")
    if sox:
        raw = subprocess.run(
            [sox, "-D", "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-r", str(rate),
             "-", "-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-r", str(to), "-"],
            input=np.ascontiguousarray(pcm, dtype="<i2").tobytes(), check=True, capture_output=True).stdout
        return np.frombuffer(raw, dtype="<i2").copy()
    n = int(round(len(pcm) * to / rate))
    x = np.interp(np.arange(n) * rate / to, np.arange(len(pcm)), pcm.astype(np.float64))
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def load_recording(wav: str | os.PathLike[str], text: str | os.PathLike[str],
                   regions: str | os.PathLike[str] | Sequence[tuple[float, float]] | None = None,
                   name: str | None = None) -> Recording:
    """A user's recording: a WAV, its reference text and optional speech regions.

    ``text`` is the transcript or a text file.  ``regions`` is a CSV path (``start,end[,text]``
    in seconds, header optional) or a list of ``(start_s, end_s)``.  Texts are paired with
    regions from the CSV's text column, else line by line when the text has one non-empty
    line per region, else the words are shared out over the regions in proportion to
    their durations.  Without regions the recording has one utterance of unknown extent
    (only WER and latency-free metrics are then defined).  The audio is converted to
    24 kHz mono pcm16 (written to the cache when the WAV is not already in that form).
    """
    pcm, rate = read_wav(wav)
    src = Path(wav)
    path: Path | None = src
    with wave.open(str(src), "rb") as w:
        if w.getnchannels() != 1 or rate != RATE:
            path = None
    pcm = _resample(pcm, rate, RATE)
    full = _read_text(text)
    lines = [ln.strip() for ln in full.splitlines() if ln.strip()]
    utts: list[Utterance]
    if regions is None:
        utts = [Utterance(" ".join(lines))]
    else:
        rows = _read_regions(regions) if isinstance(regions, (str, os.PathLike)) else \
            [(float(a), float(b), None) for a, b in regions]
        spans = [(int(round(a * RATE)), int(round(b * RATE))) for a, b, _ in rows]
        if rows and all(t is not None for _, _, t in rows):
            texts = [t for _, _, t in rows]
        elif len(lines) == len(rows):
            texts = lines
        else:
            texts = _share_words(" ".join(lines).split(), [b - a for a, b in spans])
        utts = [Utterance(t or "", a, b) for t, (a, b) in zip(texts, spans)]
    rec = Recording(name or src.stem, pcm, RATE, utts, path, {"source": str(src), "source_rate": rate})
    return rec


def _share_words(words: list[str], durations: list[int]) -> list[str]:
    """Give each region the words whose character midpoint falls in its share of the
    total speech time (regions in order, shares proportional to duration)."""
    if not durations:
        return []
    total_chars = sum(len(w) for w in words) or 1
    edges = np.cumsum(durations) / max(sum(durations), 1)
    out: list[list[str]] = [[] for _ in durations]
    seen = 0
    for w in words:
        mid = (seen + len(w) / 2) / total_chars
        seen += len(w)
        out[min(int(np.searchsorted(edges, mid, side="right")), len(durations) - 1)].append(w)
    return [" ".join(ws) for ws in out]
