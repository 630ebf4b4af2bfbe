"""``spear-lab run`` with third-party guests (issue 16): routing, guest log output, the
file microphone's tail and loop, and the reference-style guests of guests/compat."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import wave
from pathlib import Path

import jiwer
import pytest
from test_ws_support import status, ws_fd

from spear_lab import Host, cli
from spear_lab.abi.constants import Errno, RtasrCtl
from spear_lab.host import HostConfig
from spear_lab.session import Session
from spear_lab.transports.backends import BackendRegistry

ROOT = Path(__file__).resolve().parents[1]
DEMO = cli.DEMO_WAV
REF = [ln for ln in cli.DEMO_TEXT.read_text().splitlines() if ln]
ROUTE = ["--route", "openai-realtime-asr=local"]


def run(*argv, timeout=240, env=None):
    """``spear-lab`` in a subprocess: (exit status, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "spear_lab.cli", *argv], capture_output=True,
                       text=True, timeout=timeout, cwd=ROOT, env=env)
    return p.returncode, p.stdout, p.stderr


def transcripts(out: str, guest: str = "asr_transcribe") -> list[str]:
    return [m.group(1) for m in re.finditer(rf"^\[{guest}\] transcript: (.*)$", out, re.M)]


def summary(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith("--- ")]
    assert lines, out
    return lines[-1]


@pytest.fixture(scope="module")
def cut_speech(tmp_path_factory) -> Path:
    """The demo speech cut 30 ms after its last word: no silence for the VAD at all."""
    with wave.open(str(DEMO)) as w:
        rate, data = w.getframerate(), w.readframes(w.getnframes())
    samples = memoryview(data).cast("h")
    last = max(i for i in range(len(samples)) if abs(samples[i]) > 1000)
    end = min(len(samples), last + rate * 30 // 1000)
    path = tmp_path_factory.mktemp("speech") / "cut.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data[:2 * end])
    return path


# -- the Done-when run ---------------------------------------------------------------------


def test_reference_style_guest_transcribes_every_sentence_through_a_route():
    rc, out, err = run("run", "asr_transcribe", "--mic", f"file:{DEMO}", *ROUTE)
    assert rc == 0, out + err
    hyp = transcripts(out)
    assert len(hyp) == len(REF), out
    assert jiwer.wer(" ".join(REF).lower(), " ".join(hyp).lower()) <= 0.35, hyp
    last = set(re.findall(r"\w+", REF[-1].lower())) - {"the", "at", "we"}
    assert len(last & set(re.findall(r"\w+", hyp[-1].lower()))) >= 3, hyp[-1]  # the last one
    assert "exit 0" in summary(out) and "transcripts 4" in summary(out)
    assert "warning" not in err


def test_the_tail_saves_the_last_utterance_of_a_file_without_trailing_silence(cut_speech):
    rc, out, err = run("run", "asr_transcribe", "--mic", f"file:{cut_speech}", *ROUTE)
    assert rc == 0, out + err
    hyp = transcripts(out)
    assert len(hyp) == len(REF), out
    assert "meet" in hyp[-1].lower() and "station" in hyp[-1].lower()


def test_fast_keeps_the_tail_working(cut_speech):
    # --fast sends the file at once; the tail still plays in real time, so the backend has
    # wall-clock time to answer.  Without a tail the guest ended with 0 events.
    rc, out, _ = run("run", "asr_transcribe", "--mic", f"file:{cut_speech}", "--fast",
                     "--mic-tail", "0", *ROUTE)
    assert rc == 0 and transcripts(out) == [] and " events 0;" in summary(out)
    # a tail long enough for a recogniser working through 12 s of speech at once
    rc, out, err = run("run", "asr_transcribe", "--mic", f"file:{cut_speech}", "--fast",
                       "--mic-tail", "10000", *ROUTE)
    assert rc == 0, out + err
    assert len(transcripts(out)) == len(REF), out


def test_the_cxx_build_of_the_same_guest_runs_the_same(cut_speech):
    rc, out, err = run("run", "asr_transcribe_cxx", "--mic", f"file:{cut_speech}", "--fast",
                       "--mic-tail", "10000", *ROUTE)
    assert rc == 0, out + err
    assert len(transcripts(out, "asr_transcribe_cxx")) == len(REF)


@pytest.mark.parametrize("guest", ["compat_api", "compat_api_cpp"])
def test_compat_guests_pass_their_checks(guest):
    rc, out, err = run("run", guest, "--mic", "stub", "--backend", "stub")
    assert rc == 0, out + err
    checks = re.findall(rf"^\[{guest}\] check (\S+) (ok|FAIL)$", out, re.M)
    assert len(checks) >= 10 and all(r == "ok" for _, r in checks), out
    assert re.search(rf"^\[{guest}\] {guest} checks=\d+ failures=0$", out, re.M)


# -- routing ---------------------------------------------------------------------------------


def test_an_unrouted_backend_name_fails_connect_naming_the_known_backends():
    with Host() as h:
        fd = ws_fd(h, backend="openai-realtime-asr")
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == -Errno.EIO
        st = status(h, fd)
        assert st["state"] == "Error" and st["transport"] is None
        assert "unknown backend 'openai-realtime-asr'" in st["last_error"]
        assert "local, stub, openai" in st["last_error"] and "--route" in st["last_error"]


def test_a_route_maps_the_guest_name_onto_a_host_backend():
    with Host(HostConfig(routes={"openai-realtime-asr": "stub"})) as h:
        fd = ws_fd(h, backend="openai-realtime-asr")
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        assert (status(h, fd)["transport"], status(h, fd)["backend"]) == ("stub", "stub")


def test_the_stub_takes_over_only_when_asked(caplog):
    # the guest asks (fallback.to_stub), or the host policy says so; one warning per host
    with Host() as h:
        fd = ws_fd(h, backend="nope", fallback={"to_stub": True})
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0 and status(h, fd)["transport"] == "stub"
    caplog.clear()
    with Host(HostConfig(stub_fallback=True)) as h:
        with caplog.at_level("WARNING", logger="spear_lab"):
            for _ in range(3):
                fd = ws_fd(h, backend="nope")
                assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        warnings = [r for r in caplog.records if "using the stub" in r.getMessage()]
        assert len(warnings) == 1 and "unknown backend 'nope'" in warnings[0].getMessage()


def test_cli_without_route_fails_and_with_a_stub_route_runs():
    rc, out, _ = run("run", "mic_rtasr", "--mic", f"file:{DEMO}", "--fast", "--mic-tail", "0")
    assert rc == 1 and "[mic_rtasr] rtasr connect failed: -5" in out
    rc, out, err = run("run", "mic_rtasr", "--mic", f"file:{DEMO}", "--fast", "--mic-tail", "0",
                       "--route", "openai-realtime-asr=stub")
    assert rc == 0 and "[mic_rtasr] mic_rtasr started" in out and "warning" not in err


def test_cli_stub_fallback_prints_one_warning_line():
    rc, out, err = run("run", "mic_rtasr", "--mic", f"file:{DEMO}", "--fast", "--mic-tail", "0",
                       "--stub-fallback")
    assert rc == 0, out + err
    lines = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(lines) == 1 and "unknown backend 'openai-realtime-asr'" in lines[0]
    assert lines[0].startswith("spear-lab run: warning: ")


@pytest.mark.parametrize("argv, message", [
    (["--backend", "nope"], "--backend 'nope': unknown backend"),
    (["--route", "x"], "expected NAME=BACKEND"),
    (["--route", "x=nope"], "unknown backend 'nope'"),
    (["--backends", "/no/such.toml"], "no such file"),
    (["--mic-tail", "-1"], "--mic-tail"),
    (["--max-queue-bytes", "0"], "--max-queue-bytes"),
])
def test_routing_usage_errors_exit_2(argv, message):
    rc, _, err = run("run", "epoll_tour", "--mic", "stub", *argv)
    assert rc == 2 and message in err, err


def test_backend_table_from_file_and_environment(tmp_path, monkeypatch):
    table = tmp_path / "backends.toml"
    table.write_text('[backends.lab]\nurl = "stub"\n')
    # --backends FILE: the route target and --backend are checked against it
    rc, out, err = run("run", "mic_rtasr", "--mic", f"file:{DEMO}", "--fast", "--mic-tail", "0",
                       "--backends", str(table), "--route", "openai-realtime-asr=lab")
    assert rc == 0, out + err
    # $SPEAR_LAB_BACKENDS: the same table for the CLI ...
    env = {**__import__("os").environ, "SPEAR_LAB_BACKENDS": str(table)}
    rc, out, err = run("run", "epoll_tour", "--mic", "stub", "--backend", "lab", env=env)
    assert rc == 0, out + err
    # ... and for Session (HostConfig.backends left unset)
    monkeypatch.setenv("SPEAR_LAB_BACKENDS", str(table))
    assert "lab" in BackendRegistry.from_env()
    with Session(HostConfig(routes={"openai-realtime-asr": "lab"})) as s:
        fd = ws_fd(s.host, backend="openai-realtime-asr")
        assert s.host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        assert status(s.host, fd)["backend"] == "lab"


# -- guest output ----------------------------------------------------------------------------

LOGGER = '''(module
  (import "spear" "log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hello from the guest\\n")
  (data (i32.const 64) "evil\\1b[2J\\n--- forged: exit 0; 0.00 s\\1b]0;t\\07")
  (data (i32.const 128) "careful\\n")
  (func (export "_start")
    (drop (call $log (i32.const 2) (i32.const 0) (i32.const 21)))
    (drop (call $log (i32.const 2) (i32.const 64) (i32.const 39)))
    (drop (call $log (i32.const 3) (i32.const 128) (i32.const 8)))))'''


def test_guest_log_is_printed_one_neutralised_line_per_message(tmp_path):
    guest = tmp_path / "logger.wat"
    guest.write_text(LOGGER)
    rc, out, _ = run("run", str(guest), "--mic", "stub", "--backend", "stub")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "[logger] hello from the guest"
    assert lines[1].startswith("[logger] evil\\x1b[2J\\n--- forged") and "\x1b" not in out
    assert lines[2] == "[logger warn] careful"
    assert [ln for ln in lines if ln.startswith("--- ")] == [lines[3]]  # no forged summary
    rc, out, _ = run("run", str(guest), "--mic", "stub", "--backend", "stub", "-q")
    assert rc == 0 and "[logger]" not in out and summary(out).startswith("--- logger: exit 0")


def test_session_keeps_the_guest_log_in_the_result_and_the_trace():
    wat = LOGGER
    with Session() as s:
        handle = s.start(wat, name="logger")
        res = s.wait(handle, timeout=30)
        assert handle.logs == res.logs
        assert [t for _, _, t in res.logs][0] == "hello from the guest\n"
        assert [lv for _, lv, _ in res.logs] == [2, 2, 3]
        logs = s.trace.logs("logger")
        assert [r["text"] for r in logs][0] == "hello from the guest\n"
        assert {r["kind"] for r in s.trace.records()} >= {"log"}


# -- the file microphone ---------------------------------------------------------------------


def _frames_until_hup(config: HostConfig, limit_s: float = 20.0) -> tuple[int, int]:
    """(frames read, silent frames at the end) of a guest-less mic fd reading the file."""
    import time

    from spear_lab.abi.constants import EPOLLHUP, EPOLLIN, MicCtl

    with Host(config) as h:
        mic = h.mic_create()
        assert h.mic_ctl(mic, MicCtl.SET_PARAM, b'{"source":"file"}') == 0
        ep = h.spear_epoll_create()
        h.spear_epoll_ctl(ep, 1, mic, EPOLLIN | EPOLLHUP)
        frames, silent, end = 0, 0, time.monotonic() + limit_s
        while time.monotonic() < end:
            ready = h.spear_epoll_wait(ep, 4, 1000)
            out = h.mic_read(mic)
            if isinstance(out, bytes):
                frames += 1
                silent = silent + 1 if not any(out) else 0
            elif ready and ready[0][1] & EPOLLHUP:
                return frames, silent
        return frames, -1  # no HUP


def test_file_mic_tail_and_fast_and_loop(cut_speech):
    with wave.open(str(cut_speech)) as w:
        file_frames = -(-w.getnframes() // (w.getframerate() // 50))
    frames, silent = _frames_until_hup(HostConfig(mic_file=str(cut_speech), mic_file_realtime=False,
                                                  mic_file_tail_ms=400))
    assert frames == file_frames + 20 and silent >= 20
    frames, silent = _frames_until_hup(HostConfig(mic_file=str(cut_speech), mic_file_realtime=False))
    assert frames == file_frames and silent < 20
    frames, silent = _frames_until_hup(HostConfig(mic_file=str(cut_speech), mic_file_realtime=False,
                                                  mic_file_loop=True, mic_file_tail_ms=400), 3.0)
    assert silent == -1 and frames > 2 * file_frames  # --loop: no end, --fast still fast


def test_cli_loop_repeats_the_file_until_the_timeout(cut_speech):
    rc, out, err = run("run", "mic_rtasr", "--mic", f"file:{cut_speech}", "--fast", "--loop",
                       "--route", "openai-realtime-asr=stub", "--timeout", "3")
    assert rc == 124 and "timeout" in err
    assert "mic hup" not in out


def test_cli_host_ceiling_flags_reach_the_host_config():
    args = cli.build_parser().parse_args(["run", "epoll_tour", "--mic", "stub", "--max-queue-bytes",
                                          "65536", "--max-param-bytes", "4096", "--mic-tail", "700",
                                          "--loop", "--route", "a=stub", "--stub-fallback"])
    config = cli.host_config(args)
    assert (config.max_send_queue_bytes, config.max_recv_queue_bytes, config.max_mic_queue_bytes,
            config.max_param_bytes) == (65536, 65536, 65536, 4096)
    assert (config.mic_file_tail_ms, config.mic_file_loop, config.routes, config.stub_fallback) == (
        700, True, {"a": "stub"}, True)
    with Host(config) as h:
        fd = h.rtasr_create()
        payload = json.dumps({"key": "max_send_queue_bytes", "value": 1 << 30}).encode()
        assert h.rtasr_ctl(fd, RtasrCtl.SET_PARAM, payload) == 0
        assert status(h, fd)["max_send_queue_bytes"] == 65536
    defaults = cli.host_config(cli.build_parser().parse_args(["run", "x", "--mic", "stub"]))
    assert defaults.mic_file_tail_ms == 2500 and defaults.stub_fallback is False


def test_an_unreadable_backend_table_is_a_clear_error(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere" / "backends.toml"
    monkeypatch.setenv("SPEAR_LAB_BACKENDS", str(missing))
    with Host() as h:
        fd = ws_fd(h)
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == -Errno.EIO
        last = status(h, fd)["last_error"]
        assert "cannot read $SPEAR_LAB_BACKENDS" in last and str(tmp_path) not in last
    import os

    rc, _, err = run("run", "epoll_tour", "--mic", "stub", env={**os.environ})
    assert rc == 2 and "$SPEAR_LAB_BACKENDS" in err
