"""Segments side by side: where each guest's turns began and ended in the audio.

For segmentation studies: one row per instance with its transcript items as spans
(``audio_start_ms`` … ``audio_end_ms`` from ``input_audio_buffer.speech_started`` /
``speech_stopped``), over the waveform, with reference spans (e.g. the sentences of a
test recording) in a row of their own.  Reads the Trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import style
from .figure import Figure

__all__ = ["segment_spans", "segments_figure"]

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def segment_spans(trace: Any, instance: str) -> list[tuple[float, float, str]]:
    """``(start_s, end_s, text)`` in audio time of every item of ``instance`` whose speech
    start and end are known, in order."""
    out = []
    for item in trace.transcript(instance):
        if item.audio_start_ms is not None and item.audio_end_ms is not None:
            out.append((item.audio_start_ms / 1000.0, item.audio_end_ms / 1000.0, item.text))
    return out


def segments_figure(trace: Any, instances: Sequence[str], *, pcm: np.ndarray | None = None,
                    rate: int = 24000, reference: Sequence[tuple[float, float, str]] | None = None,
                    width: float = 11.0, title: str | None = None) -> Figure:
    """The waveform (when ``pcm`` is given), the ``reference`` spans and each instance's
    segments on one audio time axis (seconds).  ``fig.spans`` maps row label → spans."""
    rows: list[tuple[str, list[tuple[float, float, str]]]] = []
    if reference is not None:
        rows.append(("reference", [tuple(r) for r in reference]))  # type: ignore[misc]
    rows += [(name, segment_spans(trace, name)) for name in instances]
    n = len(rows)
    with style.context():
        fig = Figure(figsize=(width, 1.6 + 0.7 * n + (1.4 if pcm is not None else 0)),
                     layout="constrained", kind="segments")
        if pcm is not None:
            ax_w, ax = fig.subplots(2, 1, sharex=True, height_ratios=[1.4, 0.7 * max(n, 1)])
            _envelope(ax_w, np.asarray(pcm), rate)
            ax_w.set_ylabel("audio")
            ax_w.set_yticks([])
            ax_w.tick_params(labelbottom=False)
        else:
            ax = fig.add_subplot()
        for row, (label, spans) in enumerate(rows):
            y = n - 1 - row
            color = "#8f8f8f" if label == "reference" else style.CYCLE[(row - (reference is not None)) % len(style.CYCLE)]
            ax.broken_barh([(a, max(b - a, 0.01)) for a, b, _ in spans], (y - 0.36, 0.72),
                           facecolors=color, alpha=0.85, edgecolors="white", linewidth=1.5)
            for k, (a, b, _) in enumerate(spans, 1):
                ax.text((a + b) / 2, y, str(k), ha="center", va="center", fontsize=style.SMALL,
                        color="white", fontweight="bold")
        ax.set_yticks(range(n))
        ax.set_yticklabels([f"{label} ({len(spans)})" for label, spans in reversed(rows)])
        ax.set_ylim(-0.7, max(n, 1) - 0.3)
        ax.set_xlabel("audio time (s)")
        ax.grid(axis="x", alpha=0.35)
        fig.suptitle(title or "segments per setting")
    fig.spans = dict(rows)  # type: ignore[attr-defined]
    return fig


def _envelope(ax: Any, pcm: np.ndarray, rate: int, points: int = 4000) -> None:
    """The waveform as a filled min/max envelope (fast for long recordings)."""
    x = pcm.astype(np.float32) / (32768.0 if pcm.dtype.kind == "i" else 1.0)
    step = max(len(x) // points, 1)
    m = len(x) // step * step
    if m == 0:
        return
    blocks = x[:m].reshape(-1, step)
    t = (np.arange(blocks.shape[0]) * step + step / 2) / rate
    ax.fill_between(t, blocks.min(axis=1), blocks.max(axis=1), color="#555555", linewidth=0)
    ax.set_xlim(0, len(x) / rate)
