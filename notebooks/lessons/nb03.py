"""Lesson 03_realtime_asr: its cells."""

from __future__ import annotations

from .common import code, md

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
    code('''
import logging
import time

import spear_lab
from spear_lab import Session

logging.getLogger("spear_lab").setLevel(logging.ERROR)'''),
    md('''
## Test speech

Three sentences from espeak-ng, one second apart, written as a 24 kHz mono WAV.
'''),
    code('''
import tempfile
from pathlib import Path

workdir = Path(tempfile.mkdtemp(prefix="spear-nb03-"))
sentences = ["the quick brown fox jumps over the lazy dog",
             "please call me back when you get home tonight",
             "the weather is very nice today"]
speech = spear_lab.make_speech(sentences, workdir / "speech.wav", pause_s=1.0)
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
## Start the guest, run other cells, then await

The pattern: **start** → **other cells run** → **await**.

`start` returns at once; the guest runs in its own thread, the audio and the socket on the
session's I/O loop (another thread). `backend="local"` tells the guest to use the WebSocket
transport routed to the embedded server (the guest reads `SPEAR_BACKEND` /
`SPEAR_TRANSPORT`).
'''),
    code('''
handle = session.start("realtime_asr", backend="local")
handle'''),
    md('''
While it streams, the notebook is yours. This cell does two seconds of "work" of its own
(a plain `time.sleep`, which holds the kernel): the guest does not notice — the file
microphone, the guest and the socket run in their own threads — but the views above pause
until the cell ends, because they refresh on the kernel's loop.
'''),
    code('''
def frames_read():
    return sum(1 for r in session.trace.hostcalls(handle.name, "mic_read") if r["rc"] > 0)


before = frames_read()
time.sleep(2.0)  # your own work: a computation, a plot, anything
other_cell = {"guest still running": not handle.done, "frames it read during this cell": frames_read() - before}
other_cell'''),
    md('''
Then wait for the guest with top-level `await`. What waits while `await handle` runs: this
cell, and **every cell you run meanwhile** — they queue up and start when the guest has
ended (the kernel runs one cell at a time; an awaiting cell is still running). What goes on:
the views' refreshes (the transcript view above updates as deltas arrive) and **widget
interaction** (sliders, buttons): the kernel handles widget messages while a cell awaits.
That is the difference from `session.run(...)` (notebook 2), under which widget
interaction waits too.
'''),
    code('''
result = await handle
print("\\n".join(line for line in result.stdout.splitlines()
                if line.startswith(("completed", "summary"))))'''),
    md('''
With Run All, JupyterLab sends this next cell to the kernel while the `await` above is still
running; it starts only now:
'''),
    code('''
queued_cell = {"guest done when this cell began": handle.done}
queued_cell'''),
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
The send queue, over the run. At the start it **does** build up: the guest streams from its
first frame, but the WebSocket connection needs a moment — the embedded server starts on
first use and loads its models — so the audio of that moment waits in the send queue (a
ramp to a hundred kilobytes or more: 48 kB per second of audio; the queue holds 1 MiB, so
nothing is lost). Once connected, the backlog goes out at once, and from then on the
transport keeps pace with real time: a frame or two at most waits.
'''),
    code('''
queue_figure(session.trace, handle.name)'''),
    code('''
levels = [q for q in session.trace.queue_levels(handle.name) if "send_queue_bytes" in q]
connected_at = session.trace.events(handle.name)[0]["t"]  # the server's first event
peak = max(levels, key=lambda q: q["send_queue_bytes"])
later = [q["send_queue_bytes"] for q in levels if q["t"] > connected_at + 2.0]  # backlog sent
print(f"peak {peak['send_queue_bytes']} bytes at {peak['t']:.2f} s, connected at {connected_at:.2f} s; "
      f"after that at most {max(later)} bytes ({max(later) / 48:.0f} ms of audio)")'''),
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
(as ASR leaderboards do: "two" → "2", "Mr." → "mister").
'''),
    code('''
texts = session.trace.transcript_text(handle.name)
score = spear_lab.wer(" ".join(sentences), " ".join(texts))
for ref, hyp in zip(sentences, texts):
    print(f"ref: {ref}\\nhyp: {hyp}\\n")
print(f"WER {score:.2f}")'''),
    md('''
## Check

The claims: `start` returned at once and another cell ran while the guest streamed, without
costing it a frame; the cell after `await` started only when the guest had ended; every
frame of the file reached the server (none dropped, none refused); the send queue built up
only until the connection was made and then stayed within a few frames; each sentence came
back as one completed transcript; the words are mostly right; the transcript view was live.
'''),
    code('''
import re
import shutil

stats = {k: int(v) for k, v in re.findall(r"(\\w+)=(-?\\d+)", result.stdout.splitlines()[-1])}
frames = -(-speech.nbytes // 960)
assert result.exit_code == 0, result.stdout
assert stats["frames"] == frames and stats["dropped"] == 0 and stats["eagain"] == 0
assert stats["completed"] == len(texts) == len(sentences)
assert score < 0.5
assert other_cell["guest still running"] and other_cell["frames it read during this cell"] >= 80  # 2 s = 100 frames
assert queued_cell["guest done when this cell began"]
assert peak["t"] <= connected_at + 2.0 and max(later) <= 20 * 960  # keeps pace: < 0.4 s of audio waits
assert transcript.texts == texts  # the live view ended with the same text
assert transcript.refresher.mode == "loop" and transcript.refresher.updates >= 3  # it was live
session.close()
shutil.rmtree(workdir)
print("all claims hold")'''),
]
