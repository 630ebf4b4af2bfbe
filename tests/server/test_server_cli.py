"""``spear-lab serve`` / ``python -m spear_lab.server``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

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
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_refuses_public_address_without_key(capsys, monkeypatch):
    monkeypatch.delenv("SPEAR_LAB_SERVER_API_KEY", raising=False)
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "API key" in capsys.readouterr().out


def test_missing_optional_engine_is_a_clear_error(capsys, tmp_path):
    import importlib.util
    assert cli.main(["--engine", "faster-whisper", "--port", "0",
                     "--model-path", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    if importlib.util.find_spec("faster_whisper") is None:
        assert "faster-whisper" in out and "pip install" in out
    else:
        assert "model.bin" in out


def test_help_lists_the_options(capsys):
    try:
        cli.main(["serve", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for opt in ("--host", "--port", "--dialect", "--strict-ga", "--silence-ms", "--engine"):
        assert opt in out
