"""Lesson 04_live_microphone: its cells."""

from __future__ import annotations

from .common import SETUP, code, md  # noqa: F401

# ---------------------------------------------------------------------------------------
# 04 — live microphone
# ---------------------------------------------------------------------------------------

CELLS = [
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
