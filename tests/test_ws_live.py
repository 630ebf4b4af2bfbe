"""Checklist item 65 against the real OpenAI Realtime API (GA shape), only when
``OPENAI_API_KEY`` is set: espeak-ng speech, 4800-byte writes, 24000 bytes of silence,
then a completed transcription and no error event within 40 s."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from test_ws_support import status, ws_fd

from spear_lab import Host
from spear_lab.abi.constants import Errno, RtasrCtl
from spear_lab.host import HostConfig

pytestmark = pytest.mark.skipif(not os.environ.get("OPENAI_API_KEY"),
                                reason="optional network test: OPENAI_API_KEY is not set")


def speech_pcm16_24k(text: str, tmp_path) -> bytes:
    """``text`` spoken by espeak-ng, as raw pcm16 mono 24 kHz."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed to generate the test speech")
    wav = tmp_path / "speech.wav"
    raw = tmp_path / "speech.raw"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(wav), text], check=True)
    subprocess.run(["sox", "-D", str(wav), "-r", "24000", "-c", "1", "-b", "16", "-e", "signed-integer",
                    "-t", "raw", str(raw)], check=True)
    return raw.read_bytes()


def test_item65_live_openai_transcription(tmp_path):
    audio = speech_pcm16_24k("Hello, this is a test.", tmp_path) + b"\x00" * 24000
    host = Host(HostConfig(stub_fallback=False))
    try:
        fd = ws_fd(host, backend="openai")
        assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        for start in range(0, len(audio), 4800):
            chunk = audio[start:start + 4800]
            while (rc := host.rtasr_write(fd, chunk)) == -Errno.EAGAIN:
                time.sleep(0.005)
            assert rc == len(chunk), status(host, fd)
        events, deltas, transcript = [], [], None
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and transcript is None:
            ev = host.rtasr_read(fd)
            if isinstance(ev, int):
                assert status(host, fd)["state"] != "Error", status(host, fd)
                time.sleep(0.01)
                continue
            obj = json.loads(ev)
            events.append(obj.get("type"))
            assert obj.get("type") != "error", obj
            if obj.get("type") == "conversation.item.input_audio_transcription.delta":
                deltas.append(obj.get("delta", ""))
            if obj.get("type") == "conversation.item.input_audio_transcription.completed":
                transcript = obj.get("transcript") or "".join(deltas)
        assert transcript, f"no completed transcription; events: {events}"
    finally:
        host.shutdown()
