"""Real-browser testing of notebooks: JupyterLab on loopback, Debian's Chromium, Playwright.

API (the fixtures in ``conftest.py`` wrap the first three):

- ``start_jupyterlab(root, log_path, timeout=60.0, env=None) -> Lab`` starts ``python -m jupyterlab``
  (this interpreter, so the kernel is the venv's Python) headless on a free 127.0.0.1 port
  with a random token, every Jupyter directory private to ``root.parent``, no network
  fetches (news, update checks, extension manager off); it returns when ``/api/status``
  answers.  ``Lab`` has ``.url`` (ends in ``/``), ``.token``, ``.root`` (Path served),
  ``.log_path``, ``lab_url(path="")`` (a URL that logs in: it carries the
  per-run token; ``repr(lab)`` does not), ``api(method, path)`` (the REST
  API, JSON), ``shutdown_kernels(path=None)`` and ``stop()``.  Raises ``RuntimeError`` with
  the log's tail when the server exits or does not answer in time.
- ``start_notebook7(root, log_path, timeout=60.0, env=None) -> Notebook7`` the same for
  Jupyter Notebook 7 (``python -m notebook``); ``Notebook7`` is a ``Lab`` whose
  ``lab_url(path)`` opens Notebook 7's page of ``path`` (``notebooks/`` or ``tree/``).
- ``chromium_path() -> str`` Debian's ``chromium`` on PATH; skips the test when absent,
  fails it instead when the ``CI`` environment variable is set.
- ``launch_chromium(playwright, extra_args=()) -> Browser`` headless, on that binary (never
  Playwright's download), with the flags of ``CHROMIUM_ARGS`` (+ ``--no-sandbox`` as root).
- Notebook helpers on a Playwright ``Page`` (``path`` is relative to ``Lab.root``; every wait
  takes ``timeout`` in seconds and raises ``TimeoutError`` naming what it waited for):
  ``open_lab(page, lab)``, ``open_notebook(page, path)``, ``wait_kernel_idle(page, path)``,
  ``run_all(page, path)``, ``run_state(page, path) -> dict``,
  ``wait_run_finished(page, path, timeout, on_tick=None, interval=1.0) -> float`` (seconds),
  ``save_notebook(page, path)``, ``close_notebook(page, path)``,
  ``describe_outputs(page, path) -> list[dict]`` (one dict per output, see its docstring),
  ``wait_outputs_settled(page, path, timeout=30) -> list[dict]`` (no "Loading widget..." left),
  ``watch_widget_outputs(page, path)`` + ``watched_widget_outputs(page) -> dict`` (every
  distinct content the widget outputs showed, recorded in the page),
  ``cell_sources(page, path) -> list[str]``, ``page_text(page) -> str``,
  ``screenshot(page, folder, name, locator=None) -> Path``.  They live in ``labpage.py``
  and are re-exported here.
- ``SCREENSHOTS``: ``tests/browser/.screenshots/`` (git-ignored), where logs and pictures go.

JupyterLab runs with ``expose_app_in_browser`` so the helpers drive it through
``window.jupyterapp`` (its command registry and shell); cells are never windowed out of the
DOM (``windowingMode: none``), so every output can be read.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

SCREENSHOTS = Path(__file__).resolve().parent / ".screenshots"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

CHROMIUM_ARGS = (
    "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--no-default-browser-check", "--disable-default-apps", "--disable-extensions",
    "--disable-domain-reliability", "--disable-client-side-phishing-detection",
    "--disable-breakpad", "--metrics-recording-only", "--password-store=basic",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
)

# User settings: no news/update prompts, no autosave, all cells kept in the DOM.
_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


class Lab:
    """A running JupyterLab server (see the module docstring)."""

    def __init__(self, proc: subprocess.Popen, url: str, token: str, root: Path,
                 log_path: Path) -> None:
        self.proc, self.url, self.token, self.root, self.log_path = proc, url, token, root, log_path

    def __repr__(self) -> str:  # no token
        return f"<Lab {self.url} root={self.root}>"

    def lab_url(self, path: str = "") -> str:
        """URL of the lab UI (``path`` opens that file), logging in with the token."""
        from urllib.parse import quote
        tail = f"tree/{quote(path)}" if path else ""
        return f"{self.url}lab/{tail}?token={self.token}"

    def api(self, method: str, path: str, timeout: float = 10.0) -> Any:
        """Call the REST API (``path`` like ``"api/sessions"``); JSON result or None."""
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with _OPENER.open(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self, path: str | None = None) -> int:
        """Delete the sessions (and so the kernels) of ``path``, or all; how many."""
        n = 0
        for s in self.api("GET", "api/sessions"):
            if path is None or s.get("path") == path:
                self.api("DELETE", f"api/sessions/{s['id']}")
                n += 1
        if path is None:
            for k in self.api("GET", "api/kernels"):
                self.api("DELETE", f"api/kernels/{k['id']}")
                n += 1
        return n

    def log_tail(self, n: int = 60) -> str:
        """The last ``n`` lines of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Shut the kernels down, then the server (SIGTERM, then SIGKILL of its group)."""
        if self.proc.poll() is None:
            try:
                self.shutdown_kernels()
            except (OSError, ValueError) as e:  # the server is going anyway
                print(f"shutting JupyterLab's kernels down failed: {e}", file=sys.stderr)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def _private_env(base: Path) -> dict[str, str]:
    """Environment with every Jupyter/IPython directory under ``base`` and a kernelspec
    ``python3`` that runs this interpreter."""
    dirs = {k: base / k.lower() for k in (
        "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR",
        "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR", "JUPYTER_PATH")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    spec = dirs["JUPYTER_PATH"] / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (spear_lab venv)", "language": "python"}))
    for name, value in _SETTINGS.items():
        f = dirs["JUPYTERLAB_SETTINGS_DIR"] / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    env = dict(os.environ, **{k: str(v) for k, v in dirs.items()})
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.pop("JUPYTER_TOKEN", None)
    return env


def _start(what: str, cls: type, module: str, app_args: list[str], root: Path, log_path: Path,
           timeout: float, env: dict[str, str] | None) -> Lab:
    """Start ``python -m module`` (a Jupyter server app) serving ``root`` on a free
    loopback port, the token in its environment, private Jupyter dirs and settings, no
    news or update checks; wait until its API answers.  RuntimeError with the log's tail
    when it exits or does not answer in ``timeout`` s."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise ValueError(f"{what} root {root} is not a directory")
    extra = dict(env or {})
    env = _private_env(root.parent / f"{root.name}-jupyter")
    env.update(extra)
    port, token = _free_port(), secrets.token_hex(24)
    argv = [sys.executable, "-m", module, "--no-browser", "--ip=127.0.0.1",
            f"--port={port}", "--port_retries=0", f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.open_browser=False", "--log-level=INFO", *app_args]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    env["JUPYTER_TOKEN"] = token  # not on the command line: ps must not show it
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = cls(proc, f"http://127.0.0.1:{port}/", token, root, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            server.api("GET", "api/status", timeout=2)
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"{what} did not answer in {timeout} s:\n{server.log_tail()}")
            time.sleep(0.3)


def start_jupyterlab(root: Path, log_path: Path, timeout: float = 60.0,
                     env: dict[str, str] | None = None) -> Lab:
    """Start JupyterLab serving ``root``; see the module docstring.  ``env``: variables
    added to the server's (and so its kernels') environment."""
    return _start("JupyterLab", Lab, "jupyterlab",
                  ["--LabApp.expose_app_in_browser=True", "--LabApp.collaborative=False"],
                  root, log_path, timeout, env)


class Notebook7(Lab):
    """A running Jupyter Notebook 7 server: a :class:`Lab` whose ``lab_url`` opens
    Notebook 7's pages (``notebooks/<path>`` for a ``.ipynb``, else ``tree/<path>``)."""

    def __repr__(self) -> str:  # no token
        return f"<Notebook7 {self.url} root={self.root}>"

    def lab_url(self, path: str = "") -> str:
        """URL of the Notebook 7 page of ``path`` (the file browser for ""), with the token."""
        from urllib.parse import quote
        kind = "notebooks" if path.endswith(".ipynb") else "tree"
        return f"{self.url}{kind}/{quote(path)}?token={self.token}"


def start_notebook7(root: Path, log_path: Path, timeout: float = 60.0,
                    env: dict[str, str] | None = None) -> "Notebook7":
    """Start Jupyter Notebook 7 (``python -m notebook``) serving ``root``, set up as
    :func:`start_jupyterlab` is (``window.jupyterapp`` exposed)."""
    return _start("Notebook 7", Notebook7, "notebook",
                  ["--JupyterNotebookApp.expose_app_in_browser=True"], root, log_path, timeout, env)


def chromium_path() -> str:
    """Debian's chromium; skip when missing (fail under CI)."""
    import pytest
    path = shutil.which("chromium")
    if path is None:
        why = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(why + " and CI is set: the browser test must run in CI")
        pytest.skip(why)
    return path


def launch_chromium(playwright: Any, extra_args: tuple[str, ...] | list[str] = ()) -> Any:
    """Headless Chromium (Debian's binary) via ``playwright.chromium.launch``."""
    args = list(CHROMIUM_ARGS) + list(extra_args)
    if os.geteuid() == 0:
        args.insert(0, "--no-sandbox")
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                      args=args, timeout=60_000)


# The page helpers live in labpage.py; they are part of this module's API.
from labpage import (
    cell_sources,
    close_notebook,
    describe_outputs,
    open_lab,
    open_notebook,
    page_text,
    run_all,
    run_state,
    save_notebook,
    screenshot,
    wait_kernel_idle,
    wait_outputs_settled,
    wait_run_finished,
    watch_widget_outputs,
    watched_widget_outputs,
)

__all__ = [
    "CHROMIUM_ARGS", "SCREENSHOTS", "WIDGET_MIME", "Lab", "Notebook7", "cell_sources",
    "chromium_path", "close_notebook", "describe_outputs", "launch_chromium", "open_lab",
    "open_notebook", "page_text", "run_all", "run_state", "save_notebook", "screenshot",
    "start_jupyterlab", "start_notebook7",
    "wait_kernel_idle", "wait_outputs_settled", "wait_run_finished", "watch_widget_outputs",
    "watched_widget_outputs",
]
