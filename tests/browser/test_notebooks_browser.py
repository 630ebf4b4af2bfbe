"""Every notebook, Run All in JupyterLab in headless Chromium (issue 14 item 7).

Per notebook (a copy in the server's temporary root; the kernel is this venv's Python):

1. Run All; while it runs, the widget outputs are sampled every 0.5 s and by a
   MutationObserver in the page (a hash of their visible text and image sources while they
   are widgets).  Asserted: no "Error displaying widget" on the page, no error output or
   stderr traceback, every code cell executed, and — when the notebook has live views
   (widget outputs of cells that do not say ``live=False``) — at least one of them showed
   two different contents while it was a widget.
2. After the run (the notebooks close their sessions): every output that was a live view
   still shows content (text or a picture), none is blank.
3. The saved file: every output that was a view carries a static picture (text/html or an
   image); none carries only a widget reference and text/plain.
4. Save, close the tab, shut the kernel down, reopen: each view output is rendered from a
   static mime type (text/html or an image), shows content, and nothing says "Error
   displaying widget".

All problems of a notebook are collected and reported together.  Screenshots (and
``report.json``, timings and outputs) go to ``tests/browser/.screenshots/<notebook>/``.
``SPEAR_BROWSER_RUN_TIMEOUT`` (seconds, default 300) bounds one Run All;
``SPEAR_BROWSER_NOTEBOOKS`` (a folder, default ``notebooks/``) says which notebooks run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import browserutil as bu
import pytest

try:
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # the fixtures skip (or fail under CI) with the reason
    PlaywrightError = RuntimeError

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(Path(os.environ.get("SPEAR_BROWSER_NOTEBOOKS", REPO / "notebooks")).glob("*.ipynb"))
RUN_TIMEOUT = float(os.environ.get("SPEAR_BROWSER_RUN_TIMEOUT", "300"))
STATIC = ("text/html", "image/png", "image/svg+xml", "image/jpeg")
ERROR_TEXT = "Error displaying widget"

pytestmark = pytest.mark.timeout(RUN_TIMEOUT + 240)


@pytest.fixture(scope="module")
def lab_notebooks(jupyterlab) -> Path:
    """The notebooks, copied into the server's root under ``notebooks/``."""
    dest = jupyterlab.root / "notebooks"
    dest.mkdir(exist_ok=True)
    for nb in NOTEBOOKS:
        shutil.copy2(nb, dest / nb.name)
    return dest


def _shows_content(o: dict) -> bool:
    return (o["text_len"] > 0 or o["media"] > 0) and o["height"] > 0 \
        and not o["widget_error"] and not o["text"].startswith("Loading widget")


def _brief(o: dict | None) -> str:
    if o is None:
        return "no output there"
    return (f"mimes={o['mimes']} rendered={o['rendered']} height={o['height']}px "
            f"media={o['media']} text={o['text'][:160]!r}")


def _shoot_views(page, folder: Path, stage: str, positions, limit: int = 12) -> None:
    for cell, out in sorted(positions)[:limit]:
        loc = page.locator(f'[data-spear-out="{cell}-{out}"]')
        if loc.count():
            try:
                bu.screenshot(page, folder, f"{stage}-view-{cell}-{out}", loc)
            except PlaywrightError as e:  # a zero-size (blank) output cannot be shot; noted
                (folder / f"{stage}-view-{cell}-{out}.txt").write_text(f"no screenshot: {e}\n")


class _Sampler:
    """Called every half second during Run All: records the widget outputs' hashes."""

    def __init__(self, page, path: str, folder: Path) -> None:
        self.page, self.path, self.folder = page, path, folder
        self.views: set[tuple[int, int]] = set()       # positions that held a widget
        self.hashes: dict[tuple[int, int], set[str]] = {}
        self.samples = 0
        self.shots = 0
        self._last_shot = -10.0
        self.widget_errors: list[str] = []
        self.history: list[tuple[float, int, int, str, int]] = []  # t, cell, out, hash, text_len

    def __call__(self, elapsed: float) -> None:
        try:
            outs = bu.describe_outputs(self.page, self.path)
        except PlaywrightError:  # the page is busy re-rendering; next tick
            return
        self.samples += 1
        changed = None
        for o in outs:
            if bu.WIDGET_MIME not in o["mimes"]:
                continue
            pos = (o["cell"], o["out"])
            self.views.add(pos)
            if o["widget_error"]:
                self.widget_errors.append(f"cell {pos[0]} at {elapsed:.0f} s: {o['text'][:120]!r}")
            self.history.append((round(elapsed, 1), *pos, o["content_hash"], o["text_len"]))
            if _shows_content(o):
                seen = self.hashes.setdefault(pos, set())
                if o["content_hash"] not in seen:
                    seen.add(o["content_hash"])
                    changed = pos if len(seen) > 1 else changed
        if changed and elapsed - self._last_shot >= 4 and self.shots < 30:
            self._last_shot = elapsed
            self.shots += 1
            _shoot_views(self.page, self.folder, f"run-{self.shots:02d}", [changed], 1)

    def changed(self) -> list[tuple[int, int]]:
        """Views that showed two contents: polled here, or seen by the page's observer."""
        both = {p for p, h in self.hashes.items() if len(h) > 1}
        for key, seen in bu.watched_widget_outputs(self.page).items():
            cell, out = map(int, key.split("-"))
            self.views.add((cell, out))
            if len(seen) > 1:
                both.add((cell, out))
        return sorted(both)


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_notebook_in_browser(name, jupyterlab, lab_notebooks, lab_page):
    page, path = lab_page, f"notebooks/{name}"
    folder = bu.SCREENSHOTS / Path(name).stem
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    problems: list[str] = []
    report: dict = {"notebook": name}
    t0 = time.monotonic()

    # 1. Run All, sampling the live views.
    bu.open_notebook(page, path)
    bu.screenshot(page, folder, "00-opened")
    sampler = _Sampler(page, path, folder)
    bu.watch_widget_outputs(page, path)
    bu.run_all(page, path)
    try:
        report["run_s"] = round(bu.wait_run_finished(page, path, RUN_TIMEOUT, on_tick=sampler,
                                                     interval=0.5), 1)
    except TimeoutError as e:
        bu.screenshot(page, folder, "10-timeout")
        report["outputs_at_timeout"] = bu.describe_outputs(page, path)
        (folder / "report.json").write_text(json.dumps(report, indent=1))
        jupyterlab.shutdown_kernels(path)  # a hung kernel must not slow the next notebooks
        pytest.fail(f"{name}: {e}")
    state = bu.run_state(page, path)
    outs = bu.wait_outputs_settled(page, path, 10)
    sampler(report["run_s"])  # outputs that became widgets at the very end count too
    at = {(o["cell"], o["out"]): o for o in outs}
    changed = sampler.changed()  # also adds the widgets only the page's observer saw
    bu.screenshot(page, folder, "10-after-run")
    _shoot_views(page, folder, "after-run", sampler.views)
    report.update(state=state, samples=sampler.samples, views=sorted(sampler.views),
                  changed=changed, history=sampler.history,
                  observed=bu.watched_widget_outputs(page), outputs_after_run=outs)

    if state["executed"] != state["cells"] or not state["ok"]:
        problems.append(f"run: {state['executed']} of {state['cells']} code cells executed, "
                        f"run-all-cells returned {state['ok']!r} {state['error'] or ''}")
    for o in outs:
        if o["traceback"]:
            problems.append(f"run: error output in cell {o['cell']}: {o['ename'] or o['text'][-300:]}")
    if ERROR_TEXT in bu.page_text(page) or sampler.widget_errors:
        problems.append(f"run: page shows {ERROR_TEXT!r}: "
                        f"{sampler.widget_errors[:3] or [_brief(o) for o in outs if o['widget_error']][:3]}")
    sources = bu.cell_sources(page, path)
    live = sorted(p for p in sampler.views if "live=False" not in sources[p[0]])
    report["live_views"] = live
    if live and not set(changed) & set(live):
        problems.append(f"run: no live view changed while the notebook ran (widget outputs of cells "
                        f"{[p[0] for p in live]}; {sampler.samples} polls + page observer: "
                        f"{bu.watched_widget_outputs(page)})")

    # 2. After the run every view output still shows content.
    for pos in sorted(sampler.views):
        if not (pos in at and _shows_content(at[pos])):
            problems.append(f"after run: view output cell {pos[0]} #{pos[1]} is blank: {_brief(at.get(pos))}")

    # 3. Saved file: the view outputs carry a static picture.
    bu.save_notebook(page, path)
    saved = json.loads((jupyterlab.root / path).read_text())
    for ci, out in sorted(sampler.views):
        cell_outs = saved["cells"][ci].get("outputs", [])
        data = cell_outs[out].get("data", {}) if out < len(cell_outs) else {}
        if not any(m in data for m in STATIC):
            problems.append(f"saved file: view output cell {ci} #{out} has no static picture, "
                            f"only {sorted(data)}")

    # 4. Close, shut the kernel down, reopen: the static snapshots show.
    bu.close_notebook(page, path)
    jupyterlab.shutdown_kernels(path)
    left = [s for s in jupyterlab.api("GET", "api/sessions") if s.get("path") == path]
    assert not left, f"kernel of {path} still running after shutdown: {left}"
    bu.open_notebook(page, path)
    reopened = bu.wait_outputs_settled(page, path, 30)
    at2 = {(o["cell"], o["out"]): o for o in reopened}
    bu.screenshot(page, folder, "20-reopened")
    _shoot_views(page, folder, "reopened", sampler.views)
    report["outputs_reopened"] = reopened
    if ERROR_TEXT in bu.page_text(page):
        problems.append(f"reopened: page shows {ERROR_TEXT!r} in "
                        f"{[(o['cell'], o['out']) for o in reopened if o['widget_error']]}")
    for pos in sorted(sampler.views):
        o = at2.get(pos)
        if not (o and o["rendered"] in STATIC and _shows_content(o)):
            problems.append(f"reopened: view output cell {pos[0]} #{pos[1]} is not a static "
                            f"snapshot: {_brief(o)}")
    bu.close_notebook(page, path)
    jupyterlab.shutdown_kernels(path)

    report["total_s"] = round(time.monotonic() - t0, 1)
    report["problems"] = problems
    (folder / "report.json").write_text(json.dumps(report, indent=1))
    assert not problems, f"{name} (run {report['run_s']} s, total {report['total_s']} s):\n- " \
        + "\n- ".join(problems)
