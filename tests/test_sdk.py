"""The guest SDK installed with the package (:mod:`spear_lab.guests`, ``spear-lab sdk``) and
``spear-lab --version``: paths come from importlib.resources, a C guest compiled against
them runs, the version is the installed metadata's."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path

import pytest

import spear_lab
from spear_lab import guests
from spear_lab.runtime import builtin_guests, load_guest

ROOT = Path(__file__).resolve().parents[1]
GUEST_C = ROOT / "scripts" / "installed_sdk_guest.c"


def cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spear_lab.cli", *argv], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_sdk_paths_come_from_the_installed_package():
    root = guests.sdk_dir()
    assert root.samefile(Path(str(resources.files("spear_lab.guests.sdk"))))
    assert guests.header() == guests.include_dir() / "spear.h"
    assert "SPEAR_EAGAIN" in guests.header().read_text()
    assert (root / "Makefile").is_file() and sorted((root / "c").glob("*.c"))
    assert f"-I{guests.include_dir()}" in guests.cflags()


def test_builtin_guests_are_the_prebuilt_ones():
    prebuilt = guests.prebuilt()
    assert {"realtime_asr", "mic_rtasr", "epoll_tour", "backpressure"} <= set(prebuilt)
    found = builtin_guests()
    for name, path in prebuilt.items():
        assert found[name] == path and path.parent == guests.build_dir()
    assert load_guest("epoll_tour").wasm == prebuilt["epoll_tour"].read_bytes()


def test_sdk_command_prints_the_paths(tmp_path):
    p = cli("sdk", "--include-dir", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == str(guests.include_dir())
    p = cli("sdk", "--dir", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == str(guests.sdk_dir())
    p = cli("sdk", "--cflags", cwd=tmp_path)
    assert p.returncode == 0 and shlex.split(p.stdout) == guests.cflags()
    p = cli("sdk", cwd=tmp_path)
    assert p.returncode == 0 and str(guests.header()) in p.stdout
    assert f"({len(guests.prebuilt())} guests)" in p.stdout


def test_version_is_the_installed_metadata(tmp_path):
    p = cli("--version", cwd=tmp_path)
    assert p.returncode == 0
    assert p.stdout.strip() == f"spear-lab {metadata.version('spear_lab')}"
    assert metadata.version("spear_lab") == spear_lab.__version__


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang (wasm32-wasi) not installed")
def test_a_c_guest_builds_against_sdk_cflags_and_runs(tmp_path):
    flags = shlex.split(cli("sdk", "--cflags", cwd=tmp_path).stdout)
    wasm = tmp_path / "sdk_guest.wasm"
    cc = subprocess.run(["clang", *flags, "-Werror", "-Wl,--strip-all", "-o", str(wasm),
                         str(GUEST_C)], capture_output=True, text=True, timeout=120)
    assert cc.returncode == 0, cc.stderr
    p = cli("run", str(wasm), "--mic", "stub", "--backend", "stub", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "sdk_guest ok epfd=1000 fd=1001 eagain=11" in p.stdout
    assert "--- sdk_guest: exit 0;" in p.stdout
