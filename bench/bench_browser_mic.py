"""Browser microphone vs virtual microphone: frame-arrival jitter and capture-to-read latency.

Both play the same test signal (``SECONDS`` s of silence with a 5 ms 1 kHz click every
0.5 s, 24 kHz mono) and feed the ``realtime_asr`` guest (stub backend, so the recogniser
does not load the machine) through ``source:"device"``:

- **browser**: ``mic=BrowserMic()`` in a notebook run by real JupyterLab, in headless
  Chromium whose fake capture device plays the signal; the page resamples (44.1 kHz
  context -> 24 kHz) in its AudioWorklet and sends 20 ms chunks over the comm;
- **virtual**: ``mic="device"`` on the private PulseAudio daemon (``VirtualMic``) that
  ``paplay`` plays the signal into, captured by PortAudio at 48 kHz.

Measured, in the same run:

- jitter: each chunk's (browser: comm message; virtual: PortAudio callback) arrival at the
  kernel against the capture clock (its stream position), as the lateness behind the
  earliest, p50/p99 ms — the browser figure is GET_STATUS ``jitter_ms``;
- latency from capture of a frame's last sample to the guest's ``mic_read`` returning it
  (recorded in ``MicFd.read``, the code under the hostcall), p50/p99 ms.  Browser: the
  capture time is the page's ``Date.now()`` when its AudioWorklet produced the sample (so
  Chromium's capture pipeline before the worklet is not included); virtual: the time
  ``paplay`` was started plus the click's offset in the file (so paplay's start-up and
  PulseAudio's buffering are included).  Same machine, same wall clock.

Prints both, and the browser / virtual ratios.  Needs chromium, JupyterLab, Playwright,
PulseAudio (``apt-get install chromium pulseaudio pulseaudio-utils libasound2-plugins``).

Run: ``.venv/bin/python bench/bench_browser_mic.py [seconds]`` (default 20).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from spear_lab.trace.stats import percentile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "browser"))
RATE, FRAME = 24000, 480
CLICK_EVERY, CLICK_MS = 0.5, 5

KERNEL_RECORDER = '''
import time
from spear_lab.fds import mic as _micfd

READS = []
_orig_read = _micfd.MicFd.read

def _read(self, deliver):
    frame = self.queue[0] if self.queue else None
    rc = _orig_read(self, deliver)
    if rc >= 0 and frame is not None:
        READS.append((time.time(), frame))
    return rc

_micfd.MicFd.read = _read
'''

BROWSER_CELLS = [
    KERNEL_RECORDER + '''
from spear_lab.views import BrowserMic
mic = BrowserMic(rate=24000)
mic''',
    '''
import asyncio, json
import numpy as np
from spear_lab import Session
from spear_lab.audio.browser import BrowserSource
state = await mic.wait_ready(30)
session = Session(mic=mic)
handle = session.start("realtime_asr", backend="stub", env={"SPEAR_MAX_FRAMES": "{frames}"})
await asyncio.sleep(1.0)
src = [s for s in session.context.sources.live() if isinstance(s, BrowserSource)][0]
result = await handle.wait_async({timeout})
frames = np.frombuffer(b"".join(f for _, f in READS), "<i2")
np.save("reads.npy", frames)
json.dump({"state": state, "exit": result.exit_code, "first_pos": src.first_pos,
           "read_t": [t for t, _ in READS], "history": list(mic.feed.history),
           "offsets": list(src._offsets), "jitter": src.jitter_ms(),
           "summary": result.stdout.splitlines()[-1]}, open("bench.json", "w"))
session.close()
mic.close()
print("BENCH", "DONE")''',
]


def clicks(seconds: float) -> tuple[np.ndarray, list[float]]:
    """The test signal (int16) and the click onsets (s)."""
    x = np.zeros(int(seconds * RATE), dtype=np.float64)
    onsets = list(np.arange(CLICK_EVERY, seconds - 0.5, CLICK_EVERY))
    n = RATE * CLICK_MS // 1000
    burst = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(n) / RATE)
    for o in onsets:
        i = round(o * RATE)
        x[i:i + n] = burst
    return (x * 32767).astype(np.int16), onsets


def write_wav(path: Path, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return path


def detect(samples: np.ndarray, threshold: float = 0.1 * 32767) -> list[int]:
    """Sample indices where a click starts (after at least 0.2 s below threshold)."""
    loud = np.flatnonzero(np.abs(samples.astype(np.float64)) > threshold)
    out, last = [], -10 * RATE
    for i in loud:
        if i - last > 0.2 * RATE:
            out.append(int(i))
        last = i
    return out


def pct(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "n": len(values)}


def run_browser(wav: Path, seconds: float, work: Path) -> dict:
    import browserutil as bu
    import nbformat
    from playwright.sync_api import sync_playwright

    root = work / "lab"
    root.mkdir()
    frames = int((seconds - 1.0) / 0.020)
    cells = [c.replace("{frames}", str(frames)).replace("{timeout}", str(seconds + 60))
             for c in BROWSER_CELLS]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, root / "bench.ipynb")
    lab = bu.start_jupyterlab(root, work / "lab.log")
    try:
        with sync_playwright() as p:
            browser = bu.launch_chromium(p, (
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                "--autoplay-policy=no-user-gesture-required",
                f"--use-file-for-fake-audio-capture={wav}"))
            try:
                page = browser.new_context().new_page()
                bu.open_lab(page, lab)
                bu.open_notebook(page, "bench.ipynb")
                bu.run_all(page, "bench.ipynb")
                bu.wait_run_finished(page, "bench.ipynb", seconds + 180)
            finally:
                browser.close()
    finally:
        lab.stop()
    res = json.loads((root / "bench.json").read_text())
    reads = np.load(root / "reads.npy")
    hist = np.asarray(res["history"], dtype=np.float64)  # (pos_end, t_capture, t_arrival)
    read_t = np.asarray(res["read_t"])
    ends = res["first_pos"] + FRAME * (np.arange(len(read_t)) + 1)
    k = np.searchsorted(hist[:, 0], ends)
    ok = k < len(hist)
    cap = hist[k[ok], 1] - (hist[k[ok], 0] - ends[ok]) / RATE
    lat = (read_t[ok] - cap) * 1000
    late = (np.asarray(res["offsets"]) - min(res["offsets"])) * 1000
    return {"jitter": pct(late), "latency": pct(lat), "summary": res["summary"],
            "clicks_heard": len(detect(reads)), "state": res["state"]}


def run_virtual(wav: Path, seconds: float, onsets: list[float], work: Path) -> dict:
    from spear_lab import Session, VirtualMic, devices
    from spear_lab.audio import device as devmod
    from spear_lab.fds import mic as micfd

    arrivals: list[tuple[float, int, int]] = []
    reads: list[tuple[float, bytes]] = []
    orig_audio, orig_read = devmod.DeviceSource._on_audio, micfd.MicFd.read

    def on_audio(self, indata, frames, time_info, status):
        orig_audio(self, indata, frames, time_info, status)
        arrivals.append((time.monotonic(), self.ring.written, self.rate))

    def read(self, deliver):
        frame = self.queue[0] if self.queue else None
        rc = orig_read(self, deliver)
        if rc >= 0 and frame is not None:
            reads.append((time.time(), frame))
        return rc

    devmod.DeviceSource._on_audio, micfd.MicFd.read = on_audio, read
    vm = VirtualMic(work / "pulse").start()
    try:
        with vm.activated():
            devices(refresh=True)
            with Session(mic="device") as session:
                frames = int((seconds + 1.0) / 0.020)
                handle = session.start("realtime_asr", backend="stub",
                                       env={"SPEAR_MAX_FRAMES": str(frames)})
                time.sleep(1.0)
                t0 = time.time()
                player = vm.play(wav, wait=False)
                result = handle.wait(seconds + 60)
                player.wait(30)
    finally:
        devmod.DeviceSource._on_audio, micfd.MicFd.read = orig_audio, orig_read
        vm.stop()
    pcm = np.frombuffer(b"".join(f for _, f in reads), "<i2")
    found = detect(pcm)
    lat = []
    for o, s in zip(onsets, found):  # k-th click heard = k-th click played
        j = s // FRAME
        end = (j + 1) * FRAME
        lat.append((reads[j][0] - (t0 + o + (end - s) / RATE)) * 1000)
    offs = [t - w / r for t, w, r in arrivals[10:]]  # skip the stream's start-up
    late = (np.asarray(offs) - min(offs)) * 1000
    return {"jitter": pct(late), "latency": pct(lat), "summary": result.stdout.splitlines()[-1],
            "clicks_heard": len(found)}


def main(seconds: float = 20.0) -> None:
    pcm, onsets = clicks(seconds)
    with tempfile.TemporaryDirectory(prefix="spear-bench-bmic-") as tmp:
        work = Path(tmp)
        wav = write_wav(work / "clicks.wav", pcm)
        virtual = run_virtual(wav, seconds, onsets, work)
        browser = run_browser(wav, seconds, work)
    print(f"signal: {seconds:.0f} s, {len(onsets)} clicks; guest realtime_asr, stub backend")
    for name, r in (("virtual", virtual), ("browser", browser)):
        print(f"{name:>8}: clicks heard {r['clicks_heard']:>3}  {r['summary']}")
    print(f"{'':>8}  {'jitter p50':>10} {'jitter p99':>10} {'lat p50':>8} {'lat p99':>8}  (ms)")
    for name, r in (("virtual", virtual), ("browser", browser)):
        j, lat = r["jitter"], r["latency"]
        print(f"{name:>8}  {j['p50']:10.1f} {j['p99']:10.1f} {lat['p50']:8.1f} {lat['p99']:8.1f}"
              f"  (n={j['n']} chunks, {lat['n']} frames)")
    ratio = {k: browser[m][q] / max(virtual[m][q], 1e-9)
             for k, m, q in (("jitter p50", "jitter", "p50"), ("jitter p99", "jitter", "p99"),
                             ("latency p50", "latency", "p50"), ("latency p99", "latency", "p99"))}
    print("browser / virtual: " + ", ".join(f"{k} x{v:.2f}" for k, v in ratio.items()))


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0)
