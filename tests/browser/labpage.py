"""Driving JupyterLab in a Playwright page through ``window.jupyterapp`` (see browserutil).

Every function takes the ``Page`` and the notebook's ``path`` relative to the server root;
waits take ``timeout`` in seconds and raise ``TimeoutError`` naming what they waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Prelude of every evaluation: `app`, and `nbw(path)` the notebook panel of that path.
_JS = """
const app = window.jupyterapp;
const nbw = (path) => {
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.content.widgets) return w;
  }
  return null;
};
"""


def _eval(page: Any, body: str, arg: Any = None) -> Any:
    return page.evaluate(f"async (arg) => {{ {_JS}\n{body} }}", arg)


def _wait(page: Any, what: str, body: str, arg: Any, timeout: float, interval: float = 0.25) -> Any:
    """Poll the JS ``body`` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = _eval(page, body, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def open_lab(page: Any, lab: Any, timeout: float = 90.0) -> None:
    """Load the lab UI in ``page`` (empty workspace) and wait until the app is restored."""
    # ``reset``: start from an empty workspace, not the tabs an earlier page left open
    try:
        page.goto(lab.lab_url() + "&reset", wait_until="domcontentloaded", timeout=timeout * 1000)
    except Exception as e:  # noqa: BLE001  Playwright names the URL: keep the token out
        raise RuntimeError(str(e).replace(lab.token, "[token]")) from None
    _wait(page, "window.jupyterapp", "return !!window.jupyterapp;", None, timeout)
    _eval(page, "await app.restored; return true;")


def open_notebook(page: Any, path: str, timeout: float = 60.0) -> None:
    """Open ``path`` in a notebook tab with the ``python3`` kernel; wait for the kernel."""
    _eval(page, """
      const w = await app.commands.execute('docmanager:open',
          {path: arg, factory: 'Notebook', kernel: {name: 'python3'}});
      await w.context.ready; await w.sessionContext.ready; await w.revealed;
      app.shell.activateById(w.id); return true;""", path)
    wait_kernel_idle(page, path, timeout)


def wait_kernel_idle(page: Any, path: str, timeout: float = 60.0) -> None:
    """Wait until the notebook's kernel reports ``idle``."""
    _wait(page, f"the kernel of {path} to be idle", """
      const w = nbw(arg); const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
      return !!k && k.status === 'idle' && k.connectionStatus === 'connected';""", path, timeout)


def run_all(page: Any, path: str) -> None:
    """Start ``notebook:run-all-cells`` on the notebook (does not wait)."""
    ok = _eval(page, """
      const w = nbw(arg); if (!w) return false;
      app.shell.activateById(w.id);
      window.__spearRun = {done: false};
      app.commands.execute('notebook:run-all-cells').then(
        (r) => { window.__spearRun = {done: true, ok: r}; },
        (e) => { window.__spearRun = {done: true, ok: false, error: String(e)}; });
      return true;""", path)
    if not ok:
        raise RuntimeError(f"no open notebook {path}")


def run_state(page: Any, path: str) -> dict:
    """``{done, ok, error, kernel, busy_prompts, cells, executed}`` of the run in progress."""
    return _eval(page, """
      const w = nbw(arg); const run = window.__spearRun || {};
      const k = w.sessionContext.session && w.sessionContext.session.kernel;
      const prompts = [...w.content.node.querySelectorAll('.jp-InputPrompt')].map(n => n.textContent);
      const cells = w.content.widgets.filter(c => c.model.type === 'code');
      return {done: !!run.done, ok: run.ok, error: run.error || null,
              kernel: k ? k.status : null, busy_prompts: prompts.filter(t => t.includes('*')).length,
              cells: cells.length,
              executed: cells.filter(c => c.model.executionCount !== null).length};""", path)


def wait_run_finished(page: Any, path: str, timeout: float,
                      on_tick: Callable[[float], None] | None = None, interval: float = 1.0) -> float:
    """Wait for Run All to end: command done, kernel idle, no ``[*]`` prompt, twice in a row.

    ``on_tick(elapsed_s)`` is called every ``interval`` seconds meanwhile (for sampling
    views or screenshots).  Returns the seconds it took; ``TimeoutError`` with the state.
    """
    t0 = time.monotonic()
    calm = 0
    while True:
        elapsed = time.monotonic() - t0
        if on_tick is not None:
            on_tick(elapsed)
        st = run_state(page, path)
        finished = st["done"] and st["kernel"] == "idle" and st["busy_prompts"] == 0
        calm = calm + 1 if finished else 0
        if calm >= 2:
            return elapsed
        if elapsed > timeout:
            raise TimeoutError(f"Run All of {path} not finished after {timeout:.0f} s: {st}")
        time.sleep(interval if not finished else 0.3)


def save_notebook(page: Any, path: str, timeout: float = 30.0) -> None:
    """``docmanager:save`` the notebook and wait until it is clean on disk."""
    _eval(page, """
      const w = nbw(arg); app.shell.activateById(w.id);
      await app.commands.execute('docmanager:save'); return true;""", path)
    _wait(page, f"{path} saved", "const w = nbw(arg); return !!w && !w.context.model.dirty;",
          path, timeout)


def close_notebook(page: Any, path: str, timeout: float = 15.0) -> None:
    """Close the notebook's tab (no prompt: call after saving); the kernel keeps running."""
    _eval(page, "const w = nbw(arg); if (w) { w.context.model.dirty = false; w.dispose(); } return true;",
          path)
    _wait(page, f"{path} closed", "return !nbw(arg);", path, timeout)


def describe_outputs(page: Any, path: str) -> list[dict]:
    """Every output of the notebook, as shown now.

    Each dict: ``cell`` (index among all cells), ``out`` (index in the cell),
    ``output_type``, ``mimes`` (in the model), ``rendered`` (the ``data-mime-type`` shown),
    ``text`` (visible text, first 500 chars), ``text_len``, ``html_hash``/``html_len`` (of
    the rendered node), ``content_hash`` (of its text and image sources only), ``media`` (visible img/canvas/svg of at least 4x4 px),
    ``height`` (px), ``widget_error`` ("Error displaying widget" shown), ``traceback``
    (error output, or stderr with a Traceback), ``ename``.  The output's DOM node gets
    ``data-spear-out="<cell>-<out>"`` for locators.
    """
    return _eval(page, """
      const w = nbw(arg); const res = [];
      const hash = (s) => { let h = 2166136261 >>> 0;
        for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
        return h.toString(16); };
      w.content.widgets.forEach((cell, ci) => {
        if (cell.model.type !== 'code') return;
        const outs = cell.model.outputs; const kids = cell.outputArea.widgets;
        for (let oi = 0; oi < outs.length; oi++) {
          const o = outs.get(oi).toJSON(); const child = kids[oi];
          const node = child ? (child.node.querySelector('.jp-OutputArea-output') || child.node) : null;
          if (node) node.setAttribute('data-spear-out', ci + '-' + oi);
          const text = node ? (node.innerText || '').trim() : '';
          const html = node ? node.innerHTML : '';
          const media = node ? [...node.querySelectorAll('img, canvas, svg')].filter(m => {
              const r = m.getBoundingClientRect(); return r.width >= 4 && r.height >= 4; }).length : 0;
          const mimes = o.data ? Object.keys(o.data) : (o.output_type === 'stream' ? ['stream:' + o.name] : []);
          const stderrTb = o.output_type === 'stream' && o.name === 'stderr'
              && String(o.text).includes('Traceback (most recent call last)');
          res.push({cell: ci, out: oi, output_type: o.output_type, mimes,
                    rendered: node ? node.getAttribute('data-mime-type') : null,
                    text: text.slice(0, 500), text_len: text.length, html_hash: hash(html),
                    content_hash: hash(text + '|' + (node ? [...node.querySelectorAll('img')]
                        .map(m => m.src).join(',') : '')),
                    html_len: html.length, media,
                    height: node ? Math.round(node.getBoundingClientRect().height) : 0,
                    widget_error: text.includes('Error displaying widget'),
                    traceback: o.output_type === 'error' || stderrTb,
                    ename: o.output_type === 'error' ? (o.ename + ': ' + o.evalue) : null});
        }
      });
      return res;""", path)


def watch_widget_outputs(page: Any, path: str, throttle_ms: int = 100) -> None:
    """Record, inside the page, every distinct content (visible text and image sources) of
    the notebook's widget outputs (a MutationObserver, at most every ``throttle_ms``), so no
    update between two Python polls is missed.  Read with :func:`watched_widget_outputs`."""
    _eval(page, """
      const w = nbw(arg.path); if (window.__spearObs) window.__spearObs.disconnect();
      const seen = window.__spearSeen = {};
      const hash = (s) => { let h = 2166136261 >>> 0;
        for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
        return h.toString(16); };
      let pending = false;
      const scan = () => { pending = false; const t = performance.now();
        w.content.widgets.forEach((cell, ci) => {
          if (cell.model.type !== 'code') return;
          const outs = cell.model.outputs; const kids = cell.outputArea.widgets;
          for (let oi = 0; oi < outs.length && oi < kids.length; oi++) {
            const d = outs.get(oi).data || {};
            if (!d['application/vnd.jupyter.widget-view+json']) continue;
            const node = kids[oi].node; const text = (node.innerText || '').trim();
            const media = node.querySelectorAll('img, canvas, svg').length;
            if ((!text && !media) || text.startsWith('Loading widget') ||
                text.includes('Error displaying widget')) continue;
            const key = ci + '-' + oi;
            const h = hash(text + '|' + [...node.querySelectorAll('img')].map(m => m.src).join(','));
            const s = seen[key] = seen[key] || [];
            if (!s.some(e => e[0] === h)) s.push([h, Math.round(t), text.length]);
          }
        });
      };
      const obs = window.__spearObs = new MutationObserver(() => {
        if (!pending) { pending = true; setTimeout(scan, arg.ms); } });
      obs.observe(w.content.node, {subtree: true, childList: true, attributes: true,
                                   characterData: true});
      scan(); return true;""", {"path": path, "ms": throttle_ms})


def watched_widget_outputs(page: Any) -> dict[str, list]:
    """``{"<cell>-<out>": [[hash, ms, text_len], ...]}``: distinct contents seen while each
    output was a widget (since :func:`watch_widget_outputs`)."""
    return page.evaluate("() => window.__spearSeen || {}")


def wait_outputs_settled(page: Any, path: str, timeout: float = 30.0) -> list[dict]:
    """Wait until no output shows "Loading widget..." (the widget manager decided); the
    outputs then (``describe_outputs``).  On timeout, the outputs as they are."""
    deadline = time.monotonic() + timeout
    while True:
        outs = describe_outputs(page, path)
        if not any(o["text"].startswith("Loading widget") for o in outs) or time.monotonic() > deadline:
            return outs
        time.sleep(0.5)


def cell_sources(page: Any, path: str) -> list[str]:
    """The source of every cell of the open notebook, in order."""
    return _eval(page, "return nbw(arg).content.widgets.map(c => c.model.sharedModel.getSource());", path)


def page_text(page: Any) -> str:
    """All visible text of the page."""
    return page.evaluate("() => document.body.innerText")


def screenshot(page: Any, folder: Path, name: str, locator: Any = None) -> Path:
    """Save a PNG of the viewport (or of ``locator``) as ``folder/name.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}.png"
    if locator is not None:
        locator.screenshot(path=str(out), timeout=10_000)
    else:
        page.screenshot(path=str(out), timeout=20_000)
    return out
