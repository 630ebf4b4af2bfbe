"""Lesson 02c_mic_fds: microphone fds, framing, sources and drops (R56–R64)."""

from __future__ import annotations

from .common import SETUP_ABI, code, md

STORED = True

UNSHOWABLE = {
    "R64": "it needs an audio input device: the lesson captures live from a real one when the "
           "machine has it, else from the virtual PulseAudio microphone (Debian's pulseaudio "
           "package; CI has it), and prints why when neither exists",
}

CELLS = [
    md('''
# 2c · Microphone fds: framing, sources and drops

A **mic** fd delivers pcm16 audio in fixed-size *frames*, one per `mic_read`. The guest
never names a device or a file: it asks for a `source` (`"device"`, `"file"` or `"stub"`)
and a format, and the **host** decides what that means — a real input, a WAV file, or
generated frames. The **stub** source is a clock that produces one frame every `frame_ms`,
so everything below but the device section is deterministic.
'''),
    code(SETUP_ABI),
    code('''
import base64
import json
import tempfile
import time
from pathlib import Path

from spear_lab import MicCtl, Session

host = Host()


def mic_status(fd):
    return json.loads(host.mic_ctl(fd, MicCtl.GET_STATUS))


def configure(fd, **fields):
    return host.mic_ctl(fd, MicCtl.SET_PARAM, json.dumps(fields).encode())


def watch(fd, events):
    ep = host.spear_epoll_create()
    assert host.spear_epoll_ctl(ep, EpollOp.ADD, fd, events) == 0
    return ep


def ready(ep, timeout_ms=0):
    return [mask_names(ev) for _, ev in host.spear_epoll_wait(ep, 8, timeout_ms)]'''),
    md('''
## Nothing before SET_PARAM (R58)

`mic_create` captures nothing: no configuration, not running, empty queue, no readiness
bits. So a read is `-EAGAIN` (nothing to read *yet*), and GET_STATUS says `"config":null`
and `"running":false`.
'''),
    code('''
mic = host.mic_create()
print("mic_read ->", errno_name(host.mic_read(mic)))
print(host.mic_ctl(mic, MicCtl.GET_STATUS).decode())''',
         rules={"R58": 'mic_read -> -EAGAIN\n{"config":null,"dropped_frames":0,"generation":0,"last_error":null,'
                       '"max_queue_bytes":524288,"queue_bytes":0,"running":false'}),
    md('''
## A stub microphone: 960-byte frames, and HUP after close (R56)

24000 Hz, mono, 20 ms: `floor(24000 × 20 / 1000)` = 480 samples of 2 bytes = **960 bytes**
per frame, every frame. The stub queues one every 20 ms, so a wait of up to 500 ms sees
`EPOLLIN` after about 20 ms. After `mic_close` the fd stays in the table, closed; a watcher
that asked for `EPOLLHUP` is told so.
'''),
    code('''
print("SET_PARAM ->", errno_name(configure(mic, source="stub", sample_rate_hz=24000, channels=1, frame_ms=20)))
ep = watch(mic, EPOLLIN | EPOLLHUP)
print("wait(500):", ready(ep, 500))
frames = []
while len(frames) < 3:  # one frame per read; the next one may need 20 ms more
    if isinstance(frame := host.mic_read(mic), bytes):
        frames.append(frame)
    else:
        ready(ep, 500)
print("frame sizes:", [len(f) for f in frames])
print("mic_close ->", errno_name(host.mic_close(mic)))
print("wait(0) after close:", ready(ep, 0))''',
         rules={"R56": "wait(500): [['EPOLLIN']]\nframe sizes: [960, 960, 960]\nmic_close -> OK\n"
                       "wait(0) after close: [['EPOLLHUP']]"}),
    md('''
## The stub's pattern carries over between frames (R57)

`stub_pcm16_base64` gives the stub a byte pattern to loop over instead of zeros. Its
position carries over from one frame to the next, so a pattern and a frame of different
lengths do not restart together: with the 8-byte pattern `01 00 02 00 03 00 04 00`
(`AQACAAMABAA=`) and 20-byte frames (1000 Hz, 10 ms: 10 samples), the first frame starts at
pattern byte 0 and the second at byte 4, because 20 mod 8 = 4.
'''),
    code('''
mic = host.mic_create()
configure(mic, source="stub", sample_rate_hz=1000, frame_ms=10, stub_pcm16_base64="AQACAAMABAA=")
ep = watch(mic, EPOLLIN)
got = []
while len(got) < 2:
    ready(ep, 500)
    if isinstance(frame := host.mic_read(mic), bytes):
        got.append(frame)
for n, frame in enumerate(got, 1):
    print(f"frame {n} ({len(frame)} bytes):", frame.hex(" "))
_ = host.mic_close(mic)''',
         rules={"R57": "frame 1 (20 bytes): 01 00 02 00 03 00 04 00 01 00 02 00 03 00 04 00 01 00 02 00\n"
                       "frame 2 (20 bytes): 03 00 04 00 01 00"}),
    md('''
## Drop-oldest: a slow reader loses old audio, never the newest (R62)

The capture queue is bounded by `max_queue_bytes`. After each new frame, while the queue
holds more than the cap, the **oldest** frame is dropped and `dropped_frames` goes up. With
a cap of 2000 bytes and 960-byte frames the queue holds at most 2 frames (1920 bytes). We
read nothing for a while and watch.
'''),
    code('''
mic = host.mic_create()
configure(mic, source="stub", max_queue_bytes=2000)
seen, deadline = [], time.monotonic() + 5
while time.monotonic() < deadline and (not seen or seen[-1]["dropped_frames"] < 5):
    seen.append(mic_status(mic))
    time.sleep(0.005)
drops = [s["dropped_frames"] for s in seen]
print("most bytes ever queued:", max(s["queue_bytes"] for s in seen), "= 2 frames of 960")
print("dropped_frames grew while nobody read:", drops[-1] >= 5, "| never went down:", drops == sorted(drops))
_ = host.mic_close(mic)''',
         rules={"R62": "most bytes ever queued: 1920 = 2 frames of 960\n"
                       "dropped_frames grew while nobody read: True | never went down: True"}),
    md('''
## Bad patterns are refused, and nothing changes (R61)

A SET_PARAM is validated as a whole before anything changes. A `stub_pcm16_base64` that is
not base64, or that decodes to more than 10 MiB (a host's memory is not the guest's to
fill), is `-EINVAL`, and the configuration that was running keeps running.
'''),
    code('''
mic = host.mic_create()
configure(mic, source="stub")
gen = mic_status(mic)["generation"]
too_big = base64.b64encode(bytes(10 * 1024 * 1024 + 2)).decode()
bad = configure(mic, source="stub", stub_pcm16_base64="!!!")
big = configure(mic, source="stub", stub_pcm16_base64=too_big)
print("not base64      ->", errno_name(bad))
print("10 MiB + 2 bytes ->", errno_name(big))
print("still running the old configuration:", mic_status(mic)["running"], "| generation unchanged:",
      mic_status(mic)["generation"] == gen)
_ = host.mic_close(mic)''',
         rules={"R61": "not base64      -> -EINVAL\n10 MiB + 2 bytes -> -EINVAL"}),
    md('''
## Commands, and no EPOLLOUT ever (R63)

`mic_ctl` knows commands 1–3 (SET_PARAM, GET_STATUS, LIST_DEVICES); 0 and 99 are
`-EINVAL`. A mic fd is read-only: it is **never** `EPOLLOUT`, even while it is running with
frames queued — a wait for OUT alone reports nothing, a wait for IN|OUT reports IN only.
'''),
    code('''
mic = host.mic_create()
print("mic_ctl cmd 0  ->", errno_name(host.mic_ctl(mic, 0)))
print("mic_ctl cmd 99 ->", errno_name(host.mic_ctl(mic, 99)))
configure(mic, source="stub")
both = watch(mic, EPOLLIN | EPOLLOUT)
ready(both, 500)
print("frames queued:", mic_status(mic)["queue_bytes"] > 0)
print("wait(0) for OUT only:", ready(watch(mic, EPOLLOUT), 0))
print("wait(0) for IN|OUT: ", ready(both, 0))
_ = host.mic_close(mic)''',
         rules={"R63": "mic_ctl cmd 0  -> -EINVAL\nmic_ctl cmd 99 -> -EINVAL\nframes queued: True\n"
                       "wait(0) for OUT only: []\nwait(0) for IN|OUT:  [['EPOLLIN']]"}),
    md('''
## When the device is not there (R59, R60)

What `source: "device"` opens is host policy. To make "no usable device" the same on every
machine (yours may have a microphone), this host is told to open an input device named
`no-such-microphone`: `Session(mic="device:no-such-microphone")`, whose Host we drive.

- With `fallback.to_stub: false` the guest said "the device or nothing": SET_PARAM returns
  `-EIO`, `running` is false, `last_error` says why, and `EPOLLERR` is reported. A later
  good SET_PARAM (`source: stub`) clears all of that — each SET_PARAM starts afresh.
- The default SET_PARAM `{}` asks for the device *with* the fallback (the default is
  `true`): it returns 0 and the stub runs, and GET_STATUS's `source` says so honestly.
'''),
    code('''
nodev = Session(mic="device:no-such-microphone")
h = nodev.host
mic = h.mic_create()
print("device, no fallback ->", errno_name(h.mic_ctl(mic, MicCtl.SET_PARAM, b'{"source":"device","fallback":{"to_stub":false}}')))
st = json.loads(h.mic_ctl(mic, MicCtl.GET_STATUS))
print("running:", st["running"], "| last_error:", st["last_error"])
ep = h.spear_epoll_create()
h.spear_epoll_ctl(ep, EpollOp.ADD, mic, EPOLLIN | EPOLLERR)
print("wait(0):", [mask_names(ev) for _, ev in h.spear_epoll_wait(ep, 8, 0)])
print("then source stub ->", errno_name(h.mic_ctl(mic, MicCtl.SET_PARAM, b'{"source":"stub"}')))
st = json.loads(h.mic_ctl(mic, MicCtl.GET_STATUS))
print("running:", st["running"], "| last_error:", st["last_error"], "| source:", st["source"])
print("wait(0) no longer ERR:", all(not ev & EPOLLERR for _, ev in h.spear_epoll_wait(ep, 8, 0)))''',
         rules={"R59": "device, no fallback -> -EIO\nrunning: False | last_error: input device not found: "
                       "no-such-microphone\nwait(0): [['EPOLLERR']]\nthen source stub -> OK\n"
                       "running: True | last_error: None | source: stub\nwait(0) no longer ERR: True"}),
    code('''
mic2 = h.mic_create()
print("SET_PARAM {} ->", errno_name(h.mic_ctl(mic2, MicCtl.SET_PARAM, b"{}")))
st = json.loads(h.mic_ctl(mic2, MicCtl.GET_STATUS))
print("running:", st["running"], "| source:", st["source"], "| config:", json.dumps(st["config"], sort_keys=True))
nodev.close()''',
         rules={"R60": "SET_PARAM {} -> OK\nrunning: True | source: stub"}),
    md('''
## A real device (R64)

The same framing from a real input: at 24000 Hz and 20 ms every frame is 960 bytes,
whatever rate the device itself runs at — the host mixes down, resamples and converts. On a
machine without a sound card (CI) we start a **virtual microphone**: a private PulseAudio
daemon, in a temporary directory, whose default source hears what is played into its null
sink (see lesson 4). We play test speech into it and capture 50 frames (one second) with
`fallback.to_stub: false`, so a stub could not pass for the device.
'''),
    code('''
workdir = Path(tempfile.mkdtemp(prefix="spear-nb02c-"))
try:
    found = spear_lab.devices()
except spear_lab.AudioUnavailable as exc:
    found = None
    print("no PortAudio:", exc)
vmic, activation = None, None
if found == []:
    try:
        vmic = spear_lab.VirtualMic(directory=workdir / "pulse").start()
        activation = vmic.activated()
        activation.__enter__()
        found = spear_lab.devices(refresh=True)
    except spear_lab.VirtualMicError as exc:
        print("no input device, and no virtual microphone:", exc)
print("an input device:", bool(found))'''),
    code('''
if found:
    live = Session(mic="device")
    h = live.host
    mic = h.mic_create()
    rc = h.mic_ctl(mic, MicCtl.SET_PARAM,
                   b'{"source":"device","fallback":{"to_stub":false},"sample_rate_hz":24000,"frame_ms":20}')
    player = None
    if vmic is not None:
        speech = spear_lab.make_speech(["hello this is a test"], workdir / "hello.wav")
        player = vmic.play(speech.path, wait=False)
    ep = h.spear_epoll_create()
    h.spear_epoll_ctl(ep, EpollOp.ADD, mic, EPOLLIN)
    sizes, deadline = [], time.monotonic() + 10
    while len(sizes) < 50 and time.monotonic() < deadline:
        if h.spear_epoll_wait(ep, 8, 500) and isinstance(frame := h.mic_read(mic), bytes):
            sizes.append(len(frame))
    st = json.loads(h.mic_ctl(mic, MicCtl.GET_STATUS))
    print("SET_PARAM ->", errno_name(rc), "| source:", st["source"])
    print("frames captured:", len(sizes), "| sizes:", sorted(set(sizes)))
    if player is not None:
        player.wait()
    live.close()
if activation is not None:
    activation.__exit__(None, None, None)
    vmic.stop()''',
         rules={"R64": "SET_PARAM -> OK | source: device\nframes captured: 50 | sizes: [960]"}),
    md('''
## Check
'''),
    code('''
import shutil

assert [len(f) for f in frames] == [960, 960, 960]
assert got[1][:4] == bytes.fromhex("03000400") and got[0][:8] == bytes.fromhex("0100020003000400")
assert max(s["queue_bytes"] for s in seen) <= 2000 and drops[-1] >= 5
assert not found or sizes == [960] * 50
host.shutdown()
shutil.rmtree(workdir)
print("all claims hold")'''),
]
