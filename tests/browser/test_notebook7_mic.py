"""The browser microphone widget in Jupyter Notebook 7 and headless Chromium (issue 20).

Issue 20 asks that :class:`spear_lab.views.BrowserMic` works in JupyterLab 4 *and*
Notebook 7; test_browser_mic.py covers JupyterLab, this covers Notebook 7
(``python -m notebook``, started by :func:`browserutil.start_notebook7`).

Chromium's fake capture device plays the bundled speech recording (looping) as the
microphone.  A notebook written here (:data:`CELLS`) shows the widget
(``autostart=False``), opens a mic fd on ``Session(mic=mic).host`` with
``source: "device"`` (no stub fallback) and reads frames with ``mic_read`` until
:data:`FRAMES` arrived.  The cells are run from Notebook 7's own *Run* menu (*Run All
Cells*); the test presses the widget's *Start microphone* button once the fd is open.
Asserted: the widget rendered (no "Error displaying widget"), its state is ``granted``,
the fd's source is ``browser``, every frame is 960 bytes (20 ms of pcm16 at 24 kHz), they
arrived at the pace of real time, the audio is speech (not zeros), no traceback, and the
saved notebook's static copy of the widget shows the state.

Screenshots, the console and the server log go to ``tests/browser/.screenshots/notebook7/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import browserutil as bu
import nbformat
import numpy as np
import pytest

from spear_lab import demo_speech

OUT = bu.SCREENSHOTS / "notebook7"
FAKE = ("--use-fake-device-for-media-stream", "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream")
FRAMES = 150  # 3 s of 20 ms frames
NAME = "nb7_browser_mic.ipynb"

pytestmark = pytest.mark.timeout(600)

#: The notebook: the widget; a mic fd on the Session's host; read FRAMES frames.
CELLS = [
    '''
from spear_lab.views import BrowserMic

mic = BrowserMic(rate=24000, autostart=False)
mic''',
    '''
import json
from spear_lab import Session
from spear_lab.abi.constants import Errno, MicCtl

session = Session(mic=mic)
host = session.host
fd = host.mic_create()
param = {"source": "device", "sample_rate_hz": 24000, "frame_ms": 20,
         "fallback": {"to_stub": False}}
assert host.mic_ctl(fd, MicCtl.SET_PARAM, json.dumps(param).encode()) == 0
print("MIC", "OPEN", json.loads(host.mic_ctl(fd, MicCtl.GET_STATUS))["source"])''',
    '''
import asyncio, time

frames, times, t0 = [], [], time.monotonic()
while len(frames) < {frames} and time.monotonic() - t0 < {timeout}:
    got = host.mic_read(fd)
    if got == -Errno.EAGAIN:
        error = json.loads(host.mic_ctl(fd, MicCtl.GET_STATUS))["last_error"]
        if error:  # e.g. permission refused: EPOLLERR, while mic_read stays EAGAIN
            raise RuntimeError(f"mic fd: {error}")
        await asyncio.sleep(0.005)  # lets the kernel handle the page's comm messages
    elif isinstance(got, int):
        raise RuntimeError(f"mic_read returned {got}")
    else:
        frames.append(bytes(got))
        times.append(time.monotonic())
status = json.loads(host.mic_ctl(fd, MicCtl.GET_STATUS))
open("nb7_mic.pcm", "wb").write(b"".join(frames))
open("nb7_mic.json", "w").write(json.dumps({
    "frames": len(frames), "sizes": sorted({len(f) for f in frames}), "times": times,
    "status": status, "state": mic.state, "error": mic.error,
    "bad_messages": mic.bad_messages}))
host.mic_close(fd)
session.close()
print("DONE", len(frames), "frames")''',
]


def notebook(cells: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c.strip("\n")) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory):
    try:
        import notebook  # noqa: F401
    except ImportError:
        why = "notebook (7) is not installed (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(why + " and CI is set: the browser test must run in CI")
        pytest.skip(why)
    base = tmp_path_factory.mktemp("nb7")
    root = base / "root"
    root.mkdir()
    server = bu.start_notebook7(root, OUT / "notebook7.log",  # the last run's
                                env={"SPEAR_LAB_CACHE": str(base / "spear-cache")})
    try:
        yield server
    finally:
        server.stop()


def wait_text(page, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in bu.page_text(page):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} never appeared in the page")
        time.sleep(0.25)


def wait_cells_done(page, path: str, timeout: float) -> dict:
    """Every code cell executed, kernel idle, no ``[*]`` prompt, twice in a row."""
    deadline, calm = time.monotonic() + timeout, 0
    while calm < 2:
        st = bu.run_state(page, path)
        done = st["kernel"] == "idle" and st["busy_prompts"] == 0 and st["executed"] == st["cells"]
        calm = calm + 1 if done else 0
        if time.monotonic() > deadline:
            raise TimeoutError(f"the cells of {path} not finished after {timeout} s: {st}")
        time.sleep(0.5)
    return st


def run_all_from_menu(page) -> None:
    """Notebook 7's menu bar: Run → Run All Cells."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    label = page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$"))
    item = page.locator(".lm-Menu-item").filter(has=label)
    item.wait_for(state="visible", timeout=10_000)
    bu.screenshot(page, OUT, "run-menu")
    item.click()


def test_browser_microphone_in_notebook7(notebook7, playwright_sync, tmp_path):
    wav = tmp_path / "speech.wav"
    shutil.copy(demo_speech().path, wav)
    src = "\n\n".join(CELLS)
    assert "{frames}" in src and "{timeout}" in src
    cells = [c.replace("{frames}", str(FRAMES)).replace("{timeout}", "120") for c in CELLS]
    nbformat.write(notebook(cells), notebook7.root / NAME)
    OUT.mkdir(parents=True, exist_ok=True)
    browser = bu.launch_chromium(playwright_sync,
                                 FAKE + (f"--use-file-for-fake-audio-capture={wav}",))
    levels: list[float] = []
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        console = open(OUT / "console.txt", "w")  # noqa: SIM115  (closed below)
        page.on("console", lambda m: console.write(f"{m.type}: {m.text}\n") or console.flush())
        try:
            page.goto(notebook7.lab_url(NAME), wait_until="domcontentloaded", timeout=90_000)
        except Exception as e:  # noqa: BLE001  Playwright names the URL: keep the token out
            raise RuntimeError(str(e).replace(notebook7.token, "[token]")) from None
        page.wait_for_function("() => !!window.jupyterapp", timeout=90_000)
        assert page.evaluate("() => window.jupyterapp.name") == "Jupyter Notebook"
        assert "/notebooks/" in page.url  # Notebook 7's notebook page, not JupyterLab
        bu.wait_kernel_idle(page, NAME, 90)
        bu.screenshot(page, OUT, "opened")
        run_all_from_menu(page)
        try:
            wait_text(page, "MIC OPEN", 120)  # the cell prints it in two words
            outs = bu.wait_outputs_settled(page, NAME, 30)  # marks nodes data-spear-out
            in_output = page.locator('[data-spear-out="0-0"] .spear-mic').count()
            bu.screenshot(page, OUT, "before-start")
            page.locator(".spear-mic-button").first.click()
            page.wait_for_selector(
                '.spear-mic:not([data-state="idle"]):not([data-state="prompt"])', timeout=20_000)
            widget = page.locator(".spear-mic").first
            shown_state, shown_text = widget.get_attribute("data-state"), widget.inner_text()
            for _ in range(20):  # the level meter moves with the speech
                bar = page.locator(".spear-mic-bar")
                if bar.count():
                    levels.append(float(bar.first.evaluate("n => n.style.width").rstrip("%") or 0))
                time.sleep(0.1)
            bu.screenshot(page, OUT, "listening")
            wait_cells_done(page, NAME, 180)
        finally:
            bu.screenshot(page, OUT, "done")
        final = bu.describe_outputs(page, NAME)
        bu.save_notebook(page, NAME)
        shutil.copy(notebook7.root / NAME, OUT / "notebook.ipynb")
        text = bu.page_text(page)
        console.close()
    except BaseException:
        print("--- Notebook 7 log (tail) ---\n" + notebook7.log_tail(80))
        raise
    finally:
        browser.close()
        notebook7.shutdown_kernels(NAME)

    # the widget rendered, in Notebook 7
    widget_out = next(o for o in outs if o["cell"] == 0)
    assert bu.WIDGET_MIME in widget_out["mimes"], outs
    assert not widget_out["widget_error"] and in_output == 1, widget_out
    assert not widget_out["text"].startswith("Loading widget"), widget_out
    assert "Error displaying widget" not in text
    assert not [o for o in final if o["traceback"]], final
    assert shown_state == "granted", shown_text
    assert f"DONE {FRAMES} frames" in "".join(o["text"] for o in final)
    res = json.loads((notebook7.root / "nb7_mic.json").read_text())
    (OUT / "result.json").write_text(json.dumps(res, indent=1))
    assert res["state"] == "granted" and res["error"] is None and res["bad_messages"] == 0, res
    assert res["status"]["source"] == "browser", res["status"]
    assert res["frames"] == FRAMES and res["sizes"] == [960], res
    # real time, not a burst: FRAMES - 1 frame periods of 20 ms between first and last
    span = res["times"][-1] - res["times"][0]
    assert span >= 0.8 * (FRAMES - 1) * 0.020, span
    # the audio is the speech, not silence
    pcm = np.frombuffer((notebook7.root / "nb7_mic.pcm").read_bytes(), "<i2") / 32768.0
    assert len(pcm) == FRAMES * 480
    rms = float(np.sqrt(np.mean(pcm ** 2)))
    assert np.count_nonzero(pcm) > 0.5 * len(pcm) and rms > 0.01, rms
    assert levels and max(levels) >= 20, levels  # speech at RMS ~0.15 shows ~70 %
    # the saved notebook's static copy shows the microphone state
    saved = nbformat.read(notebook7.root / NAME, as_version=4)
    html = "".join(o["data"].get("text/html", "") for o in saved.cells[0].outputs if "data" in o)
    assert 'data-state="granted"' in html, html
    print(f"Notebook 7 browser mic: {res['frames']} frames of {res['sizes']} bytes in {span:.2f} s, "
          f"RMS {rms:.3f}, max level {max(levels):.0f} %, "
          f"dropped {res['status'].get('dropped_frames')}")
