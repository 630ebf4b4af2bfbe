"""Wall time of a segmentation sweep against the audio it replays.

Goal (issue "Segmentation explorer"): 8 configurations over 60 s of speech in at most
60 s on a 2-core machine, through the real path (file microphone → realtime_asr guest →
rtasr fd → WebSocket transport → embedded local server), replay not paced, no cache.

Measured in the same run:

- baseline: one configuration alone (concurrency 1; not one of the grid's, so it does not
  pre-fill the recognition cache): its wall time and speed (audio seconds per wall second);
- the sweep: 8 configurations (silence 200/400/700/1000 ms × threshold 0.4/0.6) at
  ``--concurrency``;

- the same sweep on a Dask ``LocalCluster(n_workers=2, threads_per_worker=1,
  processes=True)`` (``--cluster-workers``; 0 skips it), each worker replaying
  ``--concurrency / workers`` runs at once, after a warm-up of every worker;

and printed as ratios: sweep speed (audio replayed / wall), sweep wall against the goal,
sweep wall against 8 × the baseline (what running them one after the other would cost),
cluster wall against local wall, and the recognition-cache hit rate of each sweep (its
own fresh cache directory: configurations that produce byte-identical segments are
recognised once).  The one-off latency calibration (a short real-time replay, cached in
normal use) is timed apart and not counted; no run is cached.

    PYTHONPATH=. python bench/bench_sweep.py [--seconds 60] [--concurrency 4] [--frame-ms 20]
                                             [--cluster-workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from spear_lab import explore  # noqa: E402
from spear_lab.testaudio import SENTENCES  # noqa: E402

GOAL_S = 60.0


def cpu_seconds() -> float:
    """CPU time of this process and its live children (the recogniser workers), in s
    (children read from /proc; 0 for them elsewhere)."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():  # ppid
                total += (int(fields[11]) + int(fields[12])) / tick
    except FileNotFoundError:
        pass
    return total


def load() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def corpus(seconds: float) -> explore.Recording:
    """Sentences with 300/600/900 ms pauses until about ``seconds`` of audio."""
    sents, pauses, total = [], [], 0.7
    i = 0
    while total < seconds:
        sents.append(SENTENCES[i % len(SENTENCES)])
        total += 2.1 + 0.6
        pauses.append((300, 600, 900)[i % 3])
        i += 1
    return explore.generate(sents, pauses_ms=pauses[:-1], name=f"speech{seconds:g}s")


def cluster_sweep(rec, configs, cal, args, rec_dir):
    """The same sweep on a LocalCluster: (results, wall s, warm-up s, load text)."""
    from distributed import Client, LocalCluster

    from spear_lab.explore.distributed import RemoteReplayer

    per = max(1, args.concurrency // args.cluster_workers)
    with LocalCluster(n_workers=args.cluster_workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as lc, Client(lc) as client:
        server_workers = args.server_workers or max(1, (os.cpu_count() or 1) // args.cluster_workers)
        rp = RemoteReplayer(client, backend=args.backend, concurrency=per, frame_ms=args.frame_ms,
                            recognition_cache=rec_dir, server_workers=server_workers)
        t0 = time.perf_counter()
        rp.warm_up()
        warm_s = time.perf_counter() - t0
        before = load()
        t0 = time.perf_counter()
        res = explore.sweep(rec, configs, cache=False, progress=False, replayer=rp, backend=args.backend,
                            concurrency=per, calibrate=cal)
        wall = time.perf_counter() - t0
        rp.close()
    return res, wall, warm_s, f"machine {before} before, {load()} after"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the recording (s)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--frame-ms", type=int, default=20)
    ap.add_argument("--backend", default="local")
    ap.add_argument("--cluster-workers", type=int, default=2, help="0: no cluster run")
    ap.add_argument("--server-workers", type=int, default=None,
                    help="recognition processes per cluster worker's server (default: cpus / workers)")
    args = ap.parse_args()

    rec = corpus(args.seconds)
    audio_s = rec.duration_ms / 1000
    configs = explore.grid(silence_ms=[200, 400, 700, 1000], threshold=[0.4, 0.6])
    print(f"recording: {audio_s:.1f} s, {len(rec.utterances)} utterances; "
          f"{len(configs)} configurations; concurrency {args.concurrency}; {os.cpu_count()} cpus")
    tmp = tempfile.mkdtemp(prefix="bench-sweep-")
    os.environ["SPEAR_LAB_RECOGNITION_CACHE"] = os.path.join(tmp, "rec-local")
    with explore.Replayer(backend=args.backend, concurrency=1, frame_ms=args.frame_ms) as rp:
        cache = explore.RunCache(tmp, enabled=False)
        # warm-up: starts the embedded server and its recogniser processes
        explore.sweep(explore.generate(SENTENCES[:1], name="warmup"), configs[0], cache=cache,
                      progress=False, replayer=rp, backend=args.backend, calibrate=False)
        # the latency calibration: a one-off real-time replay (cached in normal use)
        t0 = time.perf_counter()
        cal = explore.calibrate_processing(backend=args.backend, cache=cache, replayer=rp)
        cal_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        # a configuration outside the grid: its segments must not pre-fill the recognition cache
        base = explore.sweep(rec, explore.server_vad(550, 0.5), cache=cache, progress=False, replayer=rp,
                             backend=args.backend, calibrate=cal)
        base_s = time.perf_counter() - t0
        rp.concurrency = args.concurrency
        load_before = load()
        c0, t0 = cpu_seconds(), time.perf_counter()
        res = explore.sweep(rec, configs, cache=cache, progress=False, replayer=rp,
                            backend=args.backend, concurrency=args.concurrency, calibrate=cal)
        sweep_s = time.perf_counter() - t0
        cpu_s = cpu_seconds() - c0
    cluster = None
    if args.cluster_workers > 0:
        cluster = cluster_sweep(rec, configs, cal, args, os.path.join(tmp, "rec-cluster"))
    bad = [r for r in res.records + base.records if not r["ok"]]
    total_audio = audio_s * len(configs)
    print(f"latency calibration (once, cached): {cal_s:6.2f} s wall, processing p50 "
          f"{cal['processing_ms'] or float('nan'):.0f} ms")
    print(f"baseline (1 config, concurrency 1): {base_s:6.2f} s wall, "
          f"speed {audio_s / base_s:5.2f}x real time, WER {base.records[0]['wer']:.3f}")
    print(f"sweep ({len(configs)} configs):             {sweep_s:6.2f} s wall, "
          f"{total_audio:.0f} s of audio replayed")
    print(f"ratio audio/wall (speed):           {total_audio / sweep_s:6.2f}x real time")
    print(f"ratio wall/goal ({GOAL_S:.0f} s):            {sweep_s / GOAL_S:6.2f}  "
          f"({'meets' if sweep_s <= GOAL_S else 'misses'} the goal)")
    print(f"ratio wall/(8 x baseline):          {sweep_s / (len(configs) * base_s):6.2f}  "
          f"(concurrency gain {len(configs) * base_s / sweep_s:.2f}x)")
    cores = os.cpu_count() or 1
    print(f"ratio cpu/(wall x {cores} cores):       {cpu_s / (sweep_s * cores):6.2f}  "
          f"({cpu_s:.0f} cpu-s of this process and its recogniser workers; machine {load_before} "
          f"before, {load()} after: other work on the machine slows the sweep)")
    rc = res.info["recognition_cache"]
    print(f"recognition cache (local sweep):    hit rate {rc['hit_rate']:.2f} "
          f"({rc['hits']} of {rc['hits'] + rc['misses']} segments recognised from the cache)")
    if cluster is not None:
        cres, cwall, warm_s, load_c = cluster
        crc = cres.info["recognition_cache"]
        print(f"cluster sweep (LocalCluster({args.cluster_workers}), {args.concurrency // args.cluster_workers or 1} "
              f"runs at once per worker, {args.server_workers or max(1, (os.cpu_count() or 1) // args.cluster_workers)} "
              f"recognition process(es) per worker's server): {cwall:6.2f} s wall ({warm_s:.1f} s warm-up not counted), "
              f"{total_audio / cwall:.2f} audio-s per wall-s; workers {len(cres.info['workers'])}; "
              f"{load_c}")
        print(f"ratio cluster wall/local wall:      {cwall / sweep_s:6.2f}  "
              f"({'no slower' if cwall <= sweep_s else 'slower'} than local)")
        print(f"recognition cache (cluster sweep):  hit rate {crc['hit_rate']:.2f} "
              f"({crc['hits']} of {crc['hits'] + crc['misses']})")
        same = [a["segments"] == b["segments"] and a["wer"] == b["wer"] for a, b in zip(res, cres)]
        print(f"cluster rows with the local segments and WER: {sum(same)}/{len(same)}")
        bad += [r for r in cres.records if not r["ok"]]
    for r in res.records:
        print(f"  {r['config']:<22} segments {r['segments']:3d}/{r['ref_segments']:<3d} "
              f"WER {r['wer']:.3f} clipped {r['clipped_words']:3d} p95 {r['latency_p95_ms']:7.0f} ms "
              f"wall {r['wall_s']:5.1f} s{'' if r['ok'] else '  FAILED: ' + str(r['error'])}")
    if bad:
        print(f"{len(bad)} run(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
