"""Scoring one replay against the reference (sans-I/O; every position in milliseconds).

Definitions (all per recording and configuration):

- **WER**: word error rate (jiwer) of the completed transcripts, joined in audio order,
  against the reference utterances joined, both passed through Whisper's English text
  normaliser (``whisper-normalizer``'s ``EnglishTextNormalizer``, as ASR leaderboards do:
  "Mr." → "mister", "two" → "2", "colour" → "color", fillers dropped;
  :func:`normalise_english`).  ``wer_raw`` beside it compares the texts only lower-cased,
  punctuation other than apostrophes removed and whitespace collapsed
  (:func:`normalise`), so the gap between the two is what spelling and number
  conventions cost.  The normaliser has quirks of its own (``"five five"`` → ``"55"``,
  ``"smith's"`` → ``"smith is"``), the same for everyone who uses it.
- **segments**: committed items; compared with the number of reference utterances
  (``segment_error = segments - ref_segments``); an utterance overlapped by two or more
  segments is *split*, a segment overlapping two or more utterances is *merged*.
- **boundary precision / recall**: a detected speech onset (offset) is a hit when it lies
  within ``tol_ms`` of a reference onset (offset) not matched yet (one-to-one, closest
  pairs first).  Precision = hits / (2 × segments), recall = hits / (2 × utterances).
  Detected onsets/offsets are the segments' speech estimates (server VAD: padding and
  trailing silence removed, see :mod:`.events`).
- **clipped words**: word times are approximate — each utterance's region is shared out
  over its words in proportion to their character counts (spaces not counted), so a
  9-letter word lasts three times as long as a 3-letter one.  A word is *clipped* when it
  overlaps some segment but lies wholly inside none (cut at a segment's start or end, or
  split between two segments); it is *missed* when it overlaps no segment.  The audio a
  segment covers (including server-VAD padding and silence) is what counts here: it is
  what the recogniser hears.
- **latency** of an utterance, "end of speech to completed": the segment that covers the
  utterance's end (else the last segment overlapping the utterance) closes at audio
  position ``end_ms``; live, audio arrives in real time, so that close happens
  ``end_ms - utterance_end`` after the speech ended (the *segmentation delay*, measured in
  audio time, exact even when the replay ran faster than real time); then the server
  needs some *processing* time until ``completed``.  Hence

      latency = (segment.end_ms - utterance_end_ms) + processing

  Processing is measured in wall time as ``t_completed - t_closed`` (host arrival times
  of ``completed`` and of the event that closed the segment) when the replay ran in real
  time.  In a replay faster than real time that difference also contains the backlog of
  audio the recogniser has not reached yet — time a live stream spends while the words
  are being spoken — so the sweep substitutes the median processing time of a short
  real-time calibration replay against the same backend (``processing_ms`` argument,
  reported as ``latency_processing_ms``).  The measured values are still reported as
  ``processing_p50_ms`` / ``processing_p95_ms``, and the audio-time part alone as
  ``seg_delay_p50_ms`` / ``seg_delay_p95_ms`` (it does not depend on the machine's load).
  Utterances no segment overlaps, or whose segment never completed, have no latency
  (counted in ``missed_utterances``).  p50/p95 use linear interpolation
  (:func:`spear_lab.trace.stats.percentile`, the project's one percentile function).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np

from ..trace.stats import percentile
from .events import Segment

__all__ = [
    "normalise", "normalise_english", "wer_counts", "corpus_wer", "WordSpan", "word_spans",
    "match_boundaries", "boundary_scores", "word_coverage", "utterance_timing",
    "utterance_latencies", "percentile", "overlap_counts", "score",
]

_PUNCT = re.compile(r"[^\w\s']+")


def normalise(text: str) -> str:
    """Lower-case, drop punctuation (apostrophes kept), collapse whitespace."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


@lru_cache(maxsize=1)
def _english() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalise_english(text: str) -> str:
    """Whisper's English normaliser (``whisper-normalizer``'s ``EnglishTextNormalizer``)."""
    return _english()(text)


def _counts(ref: str, hyp: str) -> dict[str, Any]:
    n_ref, n_hyp = len(ref.split()), len(hyp.split())
    if n_ref == 0:
        return {"wer": 0.0 if n_hyp == 0 else math.nan, "errors": n_hyp, "ref_words": 0,
                "hyp_words": n_hyp, "substitutions": 0, "deletions": 0, "insertions": n_hyp}
    import jiwer

    out = jiwer.process_words(ref, hyp)
    errors = out.substitutions + out.deletions + out.insertions
    return {"wer": errors / n_ref, "errors": errors, "ref_words": n_ref, "hyp_words": n_hyp,
            "substitutions": out.substitutions, "deletions": out.deletions,
            "insertions": out.insertions}


def wer_counts(reference: str, hypothesis: str) -> dict[str, Any]:
    """``wer``, ``errors`` (S + D + I), ``ref_words``, ``hyp_words``, ``substitutions``,
    ``deletions``, ``insertions`` of the texts after :func:`normalise_english`, and
    ``wer_raw``, ``errors_raw``, ``ref_words_raw`` after :func:`normalise` only.  An
    empty (normalised) reference gives a WER of NaN, or 0 with an empty hypothesis."""
    out = _counts(normalise_english(reference), normalise_english(hypothesis))
    raw = _counts(normalise(reference), normalise(hypothesis))
    out.update(wer_raw=raw["wer"], errors_raw=raw["errors"], ref_words_raw=raw["ref_words"])
    return out


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, Any]:
    """:func:`wer_counts` pooled over pairs of texts (counts summed, WERs recomputed from
    the sums): one figure for a set of utterances.  ValueError when the lengths differ."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    parts = [wer_counts(r, h) for r, h in zip(references, hypotheses)]
    keys = ("errors", "ref_words", "hyp_words", "substitutions", "deletions", "insertions",
            "errors_raw", "ref_words_raw")
    out: dict[str, Any] = {k: sum(p[k] for p in parts) for k in keys}
    out["wer"] = out["errors"] / out["ref_words"] if out["ref_words"] else math.nan
    out["wer_raw"] = out["errors_raw"] / out["ref_words_raw"] if out["ref_words_raw"] else math.nan
    return out


@dataclass(frozen=True)
class WordSpan:
    """A reference word and its approximate span (ms); ``utterance`` is its index."""

    word: str
    start_ms: float
    end_ms: float
    utterance: int


def word_spans(utterances: Sequence[tuple[float, float, str]]) -> list[WordSpan]:
    """Approximate word times: each ``(start_ms, end_ms, text)`` region shared out over its
    normalised words in proportion to their character counts."""
    out: list[WordSpan] = []
    for k, (start, end, text) in enumerate(utterances):
        words = normalise(text).split()
        total = sum(len(w) for w in words)
        t = float(start)
        for w in words:
            d = (end - start) * len(w) / total
            out.append(WordSpan(w, t, t + d, k))
            t += d
    return out


def match_boundaries(reference: Sequence[float], detected: Sequence[float],
                     tol_ms: float) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(ref_index, det_index, distance)`` within ``tol_ms``, closest
    pairs first (ties: lower reference index, then lower detected index)."""
    pairs = sorted((abs(r - d), i, j) for i, r in enumerate(reference)
                   for j, d in enumerate(detected) if abs(r - d) <= tol_ms)
    used_r: set[int] = set()
    used_d: set[int] = set()
    out = []
    for dist, i, j in pairs:
        if i not in used_r and j not in used_d:
            used_r.add(i)
            used_d.add(j)
            out.append((i, j, dist))
    return sorted(out)


def boundary_scores(reference: Sequence[tuple[float, float]], detected: Sequence[tuple[float, float]],
                    tol_ms: float = 250.0) -> dict[str, Any]:
    """Onset/offset hits of ``detected`` speech regions against ``reference`` regions.

    Returns ``boundary_hits``, ``boundary_precision`` (NaN when nothing was detected),
    ``boundary_recall`` (NaN without reference regions), ``boundary_f1`` and the mean
    absolute onset/offset errors of the hits (``onset_error_ms`` / ``offset_error_ms``).
    """
    on = match_boundaries([a for a, _ in reference], [a for a, _ in detected], tol_ms)
    off = match_boundaries([b for _, b in reference], [b for _, b in detected], tol_ms)
    hits = len(on) + len(off)
    p = hits / (2 * len(detected)) if detected else math.nan
    r = hits / (2 * len(reference)) if reference else math.nan
    if math.isnan(p) or math.isnan(r):
        f1 = math.nan
    else:
        f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {
        "boundary_hits": hits, "boundary_precision": p, "boundary_recall": r, "boundary_f1": f1,
        "onset_error_ms": float(np.mean([d for *_, d in on])) if on else math.nan,
        "offset_error_ms": float(np.mean([d for *_, d in off])) if off else math.nan,
    }


def word_coverage(words: Sequence[WordSpan], segments: Sequence[tuple[float, float]],
                  tol_ms: float = 0.0) -> dict[str, Any]:
    """Which words the segments ``(start_ms, end_ms)`` clip or miss (see module docstring).

    A word counts as wholly inside a segment when it sticks out by at most ``tol_ms`` on
    either side.  Returns ``clipped_words``, ``missed_words`` (counts) and the lists
    ``clipped`` / ``missed`` of word indices.
    """
    clipped, missed = [], []
    for k, w in enumerate(words):
        inside = any(s - tol_ms <= w.start_ms and w.end_ms <= e + tol_ms for s, e in segments)
        if inside:
            continue
        touches = any(min(w.end_ms, e) > max(w.start_ms, s) for s, e in segments)
        (clipped if touches else missed).append(k)
    return {"clipped_words": len(clipped), "missed_words": len(missed), "clipped": clipped,
            "missed": missed}


def overlap_counts(reference: Sequence[tuple[float, float]],
                   segments: Sequence[tuple[float, float]]) -> dict[str, int]:
    """``split_utterances`` (overlapped by ≥ 2 segments), ``merged_segments`` (overlapping
    ≥ 2 utterances) and ``missed_utterances_vad`` (overlapped by none)."""
    def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return min(a[1], b[1]) > max(a[0], b[0])

    per_utt = [sum(overlaps(u, s) for s in segments) for u in reference]
    per_seg = [sum(overlaps(u, s) for u in reference) for s in segments]
    return {"split_utterances": sum(n >= 2 for n in per_utt),
            "merged_segments": sum(n >= 2 for n in per_seg),
            "unsegmented_utterances": sum(n == 0 for n in per_utt)}


def utterance_timing(reference: Sequence[tuple[float, float]],
                     segments: Sequence[Segment]) -> list[tuple[float, float | None] | None]:
    """Per reference utterance: ``(segmentation delay ms, processing ms)`` of the segment
    holding its end (see module docstring) — the delay in audio time, the processing in
    wall time (None when the segment never completed); None when no segment overlaps."""
    out: list[tuple[float, float | None] | None] = []
    for start, end in reference:
        cands = [s for s in segments if min(s.end_ms, end) > max(s.start_ms, start)]
        if not cands:
            out.append(None)
            continue
        covering = [s for s in cands if s.start_ms <= end <= s.end_ms]
        seg = covering[0] if covering else max(cands, key=lambda s: s.end_ms)
        out.append((seg.end_ms - end, seg.processing_ms))
    return out


def utterance_latencies(reference: Sequence[tuple[float, float]],
                        segments: Sequence[Segment]) -> list[float | None]:
    """Latency (ms) from each reference utterance's end to the ``completed`` event of the
    segment holding that end: segmentation delay + processing; None when there is none."""
    return [None if t is None or t[1] is None else t[0] + t[1] for t in utterance_timing(reference, segments)]


def score(reference: Sequence[tuple[float, float, str]] | None, ref_text: str,
          segments: Sequence[Segment], *, tol_ms: float = 250.0,
          clip_tol_ms: float = 0.0, processing_ms: float | None = None) -> dict[str, Any]:
    """Every metric of one replay.

    ``reference``: the utterances as ``(start_ms, end_ms, text)`` (None when the regions
    are unknown: region-based metrics are then NaN); ``ref_text``: the whole reference
    transcript; ``segments``: from :func:`~spear_lab.explore.events.segments_from_events`;
    ``processing_ms``: when given, the processing part of every latency (instead of each
    segment's measured ``completed - closed`` time; see the module docstring).
    """
    hyp = " ".join(s.transcript for s in segments if s.transcript)
    out: dict[str, Any] = {}
    w = wer_counts(ref_text, hyp)
    out.update(wer=w["wer"], wer_errors=w["errors"], ref_words=w["ref_words"],
               hyp_words=w["hyp_words"], substitutions=w["substitutions"],
               deletions=w["deletions"], insertions=w["insertions"], wer_raw=w["wer_raw"],
               wer_raw_errors=w["errors_raw"], ref_words_raw=w["ref_words_raw"])
    out["segments"] = len(segments)
    out["empty_segments"] = sum(1 for s in segments if s.completed and not normalise(s.transcript or ""))
    out["incomplete_segments"] = sum(1 for s in segments if not s.completed)
    if reference is None:
        out["ref_segments"] = math.nan
        for key in ("segment_error", "boundary_hits", "boundary_precision", "boundary_recall",
                    "boundary_f1", "onset_error_ms", "offset_error_ms", "clipped_words",
                    "missed_words", "split_utterances", "merged_segments", "unsegmented_utterances",
                    "latency_p50_ms", "latency_p95_ms", "latency_mean_ms", "latency_max_ms",
                    "missed_utterances", "seg_delay_p50_ms", "seg_delay_p95_ms",
                    "processing_p50_ms", "processing_p95_ms", "latency_processing_ms"):
            out[key] = math.nan
        out["latencies_ms"] = []
        out["seg_delays_ms"] = []
        out["hypothesis"] = hyp
        return out
    regions = [(a, b) for a, b, _ in reference]
    out["ref_segments"] = len(regions)
    out["segment_error"] = len(segments) - len(regions)
    out.update(boundary_scores(regions, [(s.speech_start_ms, s.speech_end_ms) for s in segments], tol_ms))
    out["boundary_tol_ms"] = tol_ms
    cov = word_coverage(word_spans(reference), [(s.start_ms, s.end_ms) for s in segments], clip_tol_ms)
    out["clipped_words"], out["missed_words"] = cov["clipped_words"], cov["missed_words"]
    out.update(overlap_counts(regions, [(s.start_ms, s.end_ms) for s in segments]))
    timing = utterance_timing(regions, segments)
    lat = [None if t is None or t[1] is None else t[0] + (t[1] if processing_ms is None else processing_ms)
           for t in timing]
    vals = [v for v in lat if v is not None]
    delays = [t[0] for t in timing if t is not None]
    procs = [t[1] for t in timing if t is not None and t[1] is not None]
    out["seg_delays_ms"] = delays
    out["seg_delay_p50_ms"] = percentile(delays, 50)
    out["seg_delay_p95_ms"] = percentile(delays, 95)
    out["processing_p50_ms"] = percentile(procs, 50)
    out["processing_p95_ms"] = percentile(procs, 95)
    out["latency_processing_ms"] = math.nan if processing_ms is None else float(processing_ms)
    out["latencies_ms"] = vals
    out["missed_utterances"] = sum(v is None for v in lat)
    out["latency_p50_ms"] = percentile(vals, 50)
    out["latency_p95_ms"] = percentile(vals, 95)
    out["latency_mean_ms"] = float(np.mean(vals)) if vals else math.nan
    out["latency_max_ms"] = float(max(vals)) if vals else math.nan
    out["hypothesis"] = hyp
    return out
