"""Failures a user can cause end as one clear line on stderr and a non-zero exit, never a
traceback; ``-v`` (before or after the sub-command) shows the traceback."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from spear_lab.cliutil import UsageError, guarded, has_verbose


def cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spear_lab.cli", *argv], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("argv, status, message", [
    ([], 2, "spear-lab: error: the following arguments are required: command"),
    (["guests", "--no-such-flag"], 2, "spear-lab: error: unrecognized arguments: --no-such-flag"),
    (["bogus"], 2, "invalid choice: 'bogus'"),
    (["run"], 2, "spear-lab run: error: the following arguments are required: guest"),
    (["sdk", "--include-dir", "--dir"], 2, "not allowed with argument"),
    (["demo", "--timeout", "soon"], 2, "spear-lab demo: error: argument --timeout"),
    (["run", "missing.wasm"], 2, "no guest 'missing.wasm'"),
    (["run", "epoll_tour", "--mic", "file:/no/such.wav"], 2, "no such file '/no/such.wav'"),
])
def test_bad_input_is_one_line(tmp_path, argv, status, message):
    p = cli(*argv, cwd=tmp_path)
    assert p.returncode == status
    assert message in one_line(p.stderr)


def test_parse_errors_point_at_help(tmp_path):
    line = one_line(cli("run", cwd=tmp_path).stderr)
    assert line.endswith("(see spear-lab run --help)")


def test_a_file_that_is_neither_wasm_nor_wat(tmp_path):
    (tmp_path / "junk.wasm").write_bytes(b"\x7fELF\xff\xfe")
    p = cli("run", "junk.wasm", cwd=tmp_path)
    assert p.returncode == 2
    assert "junk.wasm: neither a wasm module" in one_line(p.stderr)


def _raise(exc: BaseException):
    def call() -> int:
        raise exc
    return call


@pytest.mark.parametrize("exc, status, text", [
    (FileNotFoundError(2, "No such file or directory", "x.wav"), 1,
     "spear-lab demo: error: [Errno 2] No such file or directory: 'x.wav' (-v shows the traceback)"),
    (UsageError("--mic speaker: expected device"), 2,
     "spear-lab demo: error: --mic speaker: expected device (-v shows the traceback)"),
    (KeyError("rate"), 1, "spear-lab demo: error: KeyError: 'rate' (-v shows the traceback)"),
    (KeyboardInterrupt(), 130, "spear-lab demo: interrupted"),
])
def test_guarded_turns_exceptions_into_one_line(exc, status, text):
    err = io.StringIO()
    assert guarded("demo", _raise(exc), verbose=False, err=err) == status
    assert err.getvalue() == text + "\n"


def test_guarded_verbose_shows_the_traceback_then_the_line():
    err = io.StringIO()
    assert guarded("run", _raise(RuntimeError("no input device\nat all")), verbose=True, err=err) == 1
    out = err.getvalue()
    assert out.startswith("Traceback (most recent call last):")
    assert out.endswith("spear-lab run: error: no input device at all\n")


def test_a_passing_command_returns_its_status():
    assert guarded("run", lambda: 7, verbose=False, err=io.StringIO()) == 7


def test_verbose_flag_detection():
    assert has_verbose(["--port", "1", "-v"]) and has_verbose(["-vv"]) and has_verbose(["--verbose"])
    assert not has_verbose(["--vad", "x", "-q", "-"])


def test_verbose_after_the_subcommand_is_accepted(tmp_path):
    p = cli("sdk", "-v", "--include-dir", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.strip().endswith("include")
