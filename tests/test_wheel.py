"""The distributions: ``python -m build`` makes an sdist and, from it, a wheel that carries
everything the package reads at run time (data, prebuilt guests, the C SDK and the guest
sources, ``py.typed``) and complete metadata.

The build runs once per session into a temp dir (the checkout gets only setuptools'
``*.egg-info``, which is ignored).  ``scripts/check_installed.sh`` then installs such a
wheel and runs it; this file checks what is inside.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import spear_lab

ROOT = Path(__file__).resolve().parents[1]
GUESTS = ROOT / "guests"
SDK = "spear_lab/guests/sdk"


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    p = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "deprecat" not in (p.stdout + p.stderr).lower(), p.stdout + p.stderr
    (sdist,), (wheel,) = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    return {"sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def wheel(dist) -> zipfile.ZipFile:
    with zipfile.ZipFile(dist["wheel"]) as z:
        yield z


def _files(pattern: str) -> list[Path]:
    found = sorted(p for p in GUESTS.glob(pattern) if p.is_file())
    assert found, f"nothing matches guests/{pattern}"
    return found


def test_wheel_carries_the_demo_data_and_py_typed(wheel):
    names = set(wheel.namelist())
    for rel in ("py.typed", "data/demo_speech.wav", "data/demo_speech.txt"):
        assert f"spear_lab/{rel}" in names
        assert wheel.read(f"spear_lab/{rel}") == (ROOT / "spear_lab" / rel).read_bytes()


def test_wheel_carries_every_prebuilt_guest_byte_for_byte(wheel):
    names = set(wheel.namelist())
    for wasm in _files("build/*.wasm"):
        member = f"{SDK}/build/{wasm.name}"
        assert member in names, f"{member} missing from the wheel"
        assert wheel.read(member) == wasm.read_bytes(), member


def _guest_tree() -> list[str]:
    """Every file of guests/ that the checkout keeps (tracked or not ignored)."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "guests"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
        files = [ROOT / line for line in out.splitlines()]
    else:
        files = [p for p in GUESTS.rglob("*") if "__pycache__" not in p.parts]
    return sorted(p.relative_to(GUESTS).as_posix() for p in files if p.is_file())


def test_wheel_carries_the_sdk_header_sources_and_makefile(wheel):
    names = set(wheel.namelist())
    assert wheel.read(f"{SDK}/include/spear.h") == (GUESTS / "include/spear.h").read_bytes()
    tree = _guest_tree()
    assert {"Makefile", "include/spear.h", "c/realtime_asr.c", "wat/spin.wat"} <= set(tree)
    missing = [rel for rel in tree if f"{SDK}/{rel}" not in names]
    assert not missing, f"guests/ files missing from the wheel (pyproject package-data): {missing}"


def test_wheel_carries_every_module_and_nothing_else(wheel):
    names = set(wheel.namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "spear_lab").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules - names == set()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.split("/")[0] in ("tests", "notebooks", "bench", "guests")]


def test_wheel_metadata_is_complete(wheel):
    info = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    meta = email.message_from_bytes(wheel.read(info))
    assert meta["Name"] == "spear_lab" and meta["Version"] == spear_lab.__version__
    assert meta["License-Expression"] == "Apache-2.0" and meta["License"] is None
    assert meta["License-File"] == "LICENSE"
    assert info.replace("METADATA", "licenses/LICENSE") in wheel.namelist()
    assert meta["Requires-Python"] == ">=3.11"
    classifiers = meta.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "Typing :: Typed" in classifiers
    assert meta.get_all("Project-URL")
    assert {"test", "whisper"} <= set(meta.get_all("Provides-Extra"))
    entry = wheel.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "spear-lab = spear_lab.cli:main" in entry


def test_sdist_has_what_a_wheel_is_built_from(dist):
    with tarfile.open(dist["sdist"]) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for rel in ("pyproject.toml", "setup.py", "LICENSE", "README.md", "guests/__init__.py",
                "guests/include/spear.h", "guests/Makefile", "spear_lab/cli.py",
                "spear_lab/data/demo_speech.wav"):
        assert rel in names, rel
    missing = [rel for rel in _guest_tree() if f"guests/{rel}" not in names]
    assert not missing, f"guests/ files missing from the sdist: {missing}"
