"""Test speech for tests, notebooks, benchmarks and the explorer: espeak-ng sentences
joined by silences of known length, optionally with noise at a given SNR.

:func:`synthesize` speaks one sentence with ``espeak-ng -v en-us+klatt4 -s 190`` (the
voice the offline recogniser understands best) and converts it with ``sox -D`` (no
dither, so the bytes are the same on every run) to mono pcm16, peak about -3 dBFS.
:func:`join_speech` trims each clip to its audible part (:func:`trim_bounds`) and joins
the clips with exact silences, returning each sentence's sample range;
:func:`speech_track` does the same in seconds and returns a :class:`Track`, and
:func:`make_speech` also writes the track as a WAV.  :func:`mix_noise` /
:func:`add_noise` add seeded white, pink, pulsing or babble noise at an SNR
(:func:`babble`: six espeak-ng talkers at once).

Needs the Debian packages ``espeak-ng`` and ``sox`` (FileNotFoundError names the missing
program; ``subprocess.CalledProcessError`` when either fails).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "RATE", "VOICE", "SPEED", "SENTENCES", "SYNTH_VERSION", "Track", "espeak_version",
    "synthesize", "trim_bounds", "audible_bounds", "per_gap", "join_speech", "speech_track",
    "make_speech", "BABBLE_VOICES", "BABBLE_SENTENCES", "babble", "mix_noise", "add_noise",
    "read_wav", "write_wav",
]

RATE = 24000
"""Default sample rate (Hz): the ABI's pcm16 rate."""
VOICE = "en-us+klatt4"
"""espeak-ng voice that pocketsphinx recognises best (facts.md: WER about 0.2)."""
SPEED = 190
"""espeak-ng speed (words per minute)."""
SYNTH_VERSION = 1
"""Bumped whenever :func:`synthesize` would produce other audio; part of its cache key."""

SENTENCES = (
    "the quick brown fox jumps over the lazy dog",
    "please call me back when you get home tonight",
    "we need to buy some milk and bread at the store",
    "the weather is very nice today",
    "i would like to book a table for two people",
    "she went to the library to read a new book",
    "my sister lives in a small house near the river",
    "can you tell me how to get to the station",
)
"""Plain sentences the default pocketsphinx model recognises reasonably well."""


@dataclass
class Track:
    """Speech with known sentence positions: ``pcm`` is mono int16 at ``rate`` Hz,
    ``segments`` holds ``(start_s, end_s, text)`` of each sentence's audible part, and
    ``path`` is a WAV of exactly ``pcm`` when one was written (:func:`make_speech`)."""

    pcm: np.ndarray
    rate: int
    segments: list[tuple[float, float, str]] = field(default_factory=list)
    path: Path | None = None

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


# -- synthesis ------------------------------------------------------------------------------


def _require(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise FileNotFoundError(f"{program} not found; install the Debian package {program}")
    return path


@lru_cache(maxsize=1)
def espeak_version() -> str:
    """``espeak-ng --version`` (part of cache keys: another espeak speaks differently)."""
    out = subprocess.run([_require("espeak-ng"), "--version"], check=False, capture_output=True,
                         text=True)
    return out.stdout.strip()


def synthesize(text: str, rate: int = RATE, voice: str = VOICE, speed: int = SPEED, *,
               cache: Path | None = None) -> np.ndarray:
    """Speak ``text`` with espeak-ng; mono int16 at ``rate`` Hz, peak about -3 dBFS
    (``sox gain -n -3``, applied before sox's final rate conversion).

    With ``cache`` (a directory) the clip is kept there as ``.npy``, keyed by the text,
    voice, speed, rate, espeak-ng version and :data:`SYNTH_VERSION`.
    """
    path = None
    if cache is not None:
        key = hashlib.sha256(json.dumps(
            [SYNTH_VERSION, espeak_version(), text, voice, speed, rate]).encode()).hexdigest()[:24]
        path = Path(cache) / f"{key}.npy"
        if path.is_file():
            return np.load(path)
    wav = subprocess.run([_require("espeak-ng"), "-v", voice, "-s", str(speed), "--stdout", text],
                         check=True, capture_output=True).stdout
    raw = subprocess.run(
        [_require("sox"), "-D", "-t", "wav", "-", "-t", "raw", "-e", "signed-integer", "-b", "16",
         "-c", "1", "-r", str(rate), "-", "gain", "-n", "-3"],
        input=wav, check=True, capture_output=True).stdout
    pcm = np.frombuffer(raw, dtype="<i2").copy()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npy")
        np.save(tmp, pcm)
        os.replace(tmp, path)
    return pcm


def trim_bounds(pcm: np.ndarray, rel: float = 0.02) -> tuple[int, int]:
    """``[first, last + 1)`` of the samples louder than ``rel`` of the peak; (0, 0) if silent."""
    mag = np.abs(pcm.astype(np.int32))
    peak = int(mag.max()) if len(mag) else 0
    if peak == 0:
        return 0, 0
    loud = np.flatnonzero(mag > rel * peak)
    return int(loud[0]), int(loud[-1]) + 1


def audible_bounds(pcm: np.ndarray, rate: int = RATE, *, frame_ms: float = 10.0,
                   onset_db: float = 15.0, extend_db: float = 6.0,
                   margin_ms: float = 0.0) -> tuple[int, int]:
    """``[start, end)`` of the audible part of a recording that has a noise floor (real
    speech; :func:`trim_bounds` suits digital silence).  (0, 0) if silent.

    The clip is cut into ``frame_ms`` frames; the floor is the level (dB of mean square)
    of its quietest five consecutive frames.  The audible part runs from the first to the
    last frame at least ``onset_db`` above the floor, widened while the neighbouring
    frames stay ``extend_db`` above it, then by ``margin_ms`` on each side — to the clip's
    edge where less than ``margin_ms`` more would be left; bounds fall on frame edges (or
    the clip's ends).
    """
    hop = max(int(round(rate * frame_ms / 1000)), 1)
    n = len(pcm) // hop
    if n == 0 or not np.any(pcm):
        return 0, 0
    x = pcm[: n * hop].astype(np.float64).reshape(n, hop)
    power = np.mean(x ** 2, axis=1) + 1.0
    level = 10 * np.log10(power)
    floor = float(10 * np.log10(np.convolve(power, np.ones(5) / 5, "valid").min())) if n >= 5 \
        else float(level.min())
    loud = np.flatnonzero(level >= floor + onset_db)
    if not len(loud):
        return 0, 0
    first, last = int(loud[0]), int(loud[-1])
    while first > 0 and level[first - 1] >= floor + extend_db:
        first -= 1
    while last < n - 1 and level[last + 1] >= floor + extend_db:
        last += 1
    pad = int(round(margin_ms / frame_ms))
    first = first - pad if first >= 2 * pad else 0
    last = last + pad if last + 2 * pad < n - 1 else n - 1
    return first * hop, len(pcm) if last == n - 1 else (last + 1) * hop


def per_gap(value: float | Sequence[float], n: int) -> list[float]:
    """The ``n - 1`` gaps between ``n`` sentences: one value repeated, or a sequence of
    exactly that many (ValueError otherwise)."""
    gaps = max(n - 1, 0)
    if isinstance(value, (int, float)):
        return [float(value)] * gaps
    values = [float(v) for v in value]
    if len(values) != gaps:
        raise ValueError(f"need {gaps} pause lengths, got {len(values)}")
    return values


def join_speech(sentences: Sequence[str], gaps: Sequence[int], *, lead: int, tail: int,
                rate: int = RATE, voice: str = VOICE, speed: int = SPEED, trim_rel: float = 0.02,
                cache: Path | None = None) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Speak each sentence, trim it to its audible part and join the clips with digital
    silence: ``lead`` samples first, ``gaps[i]`` after sentence ``i``, ``tail`` last.

    Returns the int16 samples and each sentence's ``[start, end)`` sample range.
    Raises ValueError without sentences or with other than ``len(sentences) - 1`` gaps.
    """
    if not sentences:
        raise ValueError("need at least one sentence")
    if len(gaps) != len(sentences) - 1:
        raise ValueError(f"need {len(sentences) - 1} gaps, got {len(gaps)}")
    parts = [np.zeros(lead, np.int16)]
    spans, pos = [], lead
    for i, text in enumerate(sentences):
        clip = synthesize(text, rate, voice, speed, cache=cache)
        a, b = trim_bounds(clip, trim_rel)
        parts.append(clip[a:b])
        spans.append((pos, pos + b - a))
        pos += b - a
        parts.append(np.zeros(gaps[i] if i < len(gaps) else tail, np.int16))
        pos += len(parts[-1])
    return np.concatenate(parts), spans


def speech_track(sentences: Sequence[str] | None = None, pauses_s: float | Sequence[float] = 1.0,
                 rate: int = RATE, lead_s: float = 0.5, tail_s: float = 1.0) -> Track:
    """:func:`join_speech` in seconds: ``sentences`` (default :data:`SENTENCES`) with
    ``pauses_s`` of silence between the audible parts (one value or one per gap),
    ``lead_s`` / ``tail_s`` before the first and after the last."""
    sentences = list(SENTENCES if sentences is None else sentences)
    gaps = [int(p * rate) for p in per_gap(pauses_s, len(sentences))]
    pcm, spans = join_speech(sentences, gaps, lead=int(lead_s * rate), tail=int(tail_s * rate),
                             rate=rate)
    return Track(pcm, rate, [(a / rate, b / rate, t) for (a, b), t in zip(spans, sentences)])


def make_speech(sentences: Sequence[str] | None = None, path: str | os.PathLike[str] = "speech.wav",
                rate: int = RATE, pause_s: float | Sequence[float] = 1.0, *,
                lead_s: float = 0.5, tail_s: float = 1.0) -> Track:
    """:func:`speech_track` written as a WAV at ``path`` (its ``path`` is set)."""
    track = speech_track(sentences, pause_s, rate=rate, lead_s=lead_s, tail_s=tail_s)
    track.path = write_wav(path, track.pcm, rate)
    return track


# -- noise ----------------------------------------------------------------------------------


BABBLE_VOICES = (("en-us+m3", 165), ("en-gb+f2", 175), ("en-us+f4", 150),
                 ("en-gb-x-rp+m5", 185), ("en-us+m7", 160), ("en-gb-scotland+f3", 170))
"""The talkers of :func:`babble`: espeak-ng voice and speed (words per minute)."""
BABBLE_SENTENCES = (
    "a long train of carriages rolled slowly past the old mill",
    "nobody had expected the meeting to last until midnight",
    "there were seven green apples left in the wooden basket",
    "the captain ordered everyone back to the ship at once",
    "several letters arrived from the north during the winter",
    "he painted the fence white before the rain came down",
    "our neighbours keep three noisy geese behind the barn",
    "the museum opens its doors at nine every morning",
)
"""What the babble talkers say: none of :data:`SENTENCES`' sentences."""


def babble(n: int, seed: int = 0, *, rate: int = RATE, cache: Path | None = None) -> np.ndarray:
    """``n`` samples (float64, unit RMS) of babble: the :data:`BABBLE_VOICES` talkers
    speaking :data:`BABBLE_SENTENCES` at the same time, each at equal power.

    Each talker says every sentence once (trimmed, 150 ms apart) in an order drawn from
    ``numpy.random.default_rng(seed)``, repeated to cover ``n`` and started at a drawn
    offset.  ``cache`` keeps the sentence clips (see :func:`synthesize`)."""
    rng = np.random.default_rng(seed)
    gap = np.zeros(int(0.15 * rate))
    out = np.zeros(n)
    for voice, speed in BABBLE_VOICES:
        parts = []
        for k in rng.permutation(len(BABBLE_SENTENCES)):
            clip = synthesize(BABBLE_SENTENCES[k], rate, voice, speed, cache=cache)
            a, b = trim_bounds(clip)
            parts += [clip[a:b].astype(np.float64), gap]
        talk = np.concatenate(parts)
        talk /= np.sqrt(np.mean(talk ** 2))
        start = int(rng.integers(len(talk)))
        out += np.resize(np.roll(talk, -start), n)
    return out / np.sqrt(np.mean(out ** 2)) if n else out


def mix_noise(pcm: np.ndarray, regions: Sequence[tuple[int, int]], snr_db: float,
              kind: str = "pink", seed: int = 0, *, rate: int = RATE,
              cache: Path | None = None) -> np.ndarray:
    """``pcm`` plus noise at ``snr_db`` dB below the mean speech power.

    Speech power is the mean square over ``regions`` (sample ranges), noise power the
    mean square over the whole signal.  ``kind``: ``white``; ``pink`` (1/f power, shaped
    in the frequency domain); ``pulsing`` (pink whose level swings ±6 dB at 0.3 Hz,
    ``rate`` being the sample rate); ``babble`` (:func:`babble`, clips cached in
    ``cache``).  The noise is drawn from ``numpy.random.default_rng(seed)``.  Raises
    ValueError for an unknown kind or empty regions.
    """
    if kind not in ("white", "pink", "pulsing", "babble"):
        raise ValueError(f"unknown noise kind {kind!r} (white, pink, pulsing or babble)")
    n = len(pcm)
    x = pcm.astype(np.float64)
    speech = np.concatenate([x[a:b] for a, b in regions]) if regions else np.zeros(0)
    if not len(speech):
        raise ValueError("mix_noise needs at least one non-empty speech region")
    if kind == "babble":
        noise = babble(n, seed, rate=rate, cache=cache)
    else:
        noise = np.random.default_rng(seed).standard_normal(n)
    if kind in ("pink", "pulsing"):
        spec = np.fft.rfft(noise)
        f = np.arange(len(spec), dtype=np.float64)
        spec[0] = 0.0
        spec[1:] /= np.sqrt(f[1:])
        noise = np.fft.irfft(spec, n)
        if kind == "pulsing":
            noise *= 10 ** (6 / 20 * np.sin(2 * np.pi * 0.3 * np.arange(n) / rate))
    p_speech = float(np.mean(speech ** 2))
    noise *= np.sqrt(p_speech / 10 ** (snr_db / 10) / float(np.mean(noise ** 2)))
    return np.clip(np.rint(x + noise), -32768, 32767).astype(np.int16)


def add_noise(track: Track, snr_db: float, kind: str = "pink", seed: int = 0) -> Track:
    """A copy of ``track`` (without ``path``) with :func:`mix_noise` noise, speech power
    measured over its segments."""
    regions = [(int(s * track.rate), int(e * track.rate)) for s, e, _ in track.segments]
    pcm = mix_noise(track.pcm, regions, snr_db, kind, seed, rate=track.rate)
    return Track(pcm, track.rate, list(track.segments))


# -- WAV files ------------------------------------------------------------------------------


def write_wav(path: str | os.PathLike[str], pcm: np.ndarray, rate: int = RATE) -> Path:
    """Write mono int16 ``pcm`` as a 16-bit PCM WAV (parent directories created; atomic:
    temp file, then rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    os.replace(tmp, path)
    return path


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """``(mono int16 samples, rate)`` of a 16-bit PCM WAV (channels averaged).

    Raises ValueError for other sample widths."""
    with wave.open(str(path), "rb") as w:
        width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: {8 * width}-bit WAV; only 16-bit PCM is supported")
    pcm = np.frombuffer(raw, dtype="<i2")
    if channels > 1:
        pcm = np.rint(pcm[: len(pcm) // channels * channels].reshape(-1, channels).mean(axis=1))
    return pcm.astype(np.int16), rate
