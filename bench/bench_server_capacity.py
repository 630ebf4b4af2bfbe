"""How many real-time streams the server sustains without a growing lag.

For N = 1, 2, 4, ... concurrent clients, each streams the twelve-sentence track
(~39 s) in 100 ms chunks on a real-time schedule to a
server in a child process; stream i starts 0.6 i s after the first (independent
speakers; identical tracks starting together would end every sentence at the same
moment, the worst case for a worker serving several lanes). Per level it reports
completed sentences, the latency
from the end of speech to ``completed`` (p50/p95) and the lag growth. A sentence's
excess latency is its latency at level N minus its latency when streamed alone
(level 1, measured first); the lag growth is the mean excess of the last four
sentences minus that of the first four (a server falling behind real time shows a
growing excess). N is sustained when every sentence completes, the lag grows by
less than 200 ms and p95 stays under silence + 1 s. It also reports the server's
peak RSS (process tree) per level (whisper goal: <= 400 MB at 4 streams). Both engines
are measured, one after the other.

    PYTHONPATH=. python bench/bench_server_capacity.py [--levels 1,2,4,6,8]
                                                      [--engines whisper,pocketsphinx]
"""

from __future__ import annotations

import argparse
import asyncio

import numpy as np
import psutil

from spear_lab.explore.metrics import corpus_wer

from bench_server_common import (bench_track, machine_load, pct, server_process, stream_realtime,
                                 utterances)


STAGGER_S = 0.6


def tree_rss_mb(proc: psutil.Process) -> float:
    """Resident memory of a process and its children (MiB)."""
    total = 0
    for p in [proc] + proc.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def measure(engine: str, args: argparse.Namespace, track) -> int:
    """One engine's capacity table; returns the sustained stream count."""
    n_sent = len(track.segments)
    print(f"== engine {engine}")
    print(f"{'streams':>7} {'completed':>11} {'p50 ms':>8} {'p95 ms':>8} {'lag growth':>11} "
          f"{'WER':>6} {'server CPU':>11} {'peak RSS':>9}  sustained")
    best = 0
    baseline = None
    extra = ["--engine", engine] + (["--fast"] if args.fast and engine == "pocketsphinx" else [])
    with server_process(args.workers, extra) as (url, proc):
        server = psutil.Process(proc.pid)
        for n in (int(x) for x in args.levels.split(",")):
            procs = [server] + server.children(recursive=True)
            for p in procs:
                p.cpu_percent(None)
            peak = [tree_rss_mb(server)]

            async def level():
                async def sample():
                    while True:
                        peak[0] = max(peak[0], tree_rss_mb(server))
                        await asyncio.sleep(0.5)
                sampler = asyncio.create_task(sample())
                try:
                    return await asyncio.gather(*(stream_realtime(url, track, args.silence_ms,
                                                                  STAGGER_S * i) for i in range(n)))
                finally:
                    sampler.cancel()
            runs = asyncio.run(level())
            cpu = sum(p.cpu_percent(None) for p in procs if p.is_running())
            per = [utterances(r, track) for r in runs]
            rows = [u for p in per for u in p]
            totals = [r["total"] for r in rows]
            by_sentence = {}
            for p in per:
                for u in p:
                    by_sentence.setdefault(u["text"], []).append(u["total"])
            mean = {t: float(np.mean(v)) for t, v in by_sentence.items()}
            if baseline is None:
                baseline = mean
            order = [t for _, _, t in track.segments if t in mean and t in baseline]
            excess = [mean[t] - baseline[t] for t in order]
            growth = float(np.mean(excess[-4:]) - np.mean(excess[:4])) if len(excess) >= 8 \
                else float("nan")
            w = corpus_wer([r["text"] for r in rows], [r["transcript"] for r in rows])
            ok = (len(rows) == n * n_sent and growth < 200
                  and pct(totals, 95) < args.silence_ms + 1000)
            best = n if ok else best
            print(f"{n:>7} {len(rows):>5}/{n * n_sent:<5} {pct(totals, 50):8.0f} {pct(totals, 95):8.0f} "
                  f"{growth:9.0f}ms {w['wer']:6.3f} {cpu:10.0f}% {peak[0]:7.0f}MB  "
                  f"{'yes' if ok else 'no'}")
            if not ok:
                break
    print(f"{engine}: sustained real-time streams: {best} (goal >= 4); {machine_load()} after")
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="1,2,4,6,8", help="must start with 1 (the baseline)")
    ap.add_argument("--silence-ms", type=int, default=500)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--engines", default="whisper,pocketsphinx")
    ap.add_argument("--fast", action="store_true", help="pocketsphinx with --fast (no fwdflat pass)")
    args = ap.parse_args(argv)
    track = bench_track()
    print(f"track {track.duration_s:.1f} s, {len(track.segments)} sentences; silence "
          f"{args.silence_ms} ms; {psutil.cpu_count()} CPUs; {machine_load()} before the run")
    for engine in args.engines.split(","):
        measure(engine, args, track)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
