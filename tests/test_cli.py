"""``spear-lab run`` on each built-in guest, and its error paths."""

import io
import re
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest

from spear_lab import cli
from spear_lab.runtime import builtin_guests

DEMO = cli.DEMO_WAV
ROOT = Path(__file__).resolve().parents[1]


def run(*argv, timeout=120):
    """``spear-lab`` in a subprocess: (exit status, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "spear_lab.cli", *argv], capture_output=True,
                       text=True, timeout=timeout, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr


def summary(out):
    line = [ln for ln in out.splitlines() if ln.startswith("--- ")]
    assert line, out
    return line[-1]


def test_every_builtin_guest_is_listed():
    names = set(builtin_guests())
    assert {"realtime_asr", "mic_rtasr", "epoll_tour", "backpressure"} <= names
    rc, out, _ = run("guests")
    assert rc == 0 and all(n in out for n in names)


def test_epoll_tour_matches_the_abi():
    rc, out, _ = run("run", "epoll_tour", "--backend", "stub", "--mic", "stub")
    assert rc == 0
    assert "summary: steps=45 mismatches=0" in out
    assert re.search(r"--- epoll_tour: exit 0; .*errno .*-EAGAIN=\d+", out)


def test_backpressure_reports_eagain():
    rc, out, _ = run("run", "backpressure", "--backend", "stub", "--", "--frames", "60")
    assert rc == 0
    m = re.search(r"summary: written=(\d+) eagain=(\d+) outwaits=(\d+)", out)
    assert m and int(m.group(1)) == 60 and int(m.group(2)) > 0 and int(m.group(3)) > 0


@pytest.mark.parametrize("name", ["link_all", "epoll_basics", "nomem", "sdk_selftest"])
def test_small_guests_run(name):
    rc, out, _ = run("run", name, "--mic", "stub", "--backend", "stub")
    assert rc == 0 and summary(out).startswith(f"--- {name}: exit 0")


def test_mic_rtasr_runs_on_a_file_in_place_of_the_device():
    # the reference-style guest insists on a device with fallback off; the host substitutes,
    # and routes the backend name it asks for (it no longer falls back to the stub silently)
    rc, out, err = run("run", "mic_rtasr", "--mic", f"file:{DEMO}", "--fast",
                       "--route", "openai-realtime-asr=stub")
    assert rc == 0, err
    assert "exit 0" in summary(out)


def test_realtime_asr_transcribes_through_the_local_server():
    rc, out, _ = run("run", "realtime_asr", "--mic", f"file:{DEMO}", "--fast", timeout=300)
    assert rc == 0
    hyp = [ln.split(": ", 1)[1] for ln in out.splitlines() if ln.startswith("completed ")]
    ref = [ln for ln in cli.DEMO_TEXT.read_text().splitlines() if ln]
    assert len(hyp) == len(ref), out
    assert jiwer.wer(" ".join(ref).lower(), " ".join(hyp).lower()) <= 0.35
    assert "transcripts 4" in summary(out)


def test_timeout_stops_a_spinning_guest():
    rc, out, err = run("run", "spin", "--timeout", "0.5")
    assert rc == 124 and "timeout" in err
    assert "trap: stopped" in summary(out)


@pytest.mark.parametrize("argv, message", [
    (["run", "no_such_guest"], "no guest 'no_such_guest'"),
    (["run", "epoll_tour", "--segmentation", "{bad"], "--segmentation: invalid JSON"),
    (["run", "epoll_tour", "--segmentation", "[1]"], "--segmentation: invalid JSON object"),
    (["run", "epoll_tour", "--mic", "file:/nonexistent.wav"], "no such file"),
    (["run", "epoll_tour", "--mic", "speaker"], "expected device"),
])
def test_usage_errors_are_clear(argv, message):
    rc, out, err = run(*argv)
    assert rc == 2 and message in err


def test_guest_failure_exit_status(tmp_path):
    wat = tmp_path / "exit7.wat"
    wat.write_text('(module (import "wasi_snapshot_preview1" "proc_exit" (func $e (param i32)))'
                   ' (memory (export "memory") 1) (func (export "_start") (call $e (i32.const 7))))')
    rc, out, _ = run("run", str(wat))
    assert rc == 7 and "exit 7" in summary(out)


def test_summary_in_process():
    # the same command in-process, to check the summary line without a subprocess
    args = cli.build_parser().parse_args(["run", "epoll_tour", "--backend", "stub"])
    args.guest_args = []
    out = io.StringIO()
    assert cli.run_command(args, out=out) == 0
    assert "hostcalls 45" in summary(out.getvalue())
