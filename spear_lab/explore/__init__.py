"""Segmentation explorer: replay recordings through many segmentation settings, compare.

The researcher's loop, in four calls::

    from spear_lab import explore

    corpus = explore.noise_levels([None, 20, 10])                  # speech with ground truth
    configs = explore.grid(silence_ms=[200, 500, 900], threshold=[0.3, 0.6])
    results = explore.sweep(corpus, configs, concurrency=2)       # the real path, cached
    explore.best(results, minimise="clipped_words", constraint={"latency_p95_ms": ("<=", 1500)})
    explore.plot_tradeoff(results, bound=1500)

Real human speech joined with known pauses and noise, exact regions kept::

    clips = explore.real_speech("librivox")                        # 5 LibriVox utterances
    noisy = explore.join_recordings(clips, pauses_ms=1000, snr_db=5, noise="babble")

Modules: :mod:`.corpus` (recordings, the espeak-ng generator, joining recorded
utterances, loading WAV + text), :mod:`.realspeech` (Debian pocketsphinx-testdata),
:mod:`.configs` (segmentation settings, grids), :mod:`.replay` (running guests through
file microphone → guest → rtasr → WebSocket → server, recording events), :mod:`.events`
(events → segments), :mod:`.metrics` (WER, boundaries, clipped words, latency — the
definitions are in its docstring), :mod:`.sweep`, :mod:`.results`, :mod:`.plots`,
:mod:`.cache`, :mod:`.progress`, :mod:`.distributed` (sweeps on a Dask cluster or any
executor: ``sweep(..., executor=client)``), :mod:`.folders` (``load_corpus(DIR or CSV)``),
:mod:`.intervals` (bootstrap intervals, ``compare``).
"""

from .cache import RunCache
from .configs import SegConfig, client_commit, grid, manual, server_vad
from .corpus import (SENTENCES, Recording, Utterance, cache_dir, generate, join_recordings,
                     load_recording, noise_levels)
from .events import Segment, segments_from_events
from .metrics import score
from .realspeech import SpeechDataMissing, real_speech
from .plots import plot_lanes, plot_metric, plot_tradeoff, plot_vad
from .replay import Replayer, RunRecord
from .results import Results, aggregate, best, satisfies
from .sweep import calibrate_processing, evaluate, sweep
from .folders import Corpus, load_corpus
from .intervals import bootstrap_ci, compare

__all__ = [
    "SENTENCES", "Recording", "Utterance", "cache_dir", "generate", "load_recording", "noise_levels",
    "real_speech", "SpeechDataMissing", "join_recordings",
    "SegConfig", "server_vad", "client_commit", "manual", "grid",
    "Segment", "segments_from_events", "score", "evaluate",
    "Replayer", "RunRecord", "RunCache", "sweep", "calibrate_processing",
    "Results", "aggregate", "best", "satisfies",
    "Corpus", "load_corpus", "bootstrap_ci", "compare",
    "plot_metric", "plot_lanes", "plot_tradeoff", "plot_vad",
]
