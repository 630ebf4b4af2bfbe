"""Pictures of a sweep (matplotlib): metric against parameter, segment lanes, trade-off.

- :func:`plot_metric` — one metric against one parameter, a line per value of another
  parameter, a panel per recording;
- :func:`plot_lanes` — the waveform with the reference speech regions, and under it one
  lane per configuration showing the audio each segment covered (light) and its speech
  estimate (dark), with the completed transcript's arrival marked;
- :func:`plot_vad` — the VAD view (:mod:`spear_lab.views.vad`) of configurations side by
  side on one recording: waveform, speech probability per frame with each threshold,
  turns and words;
- :func:`plot_tradeoff` — every configuration as a point (e.g. p95 latency vs clipped
  words), the bound drawn, the configurations breaking it greyed, the best one ringed.

Every function returns a :class:`spear_lab.views.figure.Figure` (a matplotlib Figure that
shows itself in Jupyter without ``%matplotlib`` and saves with ``.save("x.png" | ".svg" |
".html")``); none is registered with pyplot, so nothing is shown twice.  Lines of one plot
differ in colour, marker and line style and are nudged apart sideways, so that equal
curves stay visible.  Points of metrics with utterance-level
values (:data:`~.intervals.STATISTICS`) carry 95% bootstrap error bars
(:mod:`.intervals`; ``errorbars=False`` leaves them out).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..views import style
from ..views.figure import Figure
from .results import Results, best, satisfies

__all__ = ["plot_lanes", "plot_metric", "plot_tradeoff", "plot_vad"]


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
    if pooled:
        panels = [("all recordings", results.by_config())]
    else:
        names = list(recordings or results.recording_names)
        panels = [(n, [r for r in results.records if r["recording"] == n]) for n in names]
    with style.context():
        fig = Figure(figsize=figsize or (5.2 * len(panels) + 1.0, 4.2), layout="constrained",
                     kind=f"{metric} against {x}")
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)
        xs_all = sorted({float(r[x]) for _, rows in panels for r in rows if _finite(r.get(x))})
        gap = min((b - a for a, b in itertools.pairwise(xs_all)), default=1.0) or 1.0
        for ax, (title, rows) in zip(axes[0], panels):
            groups: dict[Any, list[tuple[float, float, Any]]] = {}
            for r in rows:
                if _finite(r.get(x)) and _finite(r.get(metric)):
                    iv = _interval(r, metric) if errorbars else None
                    groups.setdefault(r.get(hue) if hue else None, []).append((r[x], r[metric], iv))
            keys = sorted(groups, key=lambda k: (k is None, k))
            for k, key in enumerate(keys):
                pts = sorted(groups[key], key=lambda p: (p[0], p[1]))
                # nudge the lines apart sideways (a tenth of the x spacing in all)
                dx = (k - (len(keys) - 1) / 2) * gap * 0.1 / max(len(keys) - 1, 1) if len(keys) > 1 else 0.0
                (line,) = ax.plot([p[0] + dx for p in pts], [p[1] for p in pts],
                                  color=style.CYCLE[k % len(style.CYCLE)],
                                  marker=style.MARKERS[k % len(style.MARKERS)],
                                  linestyle=style.LINESTYLES[k % len(style.LINESTYLES)],
                                  markersize=max(10 - 1.5 * k, 5), markerfacecolor="white" if k % 2 else None,
                                  markeredgewidth=1.8, zorder=3 + k,
                                  label=f"{hue}={key}" if hue else None)
                bars = [(p[0] + dx, *p[2]) for p in pts if p[2] is not None]
                if bars:
                    ax.vlines([b[0] for b in bars], [b[1] for b in bars], [b[2] for b in bars],
                              color=line.get_color(), alpha=0.6, lw=1.5)
            ax.set_title(title)
            ax.set_xlabel(x)
            ax.grid(alpha=0.35)
            ax.margins(x=0.08, y=0.12)
            if hue and groups:
                ax.legend(loc="best", framealpha=0.85)
        axes[0][0].set_ylabel(metric)
    return fig


def plot_lanes(results: Results, recording: str | None = None, configs: Sequence[str] | None = None,
               *, figsize: tuple[float, float] | None = None, show_text: bool = False):
    """The recording's waveform and reference regions over one lane per configuration."""
    name = recording or results.recording_names[0]
    rec = results.recordings.get(name)
    names = list(configs or [c for c in results.config_names])
    runs = [(c, results.run_for(c, name)) for c in names]
    with style.context():
        fig = Figure(figsize=figsize or (12, 2.2 + 0.5 * len(runs)), layout="constrained",
                     kind=f"segment lanes of {name}")
        ax_w, ax_l = fig.subplots(2, 1, sharex=True,
                                  height_ratios=[1.2, max(0.45 * len(runs), 1.0)])
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
        ax_w.tick_params(labelbottom=False)
        ax_w.set_title(f"{name}: reference speech (green) and segments per configuration", loc="left")
        for lane, (cname, run) in enumerate(runs):
            y = len(runs) - 1 - lane
            for seg in run.segments():
                ax_l.broken_barh([(seg.start_ms / 1000, (seg.end_ms - seg.start_ms) / 1000)],
                                 (y - 0.35, 0.7), color="tab:blue", alpha=0.3)
                ax_l.broken_barh([(seg.speech_start_ms / 1000,
                                   max(seg.speech_end_ms - seg.speech_start_ms, 0) / 1000)],
                                 (y - 0.2, 0.4), color="tab:blue")
                if show_text and seg.transcript:
                    ax_l.text(seg.start_ms / 1000, y + 0.38, seg.transcript[:30], fontsize=style.SMALL - 2,
                              va="bottom", clip_on=True)
        ax_l.set_yticks(range(len(runs)))
        ax_l.set_yticklabels([c for c, _ in reversed(runs)])
        ax_l.set_ylim(-0.6, len(runs) - 0.4)
        ax_l.set_xlabel("audio time (s)")
    return fig


def plot_tradeoff(results: Results, x: str = "latency_p95_ms", y: str = "clipped_words", *,
                  bound: float | None = None, constraint: Mapping[str, Any] | None = None,
                  minimise: str | None = None, colour: str = "threshold", size: str = "silence_ms",
                  pooled: bool | None = None, figsize: tuple[float, float] = (8.5, 5.6),
                  errorbars: bool = True):
    """Every configuration as a point of (``x``, ``y``); ``bound`` is an upper bound on
    ``x`` (drawn, and added to ``constraint``); points breaking the constraint are grey;
    the :func:`best` configuration (minimising ``minimise``, default ``y``) is ringed and
    named in the title.  Labels stay inside the figure: the axes get margins and a label
    in the right half of the plot is written to the left of its point."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if pooled is None:
        pooled = len(results.recording_names) > 1
    rows = results.by_config() if pooled else results.records
    cons = dict(constraint or {})
    if bound is not None:
        cons[x] = ("<=", bound)
    winner = best(rows, minimise or y, constraint=cons)
    pts = [r for r in rows if _finite(r.get(x)) and _finite(r.get(y))]
    cvals = [r.get(colour) for r in pts]
    numeric = [float(v) for v in cvals if _finite(v)]
    lo, hi = (min(numeric), max(numeric)) if numeric else (0.0, 1.0)
    cmap = matplotlib.colormaps["viridis"]
    svals = [float(r[size]) for r in pts if _finite(r.get(size))]
    smax = max(svals) if svals else 1.0
    xs = [float(r[x]) for r in pts] + ([float(bound)] if bound is not None else [])
    x_mid = (min(xs) + max(xs)) / 2 if xs else 0.0
    with style.context():
        fig = Figure(figsize=figsize, layout="constrained", kind=f"{y} against {x}")
        ax = fig.add_subplot()
        seen: dict[tuple[float, float], int] = {}
        for r in pts:
            good = satisfies(r, cons)
            c = r.get(colour)
            col = cmap((float(c) - lo) / (hi - lo) if _finite(c) and hi > lo else 0.5) if good else "0.75"
            s = 40 + 200 * (float(r[size]) / smax if _finite(r.get(size)) and smax else 0.5)
            at = (float(r[x]), float(r[y]))
            dup = seen[at] = seen.get(at, -1) + 1  # coincident points: drawn smaller, inside
            ax.scatter(r[x], r[y], s=s * 0.5 ** dup, color=col, edgecolor="k" if good else "0.6",
                       lw=0.6, zorder=3 + dup)
            if errorbars:
                ix, iy = _interval(r, x), _interval(r, y)
                if ix is not None:
                    ax.hlines(r[y], ix[0], ix[1], color=col if good else "0.75", alpha=0.7, lw=1, zorder=2)
                if iy is not None:
                    ax.vlines(r[x], iy[0], iy[1], color=col if good else "0.75", alpha=0.7, lw=1, zorder=2)
            left = float(r[x]) > x_mid
            ax.annotate(r["config"].replace("vad ", ""), (r[x], r[y]), fontsize=style.SMALL - 2,
                        xytext=(-7 if left else 7, 4 + 12 * dup), textcoords="offset points",
                        ha="right" if left else "left", color="k" if good else "0.5", zorder=5)
        ax.margins(x=0.12, y=0.15)
        if bound is not None:
            ax.axvline(bound, color="tab:red", ls="--", lw=1.5)
            ax.annotate(f"{x} ≤ {bound:g}", (bound, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(-4, -4), textcoords="offset points", ha="right", va="top",
                        color="tab:red", fontsize=style.SMALL)
        if winner is not None and _finite(winner.get(x)) and _finite(winner.get(y)):
            ax.scatter(winner[x], winner[y], s=480, facecolor="none", edgecolor="tab:red", lw=2.2, zorder=4)
            ax.set_title(f"best: {winner['config']}\n({y}={_short(winner[y])}, {x}={_short(winner[x])})",
                         fontsize=style.FONT)
        else:
            ax.set_title("no configuration meets the constraint", fontsize=style.FONT)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.35)
        if numeric and hi > lo:
            sm = ScalarMappable(cmap=cmap, norm=Normalize(lo, hi))
            fig.colorbar(sm, ax=ax, label=colour)
    return fig


def vad_run_data(run: Any, label: str) -> Any:
    """The :class:`~spear_lab.views.vad.VadData` of one sweep run (a RunRecord): its frame
    probabilities, its configuration's threshold, padding and silence, its segments as
    turns (committed at the end of the audio each covered) and their words."""
    from ..views.vad import Turn, VadData, _spread

    cfg = run.seg_config
    pad, sil = cfg.effective_vad()
    turns = []
    for seg in run.segments():
        a, b = seg.speech_start_ms / 1000, seg.speech_end_ms / 1000
        turns.append(Turn(seg.item_id or "", seg.start_ms / 1000, a, seg.end_ms / 1000, b,
                          seg.end_ms / 1000, None, seg.transcript or "", _spread(seg.transcript or "", a, b)))
    server = cfg.strategy == "server_vad"
    return VadData(label, np.array([ms / 1000 for ms, _ in run.vad]), run.vad_frame_ms / 1000,
                   np.array([p for _, p in run.vad]),
                   float(cfg.threshold) if server and cfg.threshold is not None else 0.5,
                   int(pad) if server else None, int(sil) if server else None, turns, None,
                   "argument" if server else "default")


def plot_vad(results: Results, recording: str | None = None, configs: Sequence[str] | None = None,
             *, width: float = 12.0):
    """The VAD view of ``configs`` (default: the first two) on ``recording`` (default: the
    first), one under the other over the recording's waveform.  ``fig.data`` holds each
    configuration's VadData."""
    from ..views.vad import vad_compare_figure

    name = recording or results.recording_names[0]
    names = list(configs or results.config_names[:2])
    if not names:
        raise ValueError("no configuration to draw")
    datas = [vad_run_data(results.run_for(c, name), c) for c in names]
    rec = results.recordings.get(name)
    return vad_compare_figure(datas, audio=rec, width=width, title=name)


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
