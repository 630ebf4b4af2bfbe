"""Lesson 06_segmentation_explorer: its cells."""

from __future__ import annotations

from .common import code, md

CELLS = [
    md('''
# 6 · Segmentation explorer

A realtime transcription client has to decide **where one utterance ends and the next
begins**. Cut too eagerly and words are clipped and sentences split; wait too long and
every transcript arrives late. The usual knobs are the server VAD's `silence_ms` (how much
silence ends a turn), `threshold` (how sure the VAD must be that a frame is speech) and
`prefix_padding_ms` (audio kept before the detected onset) — or client-side commit
policies instead.

This notebook replays one small corpus through a grid of settings and compares what comes
out. Every run takes **the real path**: a file microphone feeds the `realtime_asr` guest,
which writes into an rtasr fd; the WebSocket transport carries the audio to the embedded
local server (a VAD and the offline recogniser: Whisper tiny.en, or pocketsphinx where
Whisper is not installed), and the server's events come back the same way. The
host records every event with its arrival time. Replays run faster than real time (the
server segments by audio position, not by the clock), several at once, and are cached: run
the notebook again and nothing is recomputed.

What we check at the end:

1. a shorter `silence_ms` gives at least as many segments as a longer one;
2. a longer `silence_ms` delays the transcripts (by about the extra silence: checked on
   the segmentation delay, the part of the latency measured in audio time);
3. on clean speech with short silence, the segments match the sentences;
4. one call picks the setting that clips fewest words while keeping p95 latency under a bound;
5. a second sweep comes entirely from the cache.'''),
    code('''
import logging

from spear_lab import explore

logging.getLogger("spear_lab").setLevel(logging.ERROR)'''),
    md('''
## A corpus that knows its ground truth

Four sentences spoken by espeak-ng, separated by pauses of 250, 500 and 900 ms, at three
noise levels: clean, pink noise at 20 dB SNR and at 10 dB SNR. The generator trims each
sentence clip to its audible part and joins the clips with silences of exactly the
requested length, so it knows the speech regions to the sample.'''),
    code('''
corpus = explore.noise_levels([None, 20, 10], explore.SENTENCES[:4], pauses_ms=[250, 500, 900])
clean = corpus[0]
for rec in corpus:
    print(f"{rec.name:9} {rec.duration_ms / 1000:.1f} s, {len(rec.utterances)} utterances")
for (a, b), u in zip(clean.regions_ms(), clean.utterances):
    print(f"  {a / 1000:6.3f}-{b / 1000:6.3f} s  {u.text}")'''),
    md('''
## The grid

Three silences × two thresholds, with the default 300 ms of prefix padding: six server-VAD
configurations, eighteen replays in all.'''),
    code('''
configs = explore.grid(silence_ms=[200, 500, 900], threshold=[0.3, 0.9])
print([c.name for c in configs])'''),
    md('''
## The sweep

`explore.sweep` runs the replays two at a time in one host context (one embedded server),
shows a progress bar, and caches each run under a hash of the recording, the configuration
and the code on the replay path.'''),
    code('''
results = explore.sweep(corpus, configs, concurrency=2)
info = results.info
print(f"{info['runs']} runs, {info['replayed']} replayed, {info['cache_hits']} from the cache, "
      f"{info['wall_s']:.1f} s wall for {info['audio_s']:.0f} s of audio replayed")'''),
    md('''
The metrics, one row per configuration and recording (see `spear_lab.explore.metrics`
for the exact definitions):

- `segments` vs `ref_segments` — committed items against sentences;
- `wer` — word error rate of the joined transcripts;
- `clipped` — reference words partly outside every segment (word times are approximate:
  each sentence's duration is shared out over its words by character count);
- `recall` — speech onsets and offsets found within 250 ms;
- `p95 ms` — latency from the end of a sentence to its `completed` event: the segmentation
  delay in audio time (segment end − sentence end) plus the server's processing time. A
  replay faster than real time cannot measure the processing a live stream would see (the
  recogniser is still working through audio that, live, would not have arrived yet), so
  the sweep takes it from a short real-time calibration replay, once:'''),
    code('''
print(f"processing time (real-time calibration, median): {results.info['latency_processing_ms']:.0f} ms")
print(f"{'recording':9} {'config':20} {'segs':>4} {'ref':>3} {'wer':>5} {'clipped':>7} {'recall':>6} {'p95 ms':>7}")
for r in results:
    print(f"{r['recording']:9} {r['config']:20} {r['segments']:4d} {r['ref_segments']:3d} {r['wer']:5.2f} "
          f"{r['clipped_words']:7d} {r['boundary_recall']:6.2f} {r['latency_p95_ms']:7.0f}")'''),
    md('''
## Metric against parameter

Segments fall as the silence grows: a pause ends a turn only when the VAD hears at least
`silence_ms` of it. What the VAD hears is not the pause itself but the stretch where its
speech probability stays below `threshold`, and that is why the threshold matters: with a
**low** threshold the fading ends of words and the noise still count as speech, the silence
it hears is shorter than the pause, and turns merge — at every silence and noise level
below, threshold 0.3 gives at most as many segments as 0.9, and in 10 dB of noise it merges
sentences even at 200 ms. The recogniser, not the segmentation, is what noise hurts most:
the WER column is higher at 10 dB than on clean speech.'''),
    code('''
fig = explore.plot_metric(results, "segments", x="silence_ms", hue="threshold")
fig'''),
    md('''
Latency grows with the silence, by at least the extra silence: the server cannot close a
turn before it has heard `silence_ms` of it. It grows by seconds once a long silence merges
sentences, because the first sentence's transcript waits for the end of the whole turn.'''),
    code('''
fig = explore.plot_metric(results, "latency_p50_ms", x="silence_ms", hue="threshold")
fig'''),
    code('''
fig = explore.plot_metric(results, "clipped_words", x="silence_ms", hue="threshold")
fig'''),
    md('''
## Segment lanes

The waveform of the noisiest recording with the reference speech in green, and under it one
lane per configuration: the audio each segment covered (light, including padding and
trailing silence) and the speech the VAD found (dark).'''),
    code('''
fig = explore.plot_lanes(results, recording=corpus[-1].name)
fig'''),
    md('''
## What the VAD saw

Two configurations on the same noisy recording, through the VAD's eyes: the speech
probability of every frame against each threshold, where each turn started and stopped,
and the words of each transcript. The lowest and the highest threshold at the shortest
silence: the same probability curve, cut at two heights.'''),
    code('''
shortest = min(c.silence_ms for c in configs)
lo, hi = (next(c.name for c in configs if c.silence_ms == shortest and c.threshold == t) for t in (0.3, 0.9))
vad_fig = explore.plot_vad(results, recording=corpus[-1].name, configs=[lo, hi])
vad_fig'''),
    md('''
## One call, one plot

*Which silence and threshold minimise clipped words while keeping p95 latency under
1.5 s?* With several recordings the runs are pooled per configuration (counts summed,
latency percentiles over all sentences).'''),
    code('''
BOUND_MS = 1500
choice = explore.best(results, minimise="clipped_words", constraint={"latency_p95_ms": ("<=", BOUND_MS)})
print(choice and f"{choice['config']}: {choice['clipped_words']} clipped words, "
      f"p95 latency {choice['latency_p95_ms']:.0f} ms, WER {choice['wer']:.2f}")
fig = explore.plot_tradeoff(results, x="latency_p95_ms", y="clipped_words", bound=BOUND_MS)
fig'''),
    md('''
## Your own recording

The same calls work on a WAV with its transcript and, optionally, a CSV of speech regions
(`start,end[,text]` in seconds):

```python
mine = explore.load_recording("talk.wav", "talk.txt", regions="talk.csv")
results = explore.sweep(mine, explore.grid(silence_ms=[300, 600], threshold=[0.5]))
```

Without regions only WER and segment counts are defined.'''),
    md('''
## Checking the claims

A second sweep of the same corpus and grid must come from the cache; then the claims of
the introduction are asserted on the numbers above.'''),
    code('''
again = explore.sweep(corpus, configs, progress=False)
assert again.info["replayed"] == 0 and again.info["cache_hits"] == len(results)
assert [r["segments"] for r in again] == [r["segments"] for r in results]

assert all(r["ok"] for r in results), [r["error"] for r in results if not r["ok"]]
assert info["replayed"] == 0 or info["wall_s"] < info["audio_s"]  # faster than real time
by = {(r["recording"], r["threshold"], r["silence_ms"]): r for r in results}
silences = sorted({r["silence_ms"] for r in results})
for rec in corpus:
    for th in sorted({r["threshold"] for r in results}):
        segs = [by[rec.name, th, s]["segments"] for s in silences]
        assert segs == sorted(segs, reverse=True), (rec.name, th, segs)          # claim 1
        delay = [by[rec.name, th, s]["seg_delay_p50_ms"] for s in silences]
        assert delay[-1] > delay[0] + 300, (rec.name, th, delay)                  # claim 2
for th in (0.3, 0.9):
    r = by[clean.name, th, 200]
    assert r["segments"] == len(clean.utterances) and r["boundary_recall"] >= 0.75, r   # claim 3
    assert r["wer"] < 0.5, r["wer"]
assert choice is not None and choice["latency_p95_ms"] <= BOUND_MS                   # claim 4
for rec in corpus:  # the prose above the plots
    for s in silences:
        low, high = by[rec.name, 0.3, s]["segments"], by[rec.name, 0.9, s]["segments"]
        assert low <= high, (rec.name, s, low, high)        # a low threshold merges turns
    for th in (0.3, 0.9):
        p50 = [by[rec.name, th, s]["latency_p50_ms"] for s in silences]
        assert p50[-1] - p50[0] >= silences[-1] - silences[0], (rec.name, th, p50)
assert by[corpus[-1].name, 0.3, 200]["segments"] < len(corpus[-1].utterances)  # noise merges at 200 ms
mean_wer = {rec.name: sum(r["wer"] for r in results if r["recording"] == rec.name) / len(configs)
            for rec in corpus}
assert mean_wer[corpus[-1].name] > mean_wer[clean.name], mean_wer
a, b = vad_fig.data  # the VAD view: one probability curve, cut at two thresholds
assert a.has_probabilities and b.has_probabilities and (a.threshold, b.threshold) == (0.3, 0.9)
print("all claims hold")'''),
]
