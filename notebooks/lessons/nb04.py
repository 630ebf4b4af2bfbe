"""Lesson 04_live_microphone: its cells."""

from __future__ import annotations

from .common import code, md

# ---------------------------------------------------------------------------------------
# 04 — live microphone
# ---------------------------------------------------------------------------------------

SETUP_04 = '''\
import logging
import re
import shutil
import tempfile
from pathlib import Path

from spear_lab import (AudioUnavailable, Session, VirtualMic, VirtualMicError, devices,
                       make_speech, wer)
from spear_lab.views import BrowserMic, timeline_figure

logging.getLogger("spear_lab").setLevel(logging.ERROR)'''

CELLS = [
    md('''
# 4 · A live microphone

The same guest as in notebook 3, now listening to a live microphone. There are two of
them, and which one is "the microphone" depends on where the kernel runs:

| Where the kernel runs | Use | What the guest's `source:"device"` reads |
|---|---|---|
| on the machine you speak to (your laptop) | `Session(mic="device")` | the input device, through PortAudio (`sounddevice`) |
| far away (JupyterHub, a lab server, a cloud VM) | `Session(mic="browser")` | your browser's microphone, through a widget |

Part 1 uses the device. On a machine without a sound card (CI), it starts a **virtual
microphone** — a private PulseAudio daemon whose default source hears whatever is played
into its null sink — and plays test speech into it, in real time. Part 2 uses the browser.
'''),
    code(SETUP_04),
    md('''
## Part 1 · The kernel's input device

### Test speech

With a real microphone this is what you would say; with the virtual one, `paplay` plays it
into the sink and the device hears it.
'''),
    code('''
workdir = Path(tempfile.mkdtemp(prefix="spear-nb04-"))
sentences = ["please call me back when you get home tonight", "the weather is very nice today"]
speech = make_speech(sentences, workdir / "speech.wav", pause_s=1.0)
seconds = speech.duration_s + 1.5
print(f"say: {' / '.join(sentences)}  ({seconds:.0f} s)")'''),
    md('''
### Is there an input device?
'''),
    code('''
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
### Record and transcribe

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
reads = session.trace.hostcalls(handle.name, "mic_read")
t0 = reads[len(reads) // 2]["t"]
timeline_figure(session.trace, handle.name, t_range=(t0, t0 + 0.4))'''),
    md('''
## Part 2 · The browser's microphone

When the kernel runs far from you, `sounddevice` finds no input device there — but your
browser has your microphone. `BrowserMic()` is a widget: shown in the notebook, it asks the
browser for the microphone (allow it when the browser asks), shows the permission state
and a level meter, and streams 20 ms chunks of 16-bit audio, resampled in the page to
24 kHz, to the kernel over the notebook's own connection. `Session(mic=widget)` (or
`mic="browser"`: the newest widget) makes a guest's `source:"device"` read from it.

The mic fd behaves as it does for a device: frames of the configured size, drop-oldest
when the guest falls behind, and EPOLLERR with `last_error` naming the cause when the
permission is refused or the microphone goes away. Gaps (a hidden tab whose audio was
suspended, a stalled network) are counted in `dropped_frames`, and GET_STATUS reports the
arrival jitter (`jitter_ms`, p50/p99). Run unattended (CI, nbval) there is no browser at
all: the cell below then says so and Part 2 is skipped.
'''),
    code('''
browser_mic = BrowserMic(rate=24000)
browser_mic'''),
    code('''
state = await browser_mic.wait_ready(timeout=5)
print("browser microphone:", state, browser_mic.error or "")
if state == "granted":
    print(f"speak now, for {seconds:.0f} s: {' / '.join(sentences)}")
    live = Session(mic=browser_mic)
    live_handle = live.start("realtime_asr", backend="local",
                             env={"SPEAR_MAX_FRAMES": str(max_frames)})
else:
    live = live_handle = None
    print("no browser microphone here: Part 2 is skipped")'''),
    code('''
if live_handle is not None:
    live_result = await live_handle
    print("\\n".join(line for line in live_result.stdout.splitlines()
                    if line.startswith(("completed", "summary"))))
    print(browser_mic.feed.stats())
    live.close()'''),
    md('''
## Check

The claims: the device (real or virtual) delivered every frame the guest asked for with
none dropped; with the virtual microphone (or the file), the speech comes back as text.
When a browser microphone was granted, the guest read every frame it asked for from it.
'''),
    code('''
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
    assert wer(" ".join(sentences), " ".join(texts)) < 0.6
if live_handle is not None:
    assert live_result.exit_code == 0 and f"frames={max_frames}" in live_result.stdout
session.close()
browser_mic.close()  # the saved notebook keeps a static picture of it
if vmic is not None:
    activated.__exit__(None, None, None)
    vmic.stop()
shutil.rmtree(workdir)
print("all claims hold")'''),
]
