"""Lesson 05_segmentation_compare: its cells."""

from __future__ import annotations

from .common import SETUP, code, md  # noqa: F401

# ---------------------------------------------------------------------------------------
# 05 — segmentation compare
# ---------------------------------------------------------------------------------------

CELLS = [
    md('''
# 5 · Two segmentation settings, side by side

Where does one utterance end? With server VAD the answer is `silence_ms`: that much silence
closes a turn. Too short and a breath splits a sentence; too long and separate sentences
merge into one transcript that arrives late.

Here two guests transcribe **the same recording at the same time**, through the embedded
server, with `silence_ms` = 200 and 800. The recording has two short pauses (350 ms) and
one long one (1.2 s).
'''),
    code(SETUP),
    code('''
import asyncio
import tempfile
from pathlib import Path

from spear_lab.testaudio import make_speech

workdir = Path(tempfile.mkdtemp(prefix="spear-nb05-"))
sentences = ["the quick brown fox jumps over the lazy dog",
             "please call me back when you get home tonight",
             "the weather is very nice today",
             "i would like to book a table for two people"]
speech = make_speech(sentences, workdir / "speech.wav", pause_s=[0.35, 1.2, 0.35])
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
## Transcripts and word error rate
'''),
    code('''
from spear_lab.explore.metrics import wer_counts

reference = " ".join(sentences)
scores = {}
for name in settings:
    texts = session.trace.transcript_text(name)
    scores[name] = wer_counts(reference, " ".join(texts))["wer"]
    print(f"{name}: {len(texts)} segments, WER {scores[name]:.2f}")
    for t in texts:
        print("   ", t)'''),
    md('''
Latency: how long after each sentence ended (in the stream) its text was complete. The
stream's time 0 is one frame before the guest's first `mic_read`. A sentence merged into a
longer turn waits for the end of the *next* sentence too.
'''),
    code('''
for name in settings:
    reads = [r for r in session.trace.hostcalls(name, "mic_read") if r["rc"] > 0]
    t_stream = reads[0]["t"] - 0.020
    lags = []
    for _, end_s, _ in speech.segments:
        item = next((i for i in session.trace.transcript(name)
                     if i.audio_start_ms / 1000 <= end_s <= i.audio_end_ms / 1000 + 0.5), None)
        lags.append(None if item is None or item.t_completed is None
                    else round(item.t_completed - (t_stream + end_s), 2))
    print(f"{name}: sentence end -> text complete (s): {lags}")'''),
    md('''
## Check

The claim: on the same audio, the short silence finds every sentence (4 segments) while
the long one merges the sentences separated by 350 ms pauses (2 segments); both runs got
every frame.
'''),
    code('''
import re
import shutil

spans = fig.spans
print({k: len(v) for k, v in spans.items()})
for name, r in results.items():
    stats = {k: int(v) for k, v in re.findall(r"(\\w+)=(-?\\d+)", r.stdout.splitlines()[-1])}
    assert r.exit_code == 0 and stats["dropped"] == 0 and stats["frames"] == -(-speech.nbytes // 960)
assert len(spans["vad_200ms"]) == 4
assert len(spans["vad_800ms"]) == 2
assert all(score < 0.6 for score in scores.values())
session.close()
shutil.rmtree(workdir)
print("all claims hold")'''),
]
