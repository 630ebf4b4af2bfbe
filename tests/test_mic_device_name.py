"""``--mic device:NAME`` / ``Session(mic="device:NAME")``: the host picks the input device by
name, on the virtual microphone (two PortAudio inputs: ``pulse`` and ``default``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fixtures_audio import virtual_mic_daemon  # noqa: F401  (fixture)

from spear_lab.host import HostConfig
from spear_lab.session import mic_policy


def _run(vm, mic: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, **vm.env())
    return subprocess.run(
        [sys.executable, "-m", "spear_lab.cli", "-v", "run", "mic_rtasr", "--mic", mic,
         "--route", "openai-realtime-asr=stub", "--timeout", "2"],
        capture_output=True, text=True, env=env, timeout=90)


def test_run_opens_the_named_device(virtual_mic_daemon):  # noqa: F811
    p = _run(virtual_mic_daemon, "device:pulse")
    assert "capturing from 'pulse'" in p.stderr, p.stderr
    assert p.returncode == 124, p.stderr  # ran until the timeout, reading frames
    assert "errno none" in p.stdout


def test_an_unknown_device_name_is_an_eio_naming_it(virtual_mic_daemon):  # noqa: F811
    p = _run(virtual_mic_daemon, "device:nosuchcard")
    assert p.returncode == 1
    assert '"last_error":"input device not found: nosuchcard"' in p.stdout
    assert "-EIO=1" in p.stdout


def test_policy_strings():
    cfg = HostConfig()
    mic_policy(cfg, "device:USB Audio")
    assert cfg.mic_device == "device:USB Audio"
    mic_policy(cfg, "demo")
    assert cfg.mic_device.startswith("file:") and cfg.mic_file.endswith("demo_speech.wav")
    with pytest.raises(ValueError, match="needs a device name"):
        mic_policy(cfg, "device:")
    with pytest.raises(ValueError, match="'device:NAME'"):
        mic_policy(cfg, "speaker")
