"""``spear-lab serve`` / ``python -m spear_lab.server``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from spear_lab.server import cli
from srvkit import Client

ROOT = Path(__file__).resolve().parents[2]


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    e.pop("SPEAR_LAB_SERVER_API_KEY", None)
    return e


def test_python_m_serve_runs_until_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "spear_lab.server", "serve", "--port", "0",
                             "--workers", "1"], stdout=subprocess.PIPE, text=True, env=env())
    try:
        line = proc.stdout.readline()
        assert line.startswith("spear-lab realtime server: ws://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip()

        async def hello():
            c = await Client.open(url)
            ev = await c.recv()
            await c.close()
            return ev
        assert asyncio.run(hello())["type"] == "session.created"
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert workers  # the recognition worker process
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        gone, alive = psutil.wait_procs(workers, timeout=5)
        assert not alive, f"orphaned workers: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_refuses_public_address_without_key(capsys, monkeypatch):
    monkeypatch.delenv("SPEAR_LAB_SERVER_API_KEY", raising=False)
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "API key" in capsys.readouterr().err


def test_a_missing_whisper_model_is_a_clear_error(capsys, tmp_path):
    assert cli.main(["--engine", "whisper", "--port", "0",
                     "--whisper-model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a CTranslate2 Whisper model directory" in err and str(tmp_path) in err


def test_a_bad_flag_is_one_line(capsys):
    try:
        cli.main(["serve", "--port", "x"])
    except SystemExit as exc:
        assert exc.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--port" in err and "--help" in err, err


def test_help_lists_the_options(capsys):
    try:
        cli.main(["serve", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for opt in ("--host", "--port", "--dialect", "--strict-ga", "--silence-ms", "--engine",
                "--lenient", "--max-sessions"):
        assert opt in out
