"""Honest comparisons: bootstrap confidence intervals over utterances, paired differences.

Every sweep row keeps ``per_utterance``: for each reference utterance of its recording,
the values the utterance contributes to each metric (:func:`utterance_values`):

- ``wer_errors`` / ``ref_words`` — the utterance's share of the recording's WER: the
  whole hypothesis is aligned with the whole reference once (jiwer, after the same
  normaliser as :func:`~.metrics.wer_counts`, applied per utterance), substitutions and
  deletions count for the utterance of their reference word, insertions for the
  utterance of the reference word before them (so the shares add up to the recording's
  errors; without regions the recording is one utterance);
- ``clipped_words``, ``missed_words`` — the utterance's words clipped / missed;
- ``latency_ms``, ``seg_delay_ms`` — its latency and segmentation delay (None when it
  has none); ``boundary_hits`` — its onset and offset hits (0–2);
  ``missed_utterances``, ``unsegmented_utterances``, ``split_utterances`` — 0 or 1.

A metric is a statistic of these values (:data:`STATISTICS`): WER is the ratio of summed
errors to summed reference words, counts are sums, latency percentiles are percentiles
of the utterances' latencies, boundary recall is summed hits over twice the utterances.
:func:`bootstrap_ci` resamples utterances with replacement (seeded, ``n_boot`` times)
and reports the 2.5th and 97.5th percentiles of the statistic (percentile bootstrap).
Pooling several recordings of one configuration concatenates their utterances.

:func:`compare` resamples the *same* utterances for both configurations (paired), so
the interval of the difference excludes what the utterances share.  Metrics about
segments rather than utterances (``segments``, ``boundary_precision``) have no
utterance-level values; asking for them raises ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .events import Segment
from .metrics import match_boundaries, normalise_english, utterance_timing, word_coverage, word_spans

__all__ = [
    "STATISTICS",
    "wer_shares",
    "bootstrap_ci",
    "ci_table",
    "compare",
    "statistic",
    "supported_metrics",
    "utterance_values",
]

N_BOOT = 2000
"""Bootstrap resamples used by default."""


def _ratio(num: str, den: str, scale: float = 1.0) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    def f(v: dict[str, np.ndarray]) -> np.ndarray:
        n, d = v[num].sum(axis=-1), v[den].sum(axis=-1) * scale
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(d > 0, n / np.where(d > 0, d, 1), np.nan)
    return f


def _sum(key: str) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    return lambda v: v[key].sum(axis=-1)


def _pct(key: str, q: float | None) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    def f(v: dict[str, np.ndarray]) -> np.ndarray:
        x = v[key]
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN resamples give NaN
            return np.nanmean(x, axis=-1) if q is None else np.nanpercentile(x, q, axis=-1)
    return f


def _ones(v: dict[str, np.ndarray]) -> np.ndarray:
    return v["wer_errors"] * 0 + 1.0


STATISTICS: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
    "wer": _ratio("wer_errors", "ref_words"),
    "wer_errors": _sum("wer_errors"),
    "clipped_words": _sum("clipped_words"),
    "missed_words": _sum("missed_words"),
    "missed_utterances": _sum("missed_utterances"),
    "unsegmented_utterances": _sum("unsegmented_utterances"),
    "split_utterances": _sum("split_utterances"),
    "boundary_hits": _sum("boundary_hits"),
    "boundary_recall": lambda v: _ratio("boundary_hits", "one", 2.0)({**v, "one": _ones(v)}),
    "latency_p50_ms": _pct("latency_ms", 50),
    "latency_p95_ms": _pct("latency_ms", 95),
    "latency_mean_ms": _pct("latency_ms", None),
    "seg_delay_p50_ms": _pct("seg_delay_ms", 50),
    "seg_delay_p95_ms": _pct("seg_delay_ms", 95),
}
"""Metric name → statistic of per-utterance value arrays (last axis: utterances)."""

_KEYS = ("wer_errors", "ref_words", "clipped_words", "missed_words", "latency_ms", "seg_delay_ms",
         "boundary_hits", "missed_utterances", "unsegmented_utterances", "split_utterances")


def supported_metrics() -> list[str]:
    return list(STATISTICS)


def utterance_values(reference: Sequence[tuple[float, float, str]] | None, ref_text: str,
                     segments: Sequence[Segment], *, tol_ms: float = 250.0, clip_tol_ms: float = 0.0,
                     processing_ms: float | None = None) -> dict[str, list]:
    """Per-utterance contributions (see the module docstring), one list per key."""
    hyp = " ".join(s.transcript for s in segments if s.transcript)
    if reference is None:  # one utterance of unknown extent: only WER is defined
        errors, words = wer_shares([ref_text], hyp)
        return {"wer_errors": errors, "ref_words": words, "clipped_words": [math.nan],
                "missed_words": [math.nan], "latency_ms": [None], "seg_delay_ms": [None],
                "boundary_hits": [math.nan], "missed_utterances": [math.nan],
                "unsegmented_utterances": [math.nan], "split_utterances": [math.nan]}
    n = len(reference)
    regions = [(a, b) for a, b, _ in reference]
    spans = [(s.start_ms, s.end_ms) for s in segments]
    out: dict[str, list] = {k: [] for k in _KEYS}
    out["wer_errors"], out["ref_words"] = wer_shares([t for _, _, t in reference], hyp)
    cov = word_coverage(word_spans(reference), spans, clip_tol_ms)
    words = word_spans(reference)
    out["clipped_words"] = list(np.bincount([words[i].utterance for i in cov["clipped"]], minlength=n))
    out["missed_words"] = list(np.bincount([words[i].utterance for i in cov["missed"]], minlength=n))
    timing = utterance_timing(regions, segments)
    for t in timing:
        if t is None or t[1] is None:
            out["latency_ms"].append(None)
        else:
            out["latency_ms"].append(t[0] + (t[1] if processing_ms is None else processing_ms))
        out["seg_delay_ms"].append(None if t is None else t[0])
    out["missed_utterances"] = [int(v is None) for v in out["latency_ms"]]
    det = [(s.speech_start_ms, s.speech_end_ms) for s in segments]
    hits = np.zeros(n, int)
    for i, _, _ in match_boundaries([a for a, _ in regions], [a for a, _ in det], tol_ms):
        hits[i] += 1
    for i, _, _ in match_boundaries([b for _, b in regions], [b for _, b in det], tol_ms):
        hits[i] += 1
    out["boundary_hits"] = hits.tolist()
    per = [sum(min(e, b) > max(s, a) for s, e in spans) for a, b in regions]
    out["unsegmented_utterances"] = [int(c == 0) for c in per]
    out["split_utterances"] = [int(c >= 2) for c in per]
    out["clipped_words"] = [int(v) for v in out["clipped_words"]]
    out["missed_words"] = [int(v) for v in out["missed_words"]]
    return out


def wer_shares(references: Sequence[str], hypothesis: str) -> tuple[list[int], list[int]]:
    """Per reference text: (errors, reference words) of one alignment of ``hypothesis``
    with all the references in order (see the module docstring)."""
    import jiwer

    owner: list[int] = []
    for k, text in enumerate(references):
        owner += [k] * len(normalise_english(text).split())
    ref_words = [0] * len(references)
    for k in owner:
        ref_words[k] += 1
    errors = [0] * len(references)
    if not references:
        return errors, ref_words
    ref = " ".join(normalise_english(t) for t in references).split()
    hyp = normalise_english(hypothesis).split()
    if not ref or not hyp:  # all insertions (to the last utterance) or all deletions
        errors[owner[-1] if owner else len(references) - 1] += len(hyp)
        for k in owner:
            errors[k] += 0 if hyp else 1
        return errors, ref_words
    for chunk in jiwer.process_words(" ".join(ref), " ".join(hyp)).alignments[0]:
        if chunk.type in ("substitute", "delete"):
            for i in range(chunk.ref_start_idx, chunk.ref_end_idx):
                errors[owner[i]] += 1
        elif chunk.type == "insert":
            at = max(chunk.ref_start_idx - 1, 0)
            errors[owner[at]] += chunk.hyp_end_idx - chunk.hyp_start_idx
    return errors, ref_words


def _arrays(rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Concatenate the rows' per-utterance values (None → NaN)."""
    out: dict[str, list] = {k: [] for k in _KEYS}
    for r in rows:
        pu = r.get("per_utterance")
        if not pu:
            raise ValueError(f"row {r.get('config')!r}/{r.get('recording')!r} has no per-utterance "
                             "values (made by an older sweep?)")
        for k in _KEYS:
            out[k].extend(math.nan if v is None else v for v in pu.get(k, []))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def statistic(metric: str, values: dict[str, np.ndarray]) -> float:
    """The value of ``metric`` computed from per-utterance arrays."""
    if metric not in STATISTICS:
        raise ValueError(f"no utterance-level statistic for {metric!r}; one of {', '.join(STATISTICS)}")
    return float(STATISTICS[metric](values))


def bootstrap_ci(values: Mapping[str, Sequence[float]] | Sequence[float], metric: str | None = None, *,
                 level: float = 0.95, n_boot: int = N_BOOT, seed: int = 0,
                 stat: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, float]:
    """Percentile-bootstrap interval over utterances.

    Either ``values`` is a dict of per-utterance arrays and ``metric`` names a
    :data:`STATISTICS` entry, or ``values`` is one array and ``stat`` maps an array of
    shape (resamples, utterances) to one value per resample (default: the mean).
    Returns ``value`` (on the original sample), ``low``, ``high``, ``n`` (utterances),
    ``level``.  Raises ValueError for no utterances or a level outside (0, 1).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), not {level}")
    if isinstance(values, Mapping):
        arrs = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
        if metric not in STATISTICS:
            raise ValueError(f"no utterance-level statistic for {metric!r}; one of {', '.join(STATISTICS)}")
        f = STATISTICS[metric]
        n = len(next(iter(arrs.values())))
    else:
        x = np.asarray(values, dtype=np.float64)
        arrs = {"x": x}
        s = stat or (lambda a: a.mean(axis=-1))
        f = lambda v: s(v["x"])
        n = len(x)
    if n == 0:
        raise ValueError("no utterances to resample")
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boot = np.asarray(f({k: v[idx] for k, v in arrs.items()}), dtype=np.float64)
    point = float(np.asarray(f(arrs)))
    boot = boot[~np.isnan(boot)]
    alpha = (1.0 - level) / 2
    low, high = (float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))) if len(boot) \
        else (math.nan, math.nan)
    return {"value": point, "low": low, "high": high, "n": int(n), "level": level}


def _groups(rows: Sequence[Mapping[str, Any]], pooled: bool) -> dict[tuple, list[Mapping[str, Any]]]:
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in rows:
        key = (r.get("config"),) if pooled else (r.get("config"), r.get("recording"))
        groups.setdefault(key, []).append(r)
    return groups


def ci_table(rows: Sequence[Mapping[str, Any]], metric: str, *, pooled: bool = True,
             level: float = 0.95, n_boot: int = N_BOOT, seed: int = 0) -> list[dict[str, Any]]:
    """One interval per configuration (``pooled``) or per (configuration, recording)."""
    out = []
    for key, group in _groups(rows, pooled).items():
        ci = bootstrap_ci(_arrays(group), metric, level=level, n_boot=n_boot, seed=seed)
        out.append({"config": key[0], **({} if pooled else {"recording": key[1]}), "metric": metric, **ci})
    return out


def compare(rows: Sequence[Mapping[str, Any]], a: str, b: str, metric: str, *, level: float = 0.95,
            n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """Paired comparison of configurations ``a`` and ``b`` on the same utterances.

    Returns ``a``, ``b`` (their values), ``diff`` (a − b), ``low``/``high`` (its interval),
    ``n`` (shared utterances), ``significant`` (the interval excludes 0) and
    ``better`` (the name with the lower value when significant, else None — lower is
    better for every statistic except ``boundary_recall``).  Raises ValueError when a
    configuration is missing or the two share no recording.
    """
    by = {name: {r.get("recording"): r for r in rows if r.get("config") == name} for name in (a, b)}
    for name in (a, b):
        if not by[name]:
            raise ValueError(f"no rows for configuration {name!r}")
    shared = [rec for rec in by[a] if rec in by[b]]
    if not shared:
        raise ValueError(f"{a!r} and {b!r} share no recording")
    va, vb = _arrays([by[a][r] for r in shared]), _arrays([by[b][r] for r in shared])
    if metric not in STATISTICS:
        raise ValueError(f"no utterance-level statistic for {metric!r}; one of {', '.join(STATISTICS)}")
    f = STATISTICS[metric]
    n = len(va["wer_errors"])
    if n == 0 or n != len(vb["wer_errors"]):
        raise ValueError(f"{a!r} and {b!r} do not have the same utterances")
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    diff = np.asarray(f({k: v[idx] for k, v in va.items()})) - np.asarray(f({k: v[idx] for k, v in vb.items()}))
    diff = diff[~np.isnan(diff)]
    x, y = float(f(va)), float(f(vb))
    alpha = (1.0 - level) / 2
    low, high = (float(np.quantile(diff, alpha)), float(np.quantile(diff, 1 - alpha))) if len(diff) \
        else (math.nan, math.nan)
    significant = bool(len(diff)) and (low > 0 or high < 0)
    higher_better = metric == "boundary_recall"
    better = None
    if significant:
        a_better = (x > y) if higher_better else (x < y)
        better = a if a_better else b
    return {"metric": metric, "config_a": a, "config_b": b, "a": x, "b": y, "diff": x - y,
            "low": low, "high": high, "n": n, "level": level, "significant": significant,
            "better": better}
