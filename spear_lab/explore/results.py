"""Sweep results: one record per (configuration, recording), tables, and the best choice.

:class:`Results` holds the metric records (plain dicts, see :mod:`.metrics` for their
meaning), the raw :class:`~.replay.RunRecord` of each, and the recordings.  Use
:meth:`Results.to_frame` for a pandas DataFrame (when pandas is installed),
:meth:`Results.by_config` to pool several recordings per configuration, and :func:`best`
for the one-call answer::

    best(results, minimise="clipped_words", constraint={"latency_p95_ms": ("<=", 1500)})

Pooling over recordings sums the counts, recomputes WER and boundary precision/recall
from the summed counts, and takes latency percentiles over all utterances together.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .metrics import percentile

__all__ = ["Results", "best", "aggregate", "satisfies", "COLUMNS", "RUN_COLUMNS"]

RUN_COLUMNS = ("wall_s", "speed", "cached", "worker", "processing_p50_ms", "processing_p95_ms")
"""Columns that describe how a run went (wall times, where, cache) rather than what it
found: :meth:`Results.comparable` leaves them out."""

COLUMNS = (
    "config", "recording", "strategy", "silence_ms", "threshold", "prefix_padding_ms",
    "wer", "wer_raw", "segments", "ref_segments", "boundary_precision", "boundary_recall",
    "clipped_words", "missed_words", "latency_p50_ms", "latency_p95_ms", "commits", "ok",
)
"""Columns shown by default (tables, HTML)."""

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_SUMMED = ("wer_errors", "ref_words", "hyp_words", "substitutions", "deletions", "insertions",
           "segments", "empty_segments", "incomplete_segments", "ref_segments", "segment_error",
           "boundary_hits", "clipped_words", "missed_words", "split_utterances", "merged_segments",
           "unsegmented_utterances", "missed_utterances", "commits", "open_speech", "wall_s",
           "audio_s", "wer_raw_errors", "ref_words_raw")
_PARAMS = ("config", "strategy", "silence_ms", "threshold", "prefix_padding_ms", "flush_interval_ms",
           "max_buffer_bytes", "commit_silence_ms", "min_flush_gap_ms")


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def satisfies(record: Mapping[str, Any], constraint: Mapping[str, Any] | None) -> bool:
    """True when ``record`` meets every condition: ``{metric: (op, value)}`` with op one of
    ``< <= > >= == !=``, or ``{metric: value}`` meaning ``<=``.  A missing or NaN metric
    fails its condition.  Raises ValueError for an unknown operator."""
    for key, cond in (constraint or {}).items():
        op, value = cond if isinstance(cond, (tuple, list)) else ("<=", cond)
        if op not in _OPS:
            raise ValueError(f"unknown operator {op!r} (one of {' '.join(_OPS)})")
        got = record.get(key)
        if got is None or _isnan(got):
            return False
        if not _OPS[op](got, value):
            return False
    return True


def aggregate(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Pool the records of one configuration over several recordings (see module doc)."""
    if not records:
        raise ValueError("aggregate needs at least one record")
    first = records[0]
    out: dict[str, Any] = {k: first.get(k) for k in _PARAMS}
    out["recording"] = "+".join(str(r.get("recording")) for r in records)
    out["recordings"] = len(records)
    for k in _SUMMED:
        vals = [r.get(k) for r in records if r.get(k) is not None and not _isnan(r.get(k))]
        out[k] = sum(vals) if vals else math.nan
    out["wer"] = out["wer_errors"] / out["ref_words"] if out.get("ref_words") else math.nan
    out["wer_raw"] = (out["wer_raw_errors"] / out["ref_words_raw"] if out.get("ref_words_raw")
                      else math.nan)
    regional = [r for r in records if not _isnan(r.get("ref_segments", math.nan))]
    hits = sum(r.get("boundary_hits", 0) for r in regional)
    det = sum(r.get("segments", 0) for r in regional)
    ref = sum(r.get("ref_segments", 0) for r in regional)
    out["boundary_precision"] = hits / (2 * det) if det else math.nan
    out["boundary_recall"] = hits / (2 * ref) if ref else math.nan
    p, r = out["boundary_precision"], out["boundary_recall"]
    out["boundary_f1"] = math.nan if _isnan(p) or _isnan(r) else (2 * p * r / (p + r) if p + r else 0.0)
    lat = [v for rec in records for v in rec.get("latencies_ms", [])]
    out["latencies_ms"] = lat
    out["latency_p50_ms"] = percentile(lat, 50)
    out["latency_p95_ms"] = percentile(lat, 95)
    out["latency_mean_ms"] = float(np.mean(lat)) if lat else math.nan
    out["latency_max_ms"] = float(max(lat)) if lat else math.nan
    delays = [v for rec in records for v in rec.get("seg_delays_ms", [])]
    out["seg_delays_ms"] = delays
    out["seg_delay_p50_ms"] = percentile(delays, 50)
    out["seg_delay_p95_ms"] = percentile(delays, 95)
    out["ok"] = all(bool(r.get("ok")) for r in records)
    out["cached"] = all(bool(r.get("cached")) for r in records)
    out["speed"] = out["audio_s"] / out["wall_s"] if out.get("wall_s") else math.nan
    if all(r.get("per_utterance") for r in records):  # pooled utterances (confidence intervals)
        out["per_utterance"] = {k: [v for r in records for v in r["per_utterance"].get(k, [])]
                                for k in records[0]["per_utterance"]}
    return out


class Results:
    """Metric records of a sweep, with the raw runs and recordings behind them."""

    def __init__(self, records: Iterable[dict[str, Any]], runs: Sequence[Any] = (),
                 recordings: Mapping[str, Any] | None = None, configs: Sequence[Any] = (),
                 info: Mapping[str, Any] | None = None) -> None:
        self.records = list(records)
        self.runs = list(runs)
        self.recordings = dict(recordings or {})
        self.configs = list(configs)
        self.info = dict(info or {})

    # -- access ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.records[i]

    def column(self, name: str) -> list[Any]:
        """One metric or parameter of every record, in order."""
        return [r.get(name) for r in self.records]

    def where(self, **equal: Any) -> "Results":
        """The records whose fields equal the given values (runs filtered alike)."""
        keep = [i for i, r in enumerate(self.records) if all(r.get(k) == v for k, v in equal.items())]
        runs = [self.runs[i] for i in keep] if len(self.runs) == len(self.records) else self.runs
        return Results([self.records[i] for i in keep], runs, self.recordings, self.configs, self.info)

    def run_for(self, config: str, recording: str) -> Any:
        """The raw RunRecord of one (config name, recording name)."""
        for rec, run in zip(self.records, self.runs):
            if rec.get("config") == config and rec.get("recording") == recording:
                return run
        raise KeyError(f"no run of {config!r} on {recording!r}")

    @property
    def recording_names(self) -> list[str]:
        return list(dict.fromkeys(r["recording"] for r in self.records))

    @property
    def config_names(self) -> list[str]:
        return list(dict.fromkeys(r["config"] for r in self.records))

    def by_config(self) -> list[dict[str, Any]]:
        """One pooled record per configuration (see :func:`aggregate`), sweep order."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in self.records:
            groups.setdefault(r["config"], []).append(r)
        return [aggregate(g) for g in groups.values()]

    # -- tables ---------------------------------------------------------------------------

    def table(self, columns: Sequence[str] | None = COLUMNS, pooled: bool = False) -> list[dict[str, Any]]:
        """Records restricted to ``columns`` (None = every field)."""
        rows = self.by_config() if pooled else self.records
        if columns is None:
            return [dict(r) for r in rows]
        return [{c: r.get(c) for c in columns} for r in rows]

    def to_frame(self, columns: Sequence[str] | None = None, pooled: bool = False):
        """A pandas DataFrame of :meth:`table` (ImportError naming the extra when pandas
        is missing)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_frame needs pandas: pip install 'spear_lab[pandas]'") from None
        return pd.DataFrame(self.table(columns, pooled))

    def ci(self, metric: str, *, pooled: bool | None = None, level: float = 0.95,
           n_boot: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
        """Bootstrap confidence interval of ``metric`` over utterances, one per
        configuration (``pooled``, default when there are several recordings) or per
        (configuration, recording): ``config``, [``recording``], ``value``, ``low``,
        ``high``, ``n``, ``level``.  Seeded: the same call gives the same interval.
        See :mod:`.intervals` (ValueError for metrics without utterance-level values)."""
        from .intervals import ci_table

        if pooled is None:
            pooled = len(self.recording_names) > 1
        return ci_table(self.records, metric, pooled=pooled, level=level, n_boot=n_boot, seed=seed)

    def compare(self, a: str, b: str, metric: str, **kwargs: Any) -> dict[str, Any]:
        """Paired comparison of configurations ``a`` and ``b``: see :func:`.intervals.compare`."""
        from .intervals import compare

        return compare(self.records, a, b, metric, **kwargs)

    def comparable(self) -> list[dict[str, Any]]:
        """The records without :data:`RUN_COLUMNS`: what must be equal wherever a
        deterministic sweep ran."""
        return [{k: v for k, v in r.items() if k not in RUN_COLUMNS} for r in self.records]

    def best(self, minimise: str | None = None, *, maximise: str | None = None,
             constraint: Mapping[str, Any] | None = None, pooled: bool | None = None,
             then: Sequence[str] = ("wer", "latency_p95_ms")) -> dict[str, Any] | None:
        """See :func:`best`."""
        return best(self, minimise, maximise=maximise, constraint=constraint, pooled=pooled, then=then)

    def __repr__(self) -> str:
        return (f"<Results {len(self.records)} records: {len(self.config_names)} configs x "
                f"{len(self.recording_names)} recordings>")

    def _repr_html_(self) -> str:
        rows = self.table()
        head = "".join(f"<th>{c}</th>" for c in COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in COLUMNS) + "</tr>"
                       for r in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3g}"
    return "" if v is None else str(v)


def best(results: "Results | Sequence[Mapping[str, Any]]", minimise: str | None = None, *,
         maximise: str | None = None, constraint: Mapping[str, Any] | None = None,
         pooled: bool | None = None,
         then: Sequence[str] = ("wer", "latency_p95_ms")) -> dict[str, Any] | None:
    """The record that minimises ``minimise`` (or maximises ``maximise``) among those
    meeting ``constraint`` (see :func:`satisfies`); ties are broken by the ``then``
    metrics (minimised).  With several recordings the records are pooled per configuration
    first (``pooled=None`` means "when there is more than one recording").  Records whose
    objective is NaN never win.  Returns None when no record qualifies.

    The returned record also says whether the win is beyond noise: ``runner_up`` (the next
    qualifying configuration), and, when the objective has utterance-level values (see
    :mod:`.intervals`), ``beats_runner_up`` (the paired 95% bootstrap interval of the
    difference excludes 0) with ``difference`` and ``difference_ci``; otherwise
    ``beats_runner_up`` is None.
    """
    if (minimise is None) == (maximise is None):
        raise ValueError("give exactly one of minimise= and maximise=")
    if isinstance(results, Results):
        if pooled is None:
            pooled = len(results.recording_names) > 1
        rows: Sequence[Mapping[str, Any]] = results.by_config() if pooled else results.records
    else:
        rows = list(results)
    key = minimise or maximise
    sign = 1.0 if minimise else -1.0
    ok = [r for r in rows if satisfies(r, constraint) and r.get(key) is not None and not _isnan(r.get(key))]
    if not ok:
        return None

    def sort_key(r: Mapping[str, Any]) -> tuple:
        extra = []
        for t in then:
            v = r.get(t)
            extra.append(math.inf if v is None or _isnan(v) else v)
        return (sign * r[key], *extra)

    ranked = sorted(ok, key=sort_key)
    win = dict(ranked[0])
    win["runner_up"] = ranked[1].get("config") if len(ranked) > 1 else None
    win["beats_runner_up"] = None
    first, second = ranked[0], ranked[1] if len(ranked) > 1 else None
    if (second is not None and first.get("per_utterance") and second.get("per_utterance")
            and first.get("recording") == second.get("recording")   # the same utterances
            and first.get("config") != second.get("config")):
        from .intervals import STATISTICS, compare

        if key in STATISTICS:
            cmp = compare([first, second], first["config"], second["config"], key)
            win["beats_runner_up"] = cmp["significant"] and (cmp["diff"] < 0 if minimise else cmp["diff"] > 0)
            win["difference"] = cmp["diff"]
            win["difference_ci"] = (cmp["low"], cmp["high"])
    return win
