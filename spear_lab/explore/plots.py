"""Pictures of a sweep (matplotlib): metric against parameter, segment lanes, trade-off.

- :func:`plot_metric` — one metric against one parameter, a line per value of another
  parameter, a panel per recording;
- :func:`plot_lanes` — the waveform with the reference speech regions, and under it one
  lane per configuration showing the audio each segment covered (light) and its speech
  estimate (dark), with the completed transcript's arrival marked;
- :func:`plot_tradeoff` — every configuration as a point (e.g. p95 latency vs clipped
  words), the bound drawn, the configurations breaking it greyed, the best one ringed.

Every function returns the matplotlib Figure.  Points of metrics with utterance-level
values (:data:`~.intervals.STATISTICS`) carry 95% bootstrap error bars
(:mod:`.intervals`; ``errorbars=False`` leaves them out).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .results import Results, best, satisfies

__all__ = ["plot_metric", "plot_lanes", "plot_tradeoff"]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _finite(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _interval(row: Mapping[str, Any], metric: str) -> tuple[float, float] | None:
    """The 95% bootstrap interval of ``metric`` for one (possibly pooled) row, or None."""
    from .intervals import STATISTICS, _arrays, bootstrap_ci

    if metric not in STATISTICS or not row.get("per_utterance"):
        return None
    ci = bootstrap_ci(_arrays([row]), metric)
    return (ci["low"], ci["high"]) if _finite(ci["low"]) and _finite(ci["high"]) else None


def plot_metric(results: Results, metric: str, x: str = "silence_ms", hue: str | None = "threshold",
                *, recordings: Sequence[str] | None = None, pooled: bool = False,
                figsize: tuple[float, float] | None = None, errorbars: bool = True):
    """``metric`` against parameter ``x``, one line per value of ``hue``, one panel per
    recording (or one pooled panel with ``pooled=True``)."""
    plt = _plt()
    if pooled:
        panels = [("all recordings", results.by_config())]
    else:
        names = list(recordings or results.recording_names)
        panels = [(n, [r for r in results.records if r["recording"] == n]) for n in names]
    fig, axes = plt.subplots(1, len(panels), figsize=figsize or (4.2 * len(panels), 3.2),
                             sharey=True, squeeze=False)
    for ax, (title, rows) in zip(axes[0], panels):
        groups: dict[Any, list[tuple[float, float, Any]]] = {}
        for r in rows:
            if _finite(r.get(x)) and _finite(r.get(metric)):
                iv = _interval(r, metric) if errorbars else None
                groups.setdefault(r.get(hue) if hue else None, []).append((r[x], r[metric], iv))
        for key in sorted(groups, key=lambda k: (k is None, k)):
            pts = sorted(groups[key], key=lambda p: (p[0], p[1]))
            (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                              label=f"{hue}={key}" if hue else None)
            bars = [(p[0], *p[2]) for p in pts if p[2] is not None]
            if bars:
                ax.vlines([b[0] for b in bars], [b[1] for b in bars], [b[2] for b in bars],
                          color=line.get_color(), alpha=0.6, lw=1.5)
        ax.set_title(title)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
        if hue and groups:
            ax.legend(fontsize="small")
    axes[0][0].set_ylabel(metric)
    fig.tight_layout()
    return fig


def plot_lanes(results: Results, recording: str | None = None, configs: Sequence[str] | None = None,
               *, figsize: tuple[float, float] | None = None, show_text: bool = False):
    """The recording's waveform and reference regions over one lane per configuration."""
    plt = _plt()
    name = recording or results.recording_names[0]
    rec = results.recordings.get(name)
    names = list(configs or [c for c in results.config_names])
    runs = [(c, results.run_for(c, name)) for c in names]
    fig, (ax_w, ax_l) = plt.subplots(
        2, 1, sharex=True, figsize=figsize or (11, 1.6 + 0.38 * len(runs)),
        gridspec_kw={"height_ratios": [1.2, max(0.4 * len(runs), 1.0)]})
    if rec is not None:
        pcm = rec.pcm.astype(np.float64) / 32768.0
        step = max(len(pcm) // 4000, 1)
        n = len(pcm) // step * step
        env = np.abs(pcm[:n]).reshape(-1, step).max(axis=1)
        t = np.arange(len(env)) * step / rec.rate
        ax_w.fill_between(t, -env, env, color="0.35", lw=0)
        for a, b in rec.regions_ms():
            ax_w.axvspan(a / 1000, b / 1000, color="tab:green", alpha=0.18, lw=0)
            ax_l.axvspan(a / 1000, b / 1000, color="tab:green", alpha=0.10, lw=0)
        ax_w.set_xlim(0, rec.duration_ms / 1000)
    ax_w.set_yticks([])
    ax_w.set_title(f"{name}: reference speech (green) and segments per configuration")
    for lane, (cname, run) in enumerate(runs):
        y = len(runs) - 1 - lane
        for seg in run.segments():
            ax_l.broken_barh([(seg.start_ms / 1000, (seg.end_ms - seg.start_ms) / 1000)], (y - 0.35, 0.7),
                             color="tab:blue", alpha=0.3)
            ax_l.broken_barh([(seg.speech_start_ms / 1000,
                               max(seg.speech_end_ms - seg.speech_start_ms, 0) / 1000)],
                             (y - 0.2, 0.4), color="tab:blue")
            if show_text and seg.transcript:
                ax_l.text(seg.start_ms / 1000, y + 0.38, seg.transcript[:30], fontsize=6, va="bottom")
    ax_l.set_yticks(range(len(runs)))
    ax_l.set_yticklabels([c for c, _ in reversed(runs)], fontsize="small")
    ax_l.set_ylim(-0.6, len(runs) - 0.4)
    ax_l.set_xlabel("audio time (s)")
    fig.tight_layout()
    return fig


def plot_tradeoff(results: Results, x: str = "latency_p95_ms", y: str = "clipped_words", *,
                  bound: float | None = None, constraint: Mapping[str, Any] | None = None,
                  minimise: str | None = None, colour: str = "threshold", size: str = "silence_ms",
                  pooled: bool | None = None, figsize: tuple[float, float] = (6.5, 4.2),
                  errorbars: bool = True):
    """Every configuration as a point of (``x``, ``y``); ``bound`` is an upper bound on
    ``x`` (drawn, and added to ``constraint``); points breaking the constraint are grey;
    the :func:`best` configuration (minimising ``minimise``, default ``y``) is ringed and
    named in the title."""
    plt = _plt()
    if pooled is None:
        pooled = len(results.recording_names) > 1
    rows = results.by_config() if pooled else results.records
    cons = dict(constraint or {})
    if bound is not None:
        cons[x] = ("<=", bound)
    winner = best(rows, minimise or y, constraint=cons)
    fig, ax = plt.subplots(figsize=figsize)
    pts = [r for r in rows if _finite(r.get(x)) and _finite(r.get(y))]
    cvals = [r.get(colour) for r in pts]
    numeric = [float(v) for v in cvals if _finite(v)]
    lo, hi = (min(numeric), max(numeric)) if numeric else (0.0, 1.0)
    cmap = plt.get_cmap("viridis")
    svals = [float(r[size]) for r in pts if _finite(r.get(size))]
    smax = max(svals) if svals else 1.0
    for r in pts:
        good = satisfies(r, cons)
        c = r.get(colour)
        col = cmap((float(c) - lo) / (hi - lo) if _finite(c) and hi > lo else 0.5) if good else "0.75"
        s = 30 + 170 * (float(r[size]) / smax if _finite(r.get(size)) and smax else 0.5)
        ax.scatter(r[x], r[y], s=s, color=col, edgecolor="k" if good else "0.6", lw=0.5, zorder=3)
        if errorbars:
            for iv, draw in ((_interval(r, x), ax.hlines), (_interval(r, y), ax.vlines)):
                if iv is not None:
                    draw(r[y] if draw is ax.hlines else r[x], iv[0], iv[1],
                         color=col if good else "0.75", alpha=0.7, lw=1, zorder=2)
        ax.annotate(r["config"].replace("vad ", ""), (r[x], r[y]), fontsize=6, xytext=(4, 3),
                    textcoords="offset points", color="k" if good else "0.55")
    if bound is not None:
        ax.axvline(bound, color="tab:red", ls="--", lw=1)
        ax.text(bound, ax.get_ylim()[1], f" {x} ≤ {bound:g}", color="tab:red", va="top", fontsize=8)
    if winner is not None and _finite(winner.get(x)) and _finite(winner.get(y)):
        ax.scatter(winner[x], winner[y], s=420, facecolor="none", edgecolor="tab:red", lw=2, zorder=4)
        ax.set_title(f"best: {winner['config']}  ({y}={_short(winner[y])}, {x}={_short(winner[x])})",
                     fontsize=9)
    else:
        ax.set_title("no configuration meets the constraint", fontsize=9)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    if numeric and hi > lo:
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(lo, hi))
        fig.colorbar(sm, ax=ax, label=colour)
    fig.tight_layout()
    return fig


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
