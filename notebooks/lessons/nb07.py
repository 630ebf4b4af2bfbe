"""Lesson 07_corpus_on_a_cluster: its cells."""

from __future__ import annotations

from .common import code, md

# ---------------------------------------------------------------------------------------
# 07 — a corpus on a cluster
# ---------------------------------------------------------------------------------------

CELLS = [
    md('''
# 7 · A corpus on a cluster

Notebook 6 swept segmentation settings over a few recordings on one machine. A real study
has hours of recordings and dozens of settings, and a difference between two settings is
only worth acting on when it is larger than the noise of the utterances it was measured
on. This notebook:

1. writes a small **folder corpus** (WAV + transcript + speech regions per recording, at
   16 kHz stereo — not the ABI's rate — plus one broken file) and loads it with
   `explore.load_corpus`;
2. starts a **Dask cluster** (`LocalCluster`: two worker processes here; the same code
   runs on Kubernetes, SLURM or cloud clusters through Dask's deployment projects);
3. runs the **sweep on the cluster**: each worker process keeps one host and one embedded
   server and replays the recordings it is sent (by content, not by path);
4. reports **bootstrap confidence intervals** over utterances and a **paired comparison**,
   and asks `explore.best` whether the winner is really better than the runner-up.
'''),
    code('''
import logging
import tempfile
import wave
from pathlib import Path

import numpy as np

from spear_lab import explore

logging.getLogger("spear_lab").setLevel(logging.ERROR)
logging.getLogger("distributed").setLevel(logging.ERROR)
workdir = Path(tempfile.mkdtemp(prefix="nb07-"))'''),
    md('''
## A corpus in a folder

Six recordings of three sentences each (espeak-ng, pauses of 300–900 ms), written the way
a researcher's data usually arrives: `name.wav` (here 16 kHz **stereo**), `name.txt` (one
line per utterance) and `name.regions.csv` (`start,end` in seconds). One more WAV is
truncated garbage: the loader must name it and keep going.
'''),
    code('''
corpus_dir = workdir / "corpus"
corpus_dir.mkdir()
sentences = list(explore.SENTENCES)
for k in range(6):
    rec = explore.generate([sentences[(k + j) % len(sentences)] for j in range(3)],
                           pauses_ms=[300 + 100 * k, 900 - 100 * k], lead_ms=400, tail_ms=1200,
                           name=f"talk{k}")
    pcm16k = rec.pcm[(np.arange(len(rec.pcm) * 2 // 3) * 3) // 2]          # 24 -> 16 kHz
    with wave.open(str(corpus_dir / f"talk{k}.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.repeat(pcm16k[:, None], 2, axis=1).astype("<i2").tobytes())
    (corpus_dir / f"talk{k}.txt").write_text("\\n".join(u.text for u in rec.utterances) + "\\n")
    (corpus_dir / f"talk{k}.regions.csv").write_text(
        "start,end\\n" + "".join(f"{a / 1000:.3f},{b / 1000:.3f}\\n" for a, b in rec.regions_ms()))
(corpus_dir / "damaged.wav").write_bytes(b"RIFF\\x10\\x00\\x00\\x00WAVEfmt ")
(corpus_dir / "damaged.txt").write_text("this file is broken")
sorted(p.name for p in corpus_dir.iterdir())[:8]'''),
    code('''
corpus = explore.load_corpus(corpus_dir)
print(corpus)
for path, why in corpus.problems:
    print("rejected:", Path(path).name, "-", why)
for rec in corpus[:2]:
    print(rec, rec.meta["source_rate"], "Hz source")'''),
    md('''
## A cluster

`LocalCluster(n_workers=2, threads_per_worker=1, processes=True)` starts two worker
processes on this machine. One thread per worker: each worker process owns one host (its
microphone policy follows the recording being replayed) and runs one batch of replays at a
time. The dashboard shows the tasks as they run — its link is printed when the dashboard
is available (it needs `bokeh`; where that is missing, as in CI, it is switched off).
'''),
    code('''
from distributed import Client, LocalCluster

try:
    import bokeh  # noqa: F401  (the dashboard needs it)
    dashboard = ":0"
except ImportError:
    dashboard = None
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=dashboard)
client = Client(cluster)
print("dashboard:", client.dashboard_link if dashboard else "disabled (bokeh is not installed)")
print("workers:", list(client.scheduler_info()["workers"]))'''),
    md('''
## The sweep, on the cluster

Three silences × two thresholds. `executor=client` turns each batch of replays of one
recording into a task; the recordings travel as content (pcm16 bytes and their sha256) and
each worker writes them into its own cache. The run cache stays on this side: results come
back and are stored here. The **deterministic mode** takes the processing part out of the
latencies (latency = segmentation delay, measured in audio time), so the numbers depend on
the inputs only — the same on one machine or on a hundred.

Recognition runs once per distinct segment: configurations that cut a recording at the
same places send byte-identical audio to the recogniser, which answers from a
content-addressed cache (`results.info["recognition_cache"]`).
'''),
    code('''
configs = explore.grid(silence_ms=[200, 500, 900], threshold=[0.4, 0.8])
results = explore.sweep(corpus, configs, executor=client, concurrency=2, deterministic=True,
                        cache=explore.RunCache(workdir / "runs"),
                        recognition_cache=str(workdir / "recognitions"))
print(results)
print("workers:", results.info["workers"])
print("recognition cache:", results.info["recognition_cache"])
print(f"{results.info['audio_s']:.0f} s of audio in {results.info['wall_s']:.1f} s")'''),
    md('''
## Intervals, not point estimates

Each row keeps what every reference utterance contributed to each metric. `results.ci`
resamples utterances with replacement (2000 times, seeded) and reports the 2.5th and
97.5th percentiles of the metric: pooled over the six recordings, one interval per
configuration. The plot carries the same intervals as error bars.
'''),
    code('''
for metric in ("wer", "clipped_words", "latency_p95_ms"):
    print(metric)
    for row in results.ci(metric):
        print(f"  {row['config']:<18} {row['value']:8.3f}  [{row['low']:8.3f}, {row['high']:8.3f}]  "
              f"n={row['n']}")'''),
    code('''
explore.plot_metric(results, "clipped_words", x="silence_ms", hue="threshold", pooled=True)'''),
    md('''
## Is the winner really better?

`explore.best` ranks the configurations and compares the winner with the runner-up on the
same utterances (a paired bootstrap: the utterances' shared difficulty cancels). When the
interval of the difference includes 0 the ranking is noise, and `beats_runner_up` says so.
`explore.compare` does the same for any two configurations.
'''),
    code('''
win = explore.best(results, minimise="clipped_words")
print(f"best: {win['config']}  runner-up: {win['runner_up']}  beats it beyond the interval: "
      f"{win['beats_runner_up']}  (difference {win.get('difference')}, 95% CI {win.get('difference_ci')})")
short, long_ = results.config_names[0], results.config_names[-1]
cmp = explore.compare(results, short, long_, "clipped_words")
print(f"{short} vs {long_}: {cmp['a']:.0f} vs {cmp['b']:.0f} clipped words, difference "
      f"{cmp['diff']:.0f} [{cmp['low']:.0f}, {cmp['high']:.0f}], significant: {cmp['significant']}")
lat = explore.compare(results, short, long_, "latency_p95_ms")
print(f"{short} vs {long_}: p95 latency {lat['a']:.0f} vs {lat['b']:.0f} ms, difference "
      f"{lat['diff']:.0f} [{lat['low']:.0f}, {lat['high']:.0f}] ms, better: {lat['better']}")'''),
    md('''
## The claims

Every recording of the folder loaded except the damaged one, which was named; the sweep
ran on both workers; no run failed; each interval contains its point estimate; the
winner's verdict agrees with the paired comparison; 200 ms of silence answers sooner than
900 ms beyond the noise of the utterances; and a rerun comes from the run cache with
identical rows.
'''),
    code('''
assert [r.name for r in corpus] == [f"talk{k}" for k in range(6)]
assert [Path(p).name for p, _ in corpus.problems] == ["damaged.wav"]
assert all(r.rate == 24000 for r in corpus)
assert len(results) == len(corpus) * len(configs) and all(r["ok"] for r in results), \\
    [r["error"] for r in results if not r["ok"]]
assert len(results.info["workers"]) == 2, results.info["workers"]
for metric in ("wer", "clipped_words"):
    for row in results.ci(metric):
        assert row["low"] <= row["value"] <= row["high"], row
check = explore.compare(results, win["config"], win["runner_up"], "clipped_words")
assert win["beats_runner_up"] == (check["significant"] and check["diff"] < 0)
assert lat["significant"] and lat["better"] == short and lat["high"] < 0
again = explore.sweep(corpus, configs, executor=client, concurrency=2, deterministic=True,
                      cache=explore.RunCache(workdir / "runs"))
assert again.info["cache_hits"] == len(results) and again.comparable() == results.comparable()
client.close()
cluster.close()
print("all claims hold")'''),
]
