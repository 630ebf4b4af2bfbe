"""Latency from the end of speech to ``transcription.completed`` (real-time stream).

One client streams twelve espeak-ng sentences (ends known from the generated
audio) in 100 ms chunks on a real-time schedule to a server in a child process.
For each sentence the time from the end of speech to ``completed`` is split into:

* vad_wait    - audio from the true end of speech to ``speech_stopped.audio_end_ms``
                (the configured silence plus the VAD's own offset);
* chunking    - waiting for the 100 ms chunk holding that moment to be sent;
* transport   - sending it, server decode/VAD, and ``speech_stopped`` coming back;
* recognition - from ``speech_stopped`` to ``completed`` (commit, decode tail, events).

Goals: p50 of the total <= silence_duration_ms + 500 ms with whisper, + 300 ms with
pocketsphinx. Both engines are measured, one after the other, from the same run.

    PYTHONPATH=. python bench/bench_server_latency.py [--silence-ms 500] [--runs 1]
                                                     [--engines whisper,pocketsphinx]
"""

from __future__ import annotations

import argparse
import asyncio

from spear_lab.explore.metrics import corpus_wer

from bench_server_common import (bench_track, machine_load, pct, server_process, stream_realtime,
                                 utterances)

PARTS = ["vad_wait", "chunking", "transport", "recognition", "total"]
GOAL_MS = {"whisper": 500, "pocketsphinx": 300}
"""p50 goal of the total, above silence_duration_ms, per engine."""


def measure(engine: str, args: argparse.Namespace, track) -> None:
    """One engine's latency table and WER."""
    rows = []
    extra = ["--engine", engine] + (["--fast"] if args.fast and engine == "pocketsphinx" else [])
    with server_process(args.workers, extra) as (url, _proc):
        for _ in range(args.runs):
            run = asyncio.run(stream_realtime(url, track, args.silence_ms))
            rows += utterances(run, track)
    print(f"== engine {engine}: {len(rows)} of {len(track.segments) * args.runs} sentences "
          f"completed; silence_duration_ms={args.silence_ms}; {machine_load()}")
    print(f"{'ms':<12}" + "".join(f"{p:>13}" for p in PARTS))
    for q in (50, 95):
        print(f"{'p' + str(q):<12}" + "".join(f"{pct([r[p] for r in rows], q):13.0f}" for p in PARTS))
    w = corpus_wer([r["text"] for r in rows], [r["transcript"] for r in rows])
    p50 = pct([r["total"] for r in rows], 50)
    goal = args.silence_ms + GOAL_MS[engine]
    print(f"WER {w['wer']:.3f} (raw {w['wer_raw']:.3f}); p50 total {p50:.0f} ms vs goal "
          f"<= {goal} ms (silence + {GOAL_MS[engine]}): {'met' if p50 <= goal else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--silence-ms", type=int, default=500)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--engines", default="whisper,pocketsphinx")
    ap.add_argument("--fast", action="store_true", help="pocketsphinx with --fast (no fwdflat pass)")
    args = ap.parse_args(argv)
    track = bench_track()
    for engine in args.engines.split(","):
        measure(engine, args, track)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
