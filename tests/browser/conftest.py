"""Fixtures for real-browser tests (JupyterLab + Debian chromium + Playwright).

- ``jupyterlab`` (session): a :class:`browserutil.Lab` serving an empty temporary folder
  (``.root``); tests copy what they open into it.  Its kernels get a private, empty
  ``SPEAR_LAB_CACHE``.  Its log is
  ``tests/browser/.screenshots/jupyterlab-<pytest pid>.log`` (logs of ended runs are removed
  at the next start) and its tail is attached to the report of a failing test.
- ``chromium_browser`` (module): a Playwright ``Browser`` from
  :func:`browserutil.launch_chromium` (no extra flags).  A test needing other flags (e.g. a
  fake microphone) calls ``launch_chromium(playwright_sync, extra_args)`` itself.
- ``playwright_sync`` (module): the started ``sync_playwright()`` object.  Module scope,
  not session: while it runs, the main thread has a running asyncio loop, so every later
  test that calls ``asyncio.run`` would fail.
- ``lab_page`` (function): a fresh page (1400x1000) in its own context, with the lab loaded
  and restored; closed afterwards.

Everything skips when chromium, playwright or jupyterlab is missing, except under ``CI``,
where that is a failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import browserutil


def _need(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        why = f"{module} is not installed (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(why + " and CI is set: the browser test must run in CI")
        pytest.skip(why)


@pytest.fixture(scope="session")
def jupyterlab(tmp_path_factory):
    _need("jupyterlab")
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    for old in browserutil.SCREENSHOTS.glob("jupyterlab-*.log"):  # logs of ended sessions
        try:
            os.kill(int(old.stem.split("-")[1]), 0)
        except (ValueError, ProcessLookupError):
            old.unlink(missing_ok=True)
        except PermissionError:
            pass
    log = browserutil.SCREENSHOTS / f"jupyterlab-{os.getpid()}.log"  # one per pytest run
    # a private spear_lab cache: every run computes what a newcomer's first Run All does
    lab = browserutil.start_jupyterlab(root, log, env={"SPEAR_LAB_CACHE": str(base / "spear-cache")})
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="module")
def playwright_sync():
    _need("playwright")
    browserutil.chromium_path()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def chromium_browser(playwright_sync):
    browser = browserutil.launch_chromium(playwright_sync)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def lab_page(jupyterlab, chromium_browser):
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        browserutil.open_lab(page, jupyterlab)
        yield page
    finally:
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    lab = item.funcargs.get("jupyterlab") if hasattr(item, "funcargs") else None
    if rep.failed and isinstance(lab, browserutil.Lab):
        rep.sections.append(("jupyterlab log (tail)", lab.log_tail(80)))


def pytest_configure(config):
    Path(browserutil.SCREENSHOTS).mkdir(parents=True, exist_ok=True)
