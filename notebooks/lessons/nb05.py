"""Lesson 05_segmentation_compare: its cells."""

from __future__ import annotations

from .common import code, md

# ---------------------------------------------------------------------------------------
# 05 — segmentation compare
# ---------------------------------------------------------------------------------------

CELLS = [
    md('''
# 5 · Two segmentation settings, side by side

Where does one utterance end? With server VAD the answer is `silence_ms`: that much silence
closes a turn. Too short and a pause inside a sentence splits it (notebook 6 measures
that); too long and separate sentences merge into one transcript that arrives late — this
notebook shows both the merge and the delay.

Here two guests transcribe **the same recording at the same time**, through the embedded
server, with `silence_ms` = 200 and 800. The recording has two short pauses (350 ms) and
one long one (1.2 s).
'''),
    code('''
import asyncio
import logging
import tempfile
from pathlib import Path

import spear_lab
from spear_lab import Session

logging.getLogger("spear_lab").setLevel(logging.ERROR)
workdir = Path(tempfile.mkdtemp(prefix="spear-nb05-"))
sentences = ["the quick brown fox jumps over the lazy dog",
             "please call me back when you get home tonight",
             "the weather is very nice today",
             "i would like to book a table for two people"]
speech = spear_lab.make_speech(sentences, workdir / "speech.wav", pause_s=[0.35, 1.2, 0.35])
for a, b, text in speech.segments:
    print(f"{a:5.2f}-{b:5.2f} s  {text}")'''),
    md('''
## The two settings

Segmentation settings are the ABI's `SET_SEGMENTATION` JSON; the Session hands them to the
guest (`SPEAR_SEGMENTATION`), which sets them on its rtasr fd; at `CONNECT` they become the
server's `turn_detection`.
'''),
    code('''
settings = {
    "vad_200ms": {"strategy": "server_vad", "vad": {"silence_ms": 200}},
    "vad_800ms": {"strategy": "server_vad", "vad": {"silence_ms": 800}},
}
session = Session(mic=f"file:{speech.path}")
handles = {name: session.start("realtime_asr", backend="local", segmentation=seg, name=name)
           for name, seg in settings.items()}
session.dashboard()'''),
    md('''
## What the VAD sees, live

The embedded server reports the speech probability of every 32 ms frame (its
`spear.vad.probabilities` extension; the host keeps them in the trace and never passes
them to the guest). The VAD view draws, for each setting on one audio time axis: the
waveform with each turn shaded (prefix padding light, speech green, the silence waited
grey), the probability against the threshold, `speech_started` / `speech_stopped`, each
commit (▼) and the words of the turn's transcript. It fills in as the audio streams.
'''),
    code('''
from spear_lab.views import VadView

vad_view = VadView(session.trace, list(settings), audio=speech.path)
vad_view'''),
    md('''
The cell above started both guests and returned at once: they stream side by side, each in
its own thread, reading the same file microphone. This cell awaits both. While it runs, any
cell you run meanwhile waits for it (one cell at a time); the dashboard keeps refreshing
and widgets keep responding, because the kernel's loop turns while a cell awaits.
'''),
    code('''
results = dict(zip(handles, await asyncio.gather(*handles.values())))
{name: r.exit_code for name, r in results.items()}'''),
    md('''
## Segments against the sentences

Grey: where the sentences really are. Coloured: where each setting's server VAD put its
turns (from `speech_started` / `speech_stopped`, which include the 300 ms prefix padding).
'''),
    code('''
from spear_lab.views import segments_figure

fig = segments_figure(session.trace, list(settings), pcm=speech.pcm, rate=speech.rate,
                      reference=speech.segments)
fig'''),
    md('''
The same runs as a static VAD figure, the two settings one above the other: the probability
curves are the same (same audio, same VAD), only where the turns close differs — after
200 ms of silence the 350 ms pauses already end a turn; 800 ms waits them out.
'''),
    code('''
from spear_lab.views import vad_compare_figure

vad_fig = vad_compare_figure([(session.trace, name) for name in settings], audio=speech.path,
                             labels=list(settings))
vad_fig'''),
    md('''
## Transcripts and word error rate
'''),
    code('''
reference = " ".join(sentences)
scores = {}
for name in settings:
    texts = session.trace.transcript_text(name)
    scores[name] = spear_lab.wer(reference, " ".join(texts))
    print(f"{name}: {len(texts)} segments, WER {scores[name]:.2f}")
    for t in texts:
        print("   ", t)'''),
    md('''
Latency: how long after each sentence ended (in the stream) its text was complete. The
stream's time 0 is one frame before the guest's first `mic_read`. A sentence merged into a
longer turn waits for the end of the *next* sentence too.
'''),
    code('''
lags_by = {}
for name in settings:
    reads = [r for r in session.trace.hostcalls(name, "mic_read") if r["rc"] > 0]
    t_stream = reads[0]["t"] - 0.020
    lags = []
    for _, end_s, _ in speech.segments:
        item = next((i for i in session.trace.transcript(name)
                     if i.audio_start_ms / 1000 <= end_s <= i.audio_end_ms / 1000 + 0.5), None)
        lags.append(None if item is None or item.t_completed is None
                    else round(item.t_completed - (t_stream + end_s), 2))
    lags_by[name] = lags
    print(f"{name}: sentence end -> text complete (s): {lags}")'''),
    md('''
## Check

The claims: the two guests ran at the same time; on the same audio, the short silence finds
every sentence (4 segments) while the long one merges the sentences separated by 350 ms
pauses (2 segments); the first sentence, merged with the second under 800 ms, arrives later
than under 200 ms; both runs got every frame.
'''),
    code('''
import re
import shutil

spans = fig.spans
print({k: len(v) for k, v in spans.items()})
for name, r in results.items():
    stats = {k: int(v) for k, v in re.findall(r"(\\w+)=(-?\\d+)", r.stdout.splitlines()[-1])}
    assert r.exit_code == 0 and stats["dropped"] == 0 and stats["frames"] == -(-speech.nbytes // 960)
spans_in_time = {name: [r["t"] for r in session.trace.hostcalls(name, "mic_read") if r["rc"] > 0]
                 for name in settings}
a, b = spans_in_time.values()
assert a[0] < b[-1] and b[0] < a[-1], "the two runs did not overlap in time"
first = {name: lags[0] for name, lags in lags_by.items()}
assert None not in first.values() and first["vad_800ms"] > first["vad_200ms"] + 0.3, first
assert len(spans["vad_200ms"]) == 4
assert len(spans["vad_800ms"]) == 2
assert all(score < 0.6 for score in scores.values())
from spear_lab.views import vad_data

vads = {name: vad_data(session.trace, name) for name in settings}
assert all(v.has_probabilities and len(v.turns) == len(spans[name]) for name, v in vads.items())
assert vad_view.refresher.updates >= 2  # the VAD view was live
session.close()
shutil.rmtree(workdir)
print("all claims hold")'''),
]
