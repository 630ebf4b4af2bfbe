"""The browser's microphone, end to end, in real JupyterLab and headless Chromium (issue 20).

Chromium's fake capture device plays the bundled speech recording as the microphone
(``--use-fake-device-for-media-stream --use-file-for-fake-audio-capture=<wav>%noloop``).
A notebook (written here, :data:`CELLS`) shows :class:`spear_lab.views.BrowserMic`,
starts the ``realtime_asr`` guest through the local backend with ``Session(mic=widget)``,
and the test presses the widget's *Start microphone* button once the guest waits, so the
recording starts with the guest listening.  Asserted:

- the transcript matches the recording's text (normalised WER <= 0.35, the bound of the
  file-source test in tests/test_cli.py);
- timing: audio arrived in sustained real time (stream seconds / wall seconds within 3 %),
  no gaps, the guest read every frame it asked for, the drop count is reported
  (``dropped=N`` in the guest's summary) and small, and the jitter figure is reported;
- refusal: with ``--deny-permission-prompts`` (no fake UI) the page reports the refusal,
  and the guest's mic fd gets EPOLLERR with ``last_error`` naming it.

Screenshots and the notebook's result go to ``tests/browser/.screenshots/browser_mic/``.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import wave

import browserutil as bu
import nbformat
import numpy as np
import pytest

from spear_lab import demo_speech, wer

OUT = bu.SCREENSHOTS / "browser_mic"
FAKE = ("--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required")

pytestmark = pytest.mark.timeout(600)


def notebook(cells: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c.strip("\n")) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


#: The notebook of the streaming test; RESULT is where it writes what it saw.
CELLS = [
    '''
import json, time
from spear_lab import Session
from spear_lab.views import BrowserMic

mic = BrowserMic(rate=24000, autostart=False)
received = []  # every sample the page sent, to compare with the WAV


class Recorder:
    stopped = False

    def _on_chunk(self, samples, pos, gap, now):
        received.append(samples[:, 0].copy())


mic.feed.attach(Recorder())
mic''',
    '''
session = Session(mic=mic)
handle = session.start("realtime_asr", backend="local",
                       env={"SPEAR_MAX_FRAMES": "{max_frames}", "SPEAR_DRAIN_MS": "15000"})
print("GUEST", "STARTED")''',
    '''
result = await handle.wait_async({timeout})
hist = list(mic.feed.history)
stats = mic.feed.stats()
out = {"exit": result.exit_code, "stdout": result.stdout, "stats": stats,
       "transcript": session.trace.transcript_text(handle.name),
       "history": hist, "state": mic.state, "bad_messages": mic.bad_messages}
open("{result}", "w").write(json.dumps(out))
import numpy as np
np.save("browser_mic_received.npy", np.concatenate(received))
session.close()
mic.close()
print("DONE", stats)''',
]

#: The refusal notebook: the widget asks at once and is refused.
REFUSE_CELLS = [
    '''
import json
from spear_lab import Session
from spear_lab.views import BrowserMic

mic = BrowserMic(rate=24000)
mic''',
    '''
session = Session(mic=mic)
result = await session.run_async("realtime_asr", backend="stub", timeout=60)
open("{result}", "w").write(json.dumps({"exit": result.exit_code, "stdout": result.stdout,
                                         "state": mic.state, "error": mic.error}))
session.close()
print("DONE", mic.state)''',
]


def fill(cells: list[str], **values) -> list[str]:
    out = []
    for c in cells:
        for k, v in values.items():
            c = c.replace("{" + k + "}", str(v))
        out.append(c)
    return out


def open_page(playwright_sync, jupyterlab, args):
    browser = bu.launch_chromium(playwright_sync, args)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    OUT.mkdir(parents=True, exist_ok=True)
    console = open(OUT / "console.txt", "a")  # noqa: SIM115  (closed with the process)
    page.on("console", lambda m: console.write(f"{m.type}: {m.text}\n") or console.flush())
    bu.open_lab(page, jupyterlab)
    return browser, page


def run_notebook(page, jupyterlab, name: str, cells: list[str], timeout: float,
                 on_output: tuple[str, callable] | None = None) -> None:
    nbformat.write(notebook(cells), jupyterlab.root / name)
    bu.open_notebook(page, name)
    bu.run_all(page, name)
    if on_output is not None:
        text, action = on_output
        deadline = time.monotonic() + 120
        while text not in bu.page_text(page):  # the cells print it in two words
            assert time.monotonic() < deadline, f"{text!r} never appeared: {bu.run_state(page, name)}"
            time.sleep(0.25)
        action()
    bu.wait_run_finished(page, name, timeout)


def with_lead_in(src, dest, seconds: float = 1.0):
    """``dest``: the mono pcm16 WAV ``src`` after ``seconds`` of silence."""
    with wave.open(str(src)) as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    with wave.open(str(dest), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(bytes(2 * int(rate * seconds)) + pcm)
    return dest


def match_db(received: np.ndarray, wav_path) -> float:
    """SNR (dB) of ``received`` (float samples) against the WAV, after the best alignment
    (cross-correlation, then a fractional delay in 0.05-sample steps: two resamplings
    leave one) and gain."""
    with wave.open(str(wav_path)) as w:
        ref = np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768.0
    received = received.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(received) + len(ref))))
    corr = np.fft.irfft(np.fft.rfft(received, n) * np.conj(np.fft.rfft(ref, n)), n)
    k = int(np.argmax(corr))
    lag = k - n if k > n - len(ref) else k  # negative: the received audio starts early
    if lag >= 0:
        seg, ref = received[lag:lag + len(ref)], ref
    else:
        seg, ref = received, ref[-lag:]
    m = min(len(seg), len(ref))
    seg = seg[:m]
    spec, freqs = np.fft.rfft(ref[:m]), np.fft.rfftfreq(m)
    best = -np.inf
    for d in np.arange(-1.0, 1.0001, 0.05):
        shifted = np.fft.irfft(spec * np.exp(-2j * np.pi * freqs * d), m)
        gain = np.dot(seg, shifted) / np.dot(shifted, shifted)
        err = seg - gain * shifted
        best = max(best, 10 * np.log10(np.sum((gain * shifted) ** 2) / np.sum(err ** 2)))
    return float(best)


def summary(stdout: str) -> dict[str, int]:
    line = [ln for ln in stdout.splitlines() if ln.startswith("summary:")][-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line)}


def test_browser_microphone_streams_speech_to_the_guest(jupyterlab, playwright_sync, tmp_path):
    speech = demo_speech()
    wav = with_lead_in(speech.path, tmp_path / "speech.wav")  # as a person: click, then speak
    with wave.open(str(wav)) as w:
        seconds = w.getnframes() / w.getframerate()
    max_frames = int((seconds + 3.0) / 0.020)
    cells = fill(CELLS, max_frames=max_frames, timeout=240, result="browser_mic_result.json")
    browser, page = open_page(playwright_sync, jupyterlab, FAKE + (
        "--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={wav}%noloop"))
    levels: list[float] = []
    try:
        def start_mic():
            bu.screenshot(page, OUT, "stream-before-start")
            page.locator(".spear-mic-button").first.click()
            widget = page.locator(".spear-mic").first
            try:
                page.wait_for_selector(
                    '.spear-mic:not([data-state="idle"]):not([data-state="prompt"])', timeout=20_000)
            finally:
                bu.screenshot(page, OUT, "stream-after-click")
            assert widget.get_attribute("data-state") == "granted", widget.inner_text()
            for _ in range(40):  # the level meter moves with the speech
                bar = page.locator(".spear-mic-bar")
                if bar.count():
                    width = bar.first.evaluate("n => n.style.width", timeout=5000)
                    levels.append(float(width.rstrip("%") or 0))
                time.sleep(0.1)
            bu.screenshot(page, OUT, "stream-listening")

        try:
            run_notebook(page, jupyterlab, "browser_mic.ipynb", cells, 300,
                         on_output=("GUEST STARTED", start_mic))
        finally:
            bu.screenshot(page, OUT, "stream-done")
            bu.save_notebook(page, "browser_mic.ipynb")
            shutil.copy(jupyterlab.root / "browser_mic.ipynb", OUT / "stream-notebook.ipynb")
        saved = nbformat.read(jupyterlab.root / "browser_mic.ipynb", as_version=4)
        result_file = jupyterlab.root / "browser_mic_result.json"
        assert result_file.exists(), bu.describe_outputs(page, "browser_mic.ipynb")
        res = json.loads(result_file.read_text())
        (OUT / "stream-result.json").write_text(json.dumps(res, indent=1))
        received = np.load(jupyterlab.root / "browser_mic_received.npy")
        np.save(OUT / "stream-received.npy", received)
    finally:
        browser.close()
        jupyterlab.shutdown_kernels("browser_mic.ipynb")

    out = res["stdout"]
    stats = summary(out)
    assert res["exit"] == 0, out
    assert f"mic_end reason=max_frames frames={max_frames}" in out, out
    # the transcript
    hyp = " ".join(res["transcript"])
    score = wer(speech.text, hyp)
    assert score <= 0.35, (score, res["transcript"])
    # timing: sustained real time, no gaps, drops reported and small, jitter reported
    st = res["stats"]
    assert st["state"] == "granted" and res["bad_messages"] == 0
    assert st["gap_seconds"] == 0, st
    assert st["seconds"] >= max_frames * 0.020, st
    # arrival time against stream time, fitted over every chunk: the slope is the rate
    hist = np.array(res["history"], dtype=float)
    stream_s = hist[:, 0] / 24000
    ratio = 1.0 / np.polyfit(stream_s, hist[:, 2], 1)[0]
    capture_ratio = 1.0 / np.polyfit(stream_s, hist[:, 1], 1)[0]  # the page's own clock
    assert 0.98 <= ratio <= 1.02 and 0.98 <= capture_ratio <= 1.02, (ratio, capture_ratio)
    assert stream_s[-1] - stream_s[0] >= max_frames * 0.020 - 0.1
    assert max(levels) >= 30, levels  # speech at RMS ~0.15 is about -16 dBFS: ~70 %
    # the audio itself: Chromium resamples the 24 kHz file to its 44.1 kHz context, the
    # page's AudioWorklet back to 24 kHz; aligned, it matches the file closely
    snr = match_db(received, wav)
    assert snr >= 30, snr
    # the static copy saved with the notebook shows the state
    datas = [o["data"] for o in saved.cells[0].outputs if "data" in o]
    assert datas and "application/vnd.jupyter.widget-view+json" not in datas[0], datas
    html = datas[0]["text/html"]
    assert 'data-state="granted"' in html and "Fake Default Audio Input" in html, html
    assert stats["dropped"] >= 0 and stats["dropped"] <= max_frames // 100, stats
    # reported; on this shared 2-core machine p99 has been 120-660 ms (the kernel's comm
    # handling competes with the recogniser), so only a sanity bound
    assert st["jitter_ms"]["p50"] is not None and st["jitter_ms"]["p99"] < 2000, st
    print(f"browser mic: WER {score:.2f}, realtime ratio {ratio:.4f} (capture {capture_ratio:.4f}), "
          f"dropped {stats['dropped']}, max level {max(levels):.0f} %, SNR {snr:.1f} dB, "
          f"jitter p50 {st['jitter_ms']['p50']} ms p99 {st['jitter_ms']['p99']} ms, "
          f"transcript {res['transcript']}")


def test_refused_permission_is_epollerr_in_the_guest(jupyterlab, playwright_sync, tmp_path):
    wav = tmp_path / "speech.wav"
    shutil.copy(demo_speech().path, wav)
    cells = fill(REFUSE_CELLS, result="browser_mic_refused.json")
    browser, page = open_page(playwright_sync, jupyterlab, FAKE + (
        "--deny-permission-prompts", f"--use-file-for-fake-audio-capture={wav}"))
    try:
        run_notebook(page, jupyterlab, "browser_mic_refused.ipynb", cells, 120)
        page.wait_for_selector('.spear-mic[data-state="denied"]', timeout=10_000)
        bu.screenshot(page, OUT, "refused")
        shown = page.locator(".spear-mic-error").first.inner_text()
        res = json.loads((jupyterlab.root / "browser_mic_refused.json").read_text())
        (OUT / "refused-result.json").write_text(json.dumps(res, indent=1))
    finally:
        browser.close()
        jupyterlab.shutdown_kernels("browser_mic_refused.ipynb")

    assert "NotAllowedError" in shown
    assert res["state"] == "denied" and "NotAllowedError" in res["error"]
    out = res["stdout"]
    assert res["exit"] == 3, out  # realtime_asr: EPOLLERR while streaming
    mic_status = json.loads(out.split("status mic: ", 1)[1].splitlines()[0])
    assert "permission refused" in mic_status["last_error"], mic_status
    assert "NotAllowedError" in mic_status["last_error"], mic_status
    assert mic_status["source"] == "browser"


def test_lesson_04_runs_its_browser_path(jupyterlab, playwright_sync, tmp_path):
    """Notebook 04 in JupyterLab with the fake microphone playing the lesson's own test
    speech (1 s of silence first): Part 2 is granted, its guest transcribes the speech."""
    from spear_lab import make_speech

    sentences = ["please call me back when you get home tonight", "the weather is very nice today"]
    speech = make_speech(sentences, tmp_path / "speech.wav", pause_s=1.0)
    wav = with_lead_in(speech.path, tmp_path / "lead_in.wav")
    name = "04_live_microphone.ipynb"
    shutil.copy(bu.SCREENSHOTS.parents[2] / "notebooks" / name, jupyterlab.root / name)
    browser, page = open_page(playwright_sync, jupyterlab, FAKE + (
        "--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={wav}%noloop"))
    try:
        bu.open_notebook(page, name)
        bu.run_all(page, name)
        bu.wait_run_finished(page, name, 400)
        bu.screenshot(page, OUT, "lesson04-done")
        bu.save_notebook(page, name)
        saved = nbformat.read(jupyterlab.root / name, as_version=4)
    finally:
        browser.close()
        jupyterlab.shutdown_kernels(name)

    texts = ["".join(o.get("text", "") for o in c.outputs if o.get("output_type") == "stream")
             for c in saved.cells if c.cell_type == "code"]
    errors = [o for c in saved.cells if c.cell_type == "code" for o in c.outputs
              if o.get("output_type") == "error"]
    assert not errors, errors
    assert any("browser microphone: granted" in t for t in texts), texts
    assert "all claims hold" in texts[-1], texts[-1]
    part2 = next(t for t in texts if "summary:" in t and "'state': 'granted'" in t)
    hyp = " ".join(ln.split(": ", 1)[1] for ln in part2.splitlines() if ln.startswith("completed "))
    score = wer(" ".join(sentences), hyp)
    print(f"lesson 04 browser path: WER {score:.2f}: {hyp!r}")
    assert score < 0.6, (score, part2)


GAP_CELLS = [
    '''
import json
from spear_lab import Session
from spear_lab.views import BrowserMic

mic = BrowserMic(rate=24000)
mic''',
    '''
await mic.wait_ready(30)
session = Session(mic=mic)
result = await session.run_async("realtime_asr", backend="stub",
                                 env={"SPEAR_MAX_FRAMES": "400"}, timeout=60)
open("{result}", "w").write(json.dumps({"stdout": result.stdout, "stats": mic.feed.stats()}))
session.close()
mic.close()
print("DONE")''',
]


def test_a_suspended_audio_context_is_counted_as_dropped(jupyterlab, playwright_sync, tmp_path):
    """The page's audio stops for 1.5 s (its AudioContext suspended, as a hidden tab's may
    be): the missing audio is counted in the guest's dropped_frames, not hidden."""
    wav = tmp_path / "speech.wav"
    shutil.copy(demo_speech().path, wav)
    cells = fill(GAP_CELLS, result="browser_mic_gap.json")
    browser, page = open_page(playwright_sync, jupyterlab, FAKE + (
        "--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={wav}"))
    try:
        nbformat.write(notebook(cells), jupyterlab.root / "browser_mic_gap.ipynb")
        bu.open_notebook(page, "browser_mic_gap.ipynb")
        bu.run_all(page, "browser_mic_gap.ipynb")
        page.wait_for_selector('.spear-mic[data-state="granted"]', timeout=30_000)
        time.sleep(2.0)
        page.evaluate("() => document.querySelector('.spear-mic').spearCapture.ctx.suspend()")
        time.sleep(1.5)
        page.evaluate("() => document.querySelector('.spear-mic').spearCapture.ctx.resume()")
        bu.wait_run_finished(page, "browser_mic_gap.ipynb", 120)
        res = json.loads((jupyterlab.root / "browser_mic_gap.json").read_text())
        (OUT / "gap-result.json").write_text(json.dumps(res, indent=1))
    finally:
        browser.close()
        jupyterlab.shutdown_kernels("browser_mic_gap.ipynb")

    stats = summary(res["stdout"])
    gap = res["stats"]["gap_seconds"]
    print(f"suspended 1.5 s: gap {gap} s, dropped {stats['dropped']} frames")
    assert 1.2 <= gap <= 1.9, res["stats"]
    assert abs(stats["dropped"] - gap / 0.020) <= 2, (stats, gap)
