"""Lesson 03_realtime_asr: its cells."""

from __future__ import annotations

from .common import SETUP, code, md  # noqa: F401

# ---------------------------------------------------------------------------------------
# 03 — realtime ASR
# ---------------------------------------------------------------------------------------

CELLS = [
    md('''
# 3 · Realtime transcription, end to end

The main job: a **microphone** fd feeds 20 ms frames of audio to the `realtime_asr` guest,
which streams them through an **rtasr** fd to a transcription server and prints each
transcript as it completes. Here, offline and without an API key:

- the microphone is a **WAV file** — the host substitutes it for the device the guest asks
  for (the guest cannot tell), paced in real time;
- the server is the **embedded local server** on loopback, speaking the OpenAI Realtime
  transcription protocol, with a real VAD and an offline recogniser (pocketsphinx).
'''),
    code(SETUP),
    md('''
## Test speech

Three sentences from espeak-ng, one second apart, written as a 24 kHz mono WAV.
'''),
    code('''
import tempfile
from pathlib import Path

from spear_lab.testaudio import make_speech

workdir = Path(tempfile.mkdtemp(prefix="spear-nb03-"))
sentences = ["the quick brown fox jumps over the lazy dog",
             "please call me back when you get home tonight",
             "the weather is very nice today"]
speech = make_speech(sentences, workdir / "speech.wav", pause_s=1.0)
print(f"{speech.duration_s:.1f} s of audio, {speech.nbytes} bytes")'''),
    md('''
## A session with a file microphone

`mic="file:PATH"` is host policy: whatever input device a guest asks for, it gets this
file. A live transcript view follows the session's Trace.
'''),
    code('''
from spear_lab.views import TranscriptView

session = Session(mic=f"file:{speech.path}")
transcript = TranscriptView(session.trace)
transcript'''),
    md('''
## Start the guest

`start` returns at once; the guest runs in its own thread, the audio and the socket on the
session's I/O loop. `backend="local"` tells the guest to use the WebSocket transport routed
to the embedded server (the guest reads `SPEAR_BACKEND` / `SPEAR_TRANSPORT`).
'''),
    code('''
handle = session.start("realtime_asr", backend="local")
handle'''),
    md('''
This cell waits with top-level `await`: the kernel stays responsive and the transcript view
above updates as deltas arrive.
'''),
    code('''
result = await handle
print("\\n".join(line for line in result.stdout.splitlines()
                if line.startswith(("completed", "summary"))))'''),
    md('''
## What the guest saw, and when

Readiness of the mic fd (`IN` whenever a frame is waiting) and of the rtasr fd (`IN` when an
event arrived), with the guest's waits. Each 20 ms frame wakes the guest once.
'''),
    code('''
from spear_lab.views import queue_figure, timeline_figure

timeline_figure(session.trace, handle.name)'''),
    md('''
Zoom into 200 ms: every 20 ms a frame arrives (mic `IN` goes on), a wait returns, the guest
reads the frame (`IN` goes off) and writes it to the rtasr fd.
'''),
    code('''
reads = session.trace.hostcalls(handle.name, "mic_read")
t0 = reads[len(reads) // 2]["t"]
timeline_figure(session.trace, handle.name, t_range=(t0, t0 + 0.2))'''),
    md('''
The send queue never builds up: the WebSocket transport keeps pace with real-time audio.
'''),
    code('''
queue_figure(session.trace, handle.name)'''),
    md('''
The transcript with its segment times: `speech_started` / `speech_stopped` positions in the
audio (ms) from the server's VAD, and when the commit, the first delta and the completed
text arrived (trace seconds).
'''),
    code('''
from IPython.display import HTML
from spear_lab.views import transcript_html

HTML(transcript_html(session.trace, handle.name))'''),
    md('''
## Word error rate

Against what espeak-ng was asked to say, both through Whisper's English text normaliser
(as ASR leaderboards do: "two" → "2", "Mr." → "mister"); the raw WER beside it only
lower-cases and drops punctuation.
'''),
    code('''
from spear_lab.explore.metrics import wer_counts

texts = session.trace.transcript_text(handle.name)
score = wer_counts(" ".join(sentences), " ".join(texts))
for ref, hyp in zip(sentences, texts):
    print(f"ref: {ref}\\nhyp: {hyp}\\n")
print(f"WER {score['wer']:.2f} ({score['errors']} errors in {score['ref_words']} words), "
      f"raw {score['wer_raw']:.2f}")'''),
    md('''
## Check

The claims: every frame of the file reached the server (none dropped, none refused), each
sentence came back as one completed transcript, and the words are mostly right.
'''),
    code('''
import re
import shutil

stats = {k: int(v) for k, v in re.findall(r"(\\w+)=(-?\\d+)", result.stdout.splitlines()[-1])}
frames = -(-speech.nbytes // 960)
assert result.exit_code == 0, result.stdout
assert stats["frames"] == frames and stats["dropped"] == 0 and stats["eagain"] == 0
assert stats["completed"] == len(texts) == len(sentences)
assert score["wer"] < 0.5
assert transcript.texts == texts  # the live view ended with the same text
assert transcript.refresher.mode == "loop" and transcript.refresher.updates >= 3  # it was live
session.close()
shutil.rmtree(workdir)
print("all claims hold")'''),
]
