"""Segmentation explorer: replay recordings through many segmentation settings, compare.

The researcher's loop, in four calls::

    from spear_lab import explore

    corpus = explore.noise_levels([None, 20, 10])                  # speech with ground truth
    configs = explore.grid(silence_ms=[200, 500, 900], threshold=[0.3, 0.6])
    results = explore.sweep(corpus, configs, concurrency=2)       # the real path, cached
    explore.best(results, minimise="clipped_words", constraint={"latency_p95_ms": ("<=", 1500)})
    explore.plot_tradeoff(results, bound=1500)

Modules: :mod:`.corpus` (recordings, the espeak-ng generator, loading WAV + text),
:mod:`.configs` (segmentation settings, grids), :mod:`.replay` (running guests through
file microphone → guest → rtasr → WebSocket → server, recording events), :mod:`.events`
(events → segments), :mod:`.metrics` (WER, boundaries, clipped words, latency — the
definitions are in its docstring), :mod:`.sweep`, :mod:`.results`, :mod:`.plots`,
:mod:`.cache`, :mod:`.progress`.
"""

from .cache import RunCache
from .configs import SegConfig, client_commit, grid, manual, server_vad
from .corpus import (SENTENCES, Recording, Utterance, cache_dir, generate, load_recording,
                     noise_levels)
from .events import Segment, segments_from_events
from .metrics import score
from .plots import plot_lanes, plot_metric, plot_tradeoff
from .replay import Replayer, RunRecord
from .results import Results, aggregate, best, satisfies
from .sweep import calibrate_processing, evaluate, sweep

__all__ = [
    "SENTENCES", "Recording", "Utterance", "cache_dir", "generate", "load_recording", "noise_levels",
    "SegConfig", "server_vad", "client_commit", "manual", "grid",
    "Segment", "segments_from_events", "score", "evaluate",
    "Replayer", "RunRecord", "RunCache", "sweep", "calibrate_processing",
    "Results", "aggregate", "best", "satisfies",
    "plot_metric", "plot_lanes", "plot_tradeoff",
]
