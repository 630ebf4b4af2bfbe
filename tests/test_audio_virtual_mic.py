"""scripts/virtual_mic.sh: start, env, status, play and stop a private PulseAudio daemon."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

from spear_lab.audio.virtual_mic import SINK, SOURCE, VirtualMic, _alive

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "virtual_mic.sh"


def script(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_script_lifecycle(tmp_path):
    d = tmp_path / "vm"
    started = script("--dir", str(d), "start")
    assert started.returncode == 0, started.stderr
    vm = VirtualMic(d)
    assert f"export PULSE_SERVER=unix:{d}/runtime/native" in started.stdout
    assert f"export XDG_CONFIG_HOME={d}/config" in started.stdout
    pid = vm.pid()
    try:
        assert pid is not None and _alive(pid)
        assert script("--dir", str(d), "status").returncode == 0
        assert script("--dir", str(d), "env").stdout == started.stdout
        # Defaults and the null sink's options, as the daemon reports them.
        env = dict(os.environ, **vm.env())
        info = subprocess.run(["pactl", "info"], env=env, capture_output=True, text=True, check=True).stdout
        assert f"Default Sink: {SINK}" in info and f"Default Source: {SOURCE}" in info
        mods = subprocess.run(["pactl", "list", "modules", "short"], env=env, capture_output=True,
                              text=True, check=True).stdout
        assert "norewinds=1" in mods and f"master={SINK}.monitor" in mods
        assert "pcm.!default { type pulse }" in (d / "config" / "alsa" / "asoundrc").read_text()
        # Play a short WAV into the sink.
        wav = tmp_path / "beep.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(b"\x00\x10" * 1600)
        played = script("--dir", str(d), "play", str(wav))
        assert played.returncode == 0, played.stderr
        assert script("--dir", str(d), "play", str(tmp_path / "missing.wav")).returncode != 0
    finally:
        stopped = script("--dir", str(d), "stop")
    assert stopped.returncode == 0
    assert not _alive(pid)
    assert script("--dir", str(d), "status").returncode == 1


def test_start_is_idempotent_and_env_is_private(tmp_path):
    with VirtualMic(tmp_path / "vm") as vm:
        pid = vm.pid()
        vm.start()
        assert vm.pid() == pid
        env = vm.env()
        assert all(str(tmp_path) in v for v in env.values())
        saved = {k: os.environ.get(k) for k in ("PULSE_SERVER", "XDG_CONFIG_HOME")}
        with vm.activated():
            assert os.environ["PULSE_SERVER"] == vm.server
            assert os.environ["XDG_CONFIG_HOME"] == env["XDG_CONFIG_HOME"]
        assert {k: os.environ.get(k) for k in saved} == saved
    assert not _alive(pid)
