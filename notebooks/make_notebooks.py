"""Write notebooks 01–05 and 07 (nbformat v4) from the cell lists below.

    python notebooks/make_notebooks.py          # rewrite 01..05 and 07 next to this file
    python notebooks/make_notebooks.py 07_corpus_on_a_cluster.ipynb   # only the ones named

Each notebook: short cells, prose first, one idea per cell, a picture where it helps, and a
final cell that checks the notebook's claim with assertions (nbval --nbval-lax runs them
unattended; it never compares widget or image outputs).  Outputs are not stored: the
notebooks are run by nbval (or by you).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''\
import logging
import time

from spear_lab.session import Session

logging.getLogger("spear_lab").setLevel(logging.ERROR)
%matplotlib inline'''


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str):
    return new_code_cell(text.strip("\n"))


# ---------------------------------------------------------------------------------------
# 01 — the epoll tour
# ---------------------------------------------------------------------------------------

TOUR_WAT = r'''
TOUR_WAT = r"""
(module
  (import "spear" "spear_epoll_create" (func $ep_create (result i32)))
  (import "spear" "spear_epoll_ctl" (func $ep_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_wait" (func $ep_wait (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_close" (func $ep_close (param i32) (result i32)))
  (import "spear" "rtasr_create" (func $asr_create (result i32)))
  (import "spear" "rtasr_ctl" (func $asr_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "rtasr_write" (func $asr_write (param i32 i32 i32) (result i32)))
  (import "spear" "rtasr_close" (func $asr_close (param i32) (result i32)))
  (memory (export "memory") 1)
  ;; memory map:   8 length cell of the wait buffer   64 SET_PARAM JSON (41 bytes)
  ;;             128 its length cell                 256 16 bytes of "audio"
  ;;             512 the wait buffer (records of 8 bytes: i32 fd, i32 events)
  (data (i32.const 64) "{\"key\":\"max_send_queue_bytes\",\"value\":16}")
  (data (i32.const 128) "\29\00\00\00")
  (func $wait (param $ep i32) (param $room i32) (result i32)
    (i32.store (i32.const 8) (local.get $room))     ;; bytes of room for records
    (call $ep_wait (local.get $ep) (i32.const 512) (i32.const 8) (i32.const 0)))
  (func (export "_start") (local $ep i32) (local $asr i32)
    (local.set $ep (call $ep_create))                                   ;; 1000
    (local.set $asr (call $asr_create))                                 ;; 1001
    (drop (call $ep_ctl (local.get $ep) (i32.const 1) (local.get $asr)  ;; ADD, IN|OUT|HUP
                (i32.const 0x15)))
    (drop (call $wait (local.get $ep) (i32.const 64)))                  ;; 1 record: OUT
    (drop (call $asr_ctl (local.get $asr) (i32.const 1)                 ;; SET_PARAM
                (i32.const 64) (i32.const 128)))
    (drop (call $asr_write (local.get $asr) (i32.const 256) (i32.const 16)))  ;; 16
    (drop (call $asr_write (local.get $asr) (i32.const 256) (i32.const 1)))   ;; -EAGAIN
    (drop (call $wait (local.get $ep) (i32.const 64)))                  ;; 0: nothing ready
    (drop (call $wait (local.get $ep) (i32.const 4)))                   ;; -ENOSPC
    (drop (call $asr_close (local.get $asr)))                           ;; 0
    (drop (call $wait (local.get $ep) (i32.const 64)))                  ;; 1 record: HUP
    (drop (call $ep_close (local.get $ep))))
)
"""
'''

NB01 = [
    md('''
# 1 · The epoll tour

spear_lab guests talk to the host through a small, syscall-like ABI: every resource is an
**fd** (a number from 1000 up), and one **epoll** tells a guest which fds are ready. This
notebook walks through the rules one hostcall at a time:

1. fds and **interest** — an epoll reports only the bits you asked for;
2. **level-triggered** readiness — a ready fd stays reported until its state changes;
3. **-EAGAIN** — a full send queue refuses a write, and `EPOLLOUT` goes away;
4. **-ENOSPC** — a wait with no room for a single record;
5. **EPOLLHUP** — what a closed fd reports.

First from Python (every hostcall is a method), then from a WebAssembly guest written by
hand in WAT, with a timeline of what happened.
'''),
    code(SETUP),
    md('''
## A session and its ABI

A `Session` owns one host: its fd table, its I/O loop (a background thread) and a
**Trace**, a timestamped record of every hostcall, readiness change and queue level.
`session.abi` has one method per hostcall; each call is recorded under the name `python`.
'''),
    code('''
from spear_lab.abi import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EpollOp, FdCtl, RtasrCtl, errno_name

session = Session()
abi = session.abi
session'''),
    md('''
## fds

`spear_epoll_create` and `rtasr_create` never fail; they return the next fd number. An
rtasr fd is a realtime-transcription stream: audio goes in with `rtasr_write`, events come
out with `rtasr_read`.
'''),
    code('''
ep = abi.spear_epoll_create()
asr = abi.rtasr_create()
ep, asr'''),
    md('''
## Interest and readiness

`spear_epoll_ctl(ep, ADD, fd, mask)` says which bits of `fd` this epoll should report.
`spear_epoll_wait(ep, max_records, timeout_ms)` returns `(fd, bits)` pairs. A fresh rtasr
fd has room in its send queue, so it is **writable**: `EPOLLOUT` (4).
'''),
    code('''
abi.spear_epoll_ctl(ep, EpollOp.ADD, asr, EPOLLIN | EPOLLOUT | EPOLLHUP)
first = abi.spear_epoll_wait(ep, 8, 0)
first'''),
    md('''
## Level-triggered

Nothing is consumed by a wait: ask again and the answer is the same, as long as the fd's
state has not changed. (That is why a guest must drop `EPOLLOUT` from its interest when it
has nothing to write — or every wait returns at once.)
'''),
    code('''
again = abi.spear_epoll_wait(ep, 8, 0)
again == first'''),
    md('''
Interest filters what is reported. With only `EPOLLIN` in the mask the writable fd is not
reported at all — the wait times out (`timeout_ms=0`: it just polls) with an empty list.
'''),
    code('''
abi.spear_epoll_ctl(ep, EpollOp.MOD, asr, EPOLLIN | EPOLLHUP)
filtered = abi.spear_epoll_wait(ep, 8, 0)
abi.spear_epoll_ctl(ep, EpollOp.MOD, asr, EPOLLIN | EPOLLOUT | EPOLLHUP)
filtered'''),
    md('''
## -EAGAIN: a full send queue

Writes are all-or-nothing. With a send queue of 16 bytes, 16 bytes fit; one more byte is
refused with `-EAGAIN` (-11) and nothing is queued. `EPOLLOUT` means *strictly below* the
limit, so it disappears as soon as the queue is full. (No transport is connected here, so
nothing drains the queue.)
'''),
    code('''
abi.rtasr_ctl(asr, RtasrCtl.SET_PARAM, b'{"key":"max_send_queue_bytes","value":16}')
wrote = abi.rtasr_write(asr, bytes(16))
refused = abi.rtasr_write(asr, b"x")
after_full = abi.spear_epoll_wait(ep, 8, 0)
wrote, refused, errno_name(refused), after_full'''),
    md('''
## -ENOSPC: no room for one record

A wait needs room for at least one 8-byte record (i32 fd, i32 events). A guest that passes
a smaller buffer gets `-ENOSPC` (-28), and the host writes the length it needs (8) back into
the guest's length cell. From Python, `max_records=0` is the same mistake.
'''),
    code('''
no_room = abi.spear_epoll_wait(ep, 0, 0)
no_room, errno_name(no_room)'''),
    md('''
## EPOLLHUP: a closed fd

Closing an fd wakes every epoll watching it; the fd then reports `EPOLLHUP` (0x10) when
HUP is in the interest mask. The number is never reused, and `GET_STATUS` still answers.
'''),
    code('''
abi.rtasr_close(asr)
after_close = abi.spear_epoll_wait(ep, 8, 0)
status = abi.spear_fd_ctl(asr, FdCtl.GET_STATUS)
after_close, status'''),
    md('''
The fd table of the Python host, as the ABI's own `GET_STATUS` commands report it:
'''),
    code('''
session.fds'''),
    md('''
## The picture

The readiness timeline has one lane per fd and bit, and a lane of `spear_epoll_wait`
calls: a dot where a wait returned records, a cross for an empty answer, a red square for
an error. `axis="step"` spaces the recorded moments evenly (these Python calls are
microseconds apart).
'''),
    code('''
from spear_lab.views import HostcallLog, timeline_figure

timeline_figure(session.trace, "python", axis="step")'''),
    md('''
Every call, its arguments, its result and the errno name — filterable by guest, hostcall
and result:
'''),
    code('''
HostcallLog(session.trace, live=False)'''),
    md('''
## The same tour from a guest

Below is a WebAssembly guest written by hand in WAT. It makes the same calls: its
`spear_epoll_wait` takes a pointer to a record buffer and a pointer to a *length cell*
holding the room in bytes (64 = 8 records; 4 = not even one). A Session accepts WAT text
directly; the guest runs in its own thread, on its own fd table (numbered from 1000 again).
'''),
    code(TOUR_WAT),
    code('''
result = session.run(TOUR_WAT, name="tour")
result.ok, result.duration_s < 5'''),
    md('''
The guest printed nothing — the Trace saw every call:
'''),
    code('''
guest_calls = [(r["name"], r["rc"], r["errno"]) for r in session.trace.hostcalls("tour")]
for name, rc, err in guest_calls:
    print(f"{name:20} {rc:6}  {err}")'''),
    code('''
timeline_figure(session.trace, "tour", axis="step")'''),
    md('''
## The C version: every rule, checked

The built-in `epoll_tour` guest (C, `guests/c/epoll_tour.c`) walks 45 steps — including
`-EBADF` for unknown fds, `EPOLLERR`, mic fds and closing the epoll itself — and compares
every result with the ABI reference:
'''),
    code('''
c_tour = session.run("epoll_tour", timeout=60)
print(c_tour.stdout.splitlines()[-1])'''),
    md('''
## Check

The claims of this notebook: a fresh rtasr fd is writable; waits are level-triggered;
interest filters; a full queue gives `-EAGAIN` and no `EPOLLOUT`; a wait with no room gives
`-ENOSPC`; a closed fd reports `EPOLLHUP` — and a guest sees exactly the same results as
Python.
'''),
    code('''
assert (ep, asr) == (1000, 1001)
assert first == [(asr, EPOLLOUT)] and again == first
assert filtered == []
assert (wrote, refused, after_full) == (16, -11, [])
assert no_room == -28
assert after_close == [(asr, EPOLLHUP)] and b'"closed":true' in status

expected = [("spear_epoll_create", 1000), ("rtasr_create", 1001), ("spear_epoll_ctl", 0),
            ("spear_epoll_wait", 1), ("rtasr_ctl", 0), ("rtasr_write", 16), ("rtasr_write", -11),
            ("spear_epoll_wait", 0), ("spear_epoll_wait", -28), ("rtasr_close", 0),
            ("spear_epoll_wait", 1), ("spear_epoll_close", 0)]
assert [(n, rc) for n, rc, _ in guest_calls] == expected
tour_lanes = {lane.label for lane in timeline_figure(session.trace, "tour").lanes}
assert {"tour: fd 1001 rtasr OUT", "tour: fd 1001 rtasr HUP"} <= tour_lanes
assert c_tour.exit_code == 0 and "mismatches=0" in c_tour.stdout
session.close()
print("all claims hold")'''),
]

# ---------------------------------------------------------------------------------------
# 02 — backpressure
# ---------------------------------------------------------------------------------------

NB02 = [
    md('''
# 2 · Backpressure

A transport that drains slower than the guest writes fills the send queue. The ABI makes
that visible instead of hiding it: a write that does not fit returns **-EAGAIN** and queues
nothing, and the fd stops reporting **EPOLLOUT** until there is room again.

The **stub transport** is a deliberately slow consumer: every 10 ms it takes *one* item off
the send queue, whatever its size — about 100 items per second. We feed it 960-byte frames
(20 ms of 24 kHz pcm16) through a queue of 3840 bytes (four frames).
'''),
    code(SETUP),
    code('''
from spear_lab.abi import EPOLLOUT, EpollOp, RtasrCtl, errno_name

session = Session()
abi = session.abi'''),
    md('''
## Filling the queue from Python

`CONNECT` starts the stub on the session's I/O loop. Then six frames as fast as Python can:
the first ones fit, the rest are refused.
'''),
    code('''
asr = abi.rtasr_create()
abi.rtasr_ctl(asr, RtasrCtl.SET_PARAM, b'{"key":"max_send_queue_bytes","value":3840}')
abi.rtasr_ctl(asr, RtasrCtl.CONNECT)
frame = bytes(960)
results = [abi.rtasr_write(asr, frame) for _ in range(6)]
[errno_name(rc) for rc in results]'''),
    md('''
## Waiting for EPOLLOUT

Instead of retrying in a loop, wait for `EPOLLOUT`: the stub takes one frame within 10 ms,
the queue drops below its limit, the wait returns, and the write succeeds.
'''),
    code('''
ep = abi.spear_epoll_create()
abi.spear_epoll_ctl(ep, EpollOp.ADD, asr, EPOLLOUT)
t0 = time.perf_counter()
ready = abi.spear_epoll_wait(ep, 8, 1000)
waited_ms = (time.perf_counter() - t0) * 1000
retry = abi.rtasr_write(asr, frame)
ready, round(waited_ms, 1), retry'''),
    md('''
Level-triggered readiness has a trap: a writable fd left in the `EPOLLOUT` interest while
there is nothing to write makes *every* wait return at once. Once the stub has drained the
queue, 100 waits with a 50 ms timeout take almost no time at all — a busy loop:
'''),
    code('''
while b'"send_queue_bytes":0' not in abi.rtasr_ctl(asr, RtasrCtl.GET_STATUS):
    time.sleep(0.01)  # let the stub drain the queue
t0 = time.perf_counter()
busy = [abi.spear_epoll_wait(ep, 8, 50) for _ in range(100)]
busy_ms = (time.perf_counter() - t0) * 1000
abi.spear_epoll_ctl(ep, EpollOp.DEL, asr, 0)
abi.rtasr_close(asr)
round(busy_ms, 1), "ms for 100 waits of up to 50 ms each"'''),
    md('''
## A guest under backpressure

The built-in `backpressure` guest (C) writes 200 frames as fast as it can. On `-EAGAIN` it
adds `EPOLLOUT` to its interest, waits, and removes it again. The dashboard below follows
the run live: `session.run` blocks this cell but keeps the notebook's event loop turning,
so the views refresh (at most 10 times a second) while the guest runs.
'''),
    code('''
dashboard = session.dashboard()
dashboard'''),
    code('''
result = session.run("backpressure", ["--frames", "200"], timeout=120)
print(result.stdout.splitlines()[-1])'''),
    md('''
## The queue, over time

The send queue saw-tooths at its cap: the guest refills each slot as soon as the stub
frees it.
'''),
    code('''
from spear_lab.views import queue_figure, timeline_figure

queue_figure(session.trace, "backpressure")'''),
    md('''
Zoom into 150 ms of the run: `EPOLLOUT` of the rtasr fd flickers on for an instant every
10 ms (one stub tick frees one slot), and every `spear_epoll_wait` returns right then.
'''),
    code('''
writes = session.trace.hostcalls("backpressure", "rtasr_write")
mid = writes[len(writes) // 2]["t"]
timeline_figure(session.trace, "backpressure", t_range=(mid, mid + 0.15))'''),
    md('''
## Check

The claims: a full queue refuses writes with `-EAGAIN` and queues nothing; `EPOLLOUT` comes
back when the stub drains; the guest's write rate settles at the stub's drain rate (at most
~100 frames a second); the queue never exceeds its cap.
'''),
    code('''
import re

stats = {k: int(v) for k, v in re.findall(r"(\\w+)=(\\d+)", result.stdout.splitlines()[-1])}
levels = [q["send_queue_bytes"] for q in session.trace.queue_levels("backpressure")]
rate = stats["written"] / (stats["elapsed_ms"] / 1000)
print(f"written={stats['written']} eagain={stats['eagain']} rate={rate:.0f} frames/s")

assert results[:4] == [960] * 4 and -11 in results
assert ready == [(asr, EPOLLOUT)] and retry == 960
assert all(b == [(asr, EPOLLOUT)] for b in busy) and busy_ms < 1000  # not 100 x 50 ms
assert result.exit_code == 0 and stats["written"] == 200 and stats["eagain"] > 0
assert max(levels) == 3840 and all(level <= 3840 for level in levels)
assert rate <= 110  # one item per 10 ms tick
eagain = session.trace.summary()["drops"]["eagain_writes"]
assert eagain >= stats["eagain"]
session.close()
print("all claims hold")'''),
]

# ---------------------------------------------------------------------------------------
# 03 — realtime ASR
# ---------------------------------------------------------------------------------------

NB03 = [
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

# ---------------------------------------------------------------------------------------
# 04 — live microphone
# ---------------------------------------------------------------------------------------

NB04 = [
    md('''
# 4 · A live microphone

The same guest as in notebook 3, now reading a real input device through PortAudio
(`sounddevice`). On a laptop that is your microphone: speak when the cell says so. On a
machine without a sound card (CI), this notebook starts a **virtual microphone** — a
private PulseAudio daemon whose default source hears whatever is played into its null sink
(`scripts/virtual_mic.sh` in a terminal; `spear_lab.audio.virtual_mic` here) — and plays
test speech into it, in real time.
'''),
    code(SETUP),
    md('''
## Test speech

With a real microphone this is what you would say; with the virtual one, `paplay` plays it
into the sink and the device hears it.
'''),
    code('''
import tempfile
from pathlib import Path

from spear_lab.testaudio import make_speech

workdir = Path(tempfile.mkdtemp(prefix="spear-nb04-"))
sentences = ["please call me back when you get home tonight", "the weather is very nice today"]
speech = make_speech(sentences, workdir / "speech.wav", pause_s=1.0)
seconds = speech.duration_s + 1.5
print(f"say: {' / '.join(sentences)}  ({seconds:.0f} s)")'''),
    md('''
## Is there an input device?
'''),
    code('''
from spear_lab.audio.portaudio import AudioUnavailable, devices

try:
    found, portaudio = devices(), True
except AudioUnavailable as exc:  # no PortAudio library: no device capture at all
    print(exc)
    found, portaudio = [], False
found'''),
    md('''
No device: start a virtual microphone of our own (in this notebook's temporary directory,
so nothing else is touched) and point this process's audio clients at it. PortAudio lists
devices once, so it is re-initialised.
'''),
    code('''
from spear_lab.audio.virtual_mic import VirtualMic, VirtualMicError

vmic = None
if portaudio and not found:
    try:
        vmic = VirtualMic(directory=workdir / "pulse").start()
    except VirtualMicError as exc:
        print("no virtual microphone:", exc)
if vmic is not None:
    activated = vmic.activated()
    activated.__enter__()
    found = devices(refresh=True)
mode = "virtual" if vmic is not None else "device" if found else "file"
print(mode, [d.name for d in found])'''),
    md('''
## Record and transcribe

`mic="device"` (the default policy) gives the guest the real default input. Without any
device at all the notebook falls back to the file, so it still runs. `SPEAR_MAX_FRAMES`
ends the guest after the speech (a device never ends by itself).
'''),
    code('''
mic = "device" if mode != "file" else f"file:{speech.path}"
session = Session(mic=mic)
max_frames = int(seconds / 0.020)
handle = session.start("realtime_asr", backend="local", env={"SPEAR_MAX_FRAMES": str(max_frames)})
player = vmic.play(speech.path, wait=False) if vmic is not None else None
if mode == "device":
    print(f"speak now, for {seconds:.0f} s")
session.dashboard()'''),
    code('''
result = await handle
if player is not None:
    player.wait()
print("\\n".join(line for line in result.stdout.splitlines() if line.startswith(("completed", "summary"))))'''),
    md('''
The mic fd's readiness over 400 ms: a frame every 20 ms, from the device's own clock.
'''),
    code('''
from spear_lab.views import timeline_figure

reads = session.trace.hostcalls(handle.name, "mic_read")
t0 = reads[len(reads) // 2]["t"]
timeline_figure(session.trace, handle.name, t_range=(t0, t0 + 0.4))'''),
    md('''
## Check

The claims: the device (real or virtual) delivered every frame the guest asked for with
none dropped; with the virtual microphone (or the file), the speech comes back as text.
'''),
    code('''
import re
import shutil

from spear_lab.explore.metrics import wer_counts

stats = {k: int(v) for k, v in re.findall(r"(\\w+)=(-?\\d+)", result.stdout.splitlines()[-1])}
texts = session.trace.transcript_text(handle.name)
print(mode, texts)
assert result.exit_code == 0, result.stdout
assert stats["dropped"] == 0 and stats["eagain"] == 0
if mode == "file":
    assert stats["frames"] == -(-speech.nbytes // 960)
else:
    assert stats["frames"] == max_frames
if mode != "device":  # we know what was said
    assert wer_counts(" ".join(sentences), " ".join(texts))["wer"] < 0.6
session.close()
if vmic is not None:
    activated.__exit__(None, None, None)
    vmic.stop()
shutil.rmtree(workdir)
print("all claims hold")'''),
]

# ---------------------------------------------------------------------------------------
# 05 — segmentation compare
# ---------------------------------------------------------------------------------------

NB05 = [
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

# ---------------------------------------------------------------------------------------
# 07 — a corpus on a cluster
# ---------------------------------------------------------------------------------------

NB07 = [
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
workdir = Path(tempfile.mkdtemp(prefix="nb07-"))
%matplotlib inline'''),
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
explore.plot_metric(results, "clipped_words", x="silence_ms", hue="threshold", pooled=True);'''),
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

NOTEBOOKS = {
    "01_epoll_tour.ipynb": NB01,
    "02_backpressure.ipynb": NB02,
    "03_realtime_asr.ipynb": NB03,
    "04_live_microphone.ipynb": NB04,
    "05_segmentation_compare.ipynb": NB05,
    "07_corpus_on_a_cluster.ipynb": NB07,
}


def build(cells: list) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> None:
    import sys

    wanted = sys.argv[1:] or list(NOTEBOOKS)  # e.g. ``make_notebooks.py 07_corpus_on_a_cluster.ipynb``
    unknown = [n for n in wanted if n not in NOTEBOOKS]
    if unknown:
        raise SystemExit(f"unknown notebook(s) {unknown}; one of {list(NOTEBOOKS)}")
    for name in wanted:
        cells = NOTEBOOKS[name]
        nb = build(cells)
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote {name} ({len(cells)} cells)")


if __name__ == "__main__":
    main()
