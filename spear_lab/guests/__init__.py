"""The guest SDK that ships inside the package: header, guest sources, prebuilt ``.wasm``.

Everything is found through :mod:`importlib.resources` (the data package
``spear_lab.guests.sdk``; in a checkout that is ``guests/``, mapped by setup.py), so it
works the same from a wheel, an sdist build or an editable install::

    clang --target=wasm32-wasi -O2 -I"$(spear-lab sdk --include-dir)" -o my.wasm my.c

- :func:`sdk_dir`: the tree — ``include/spear.h``, ``c/``, ``wat/``, ``selftest/``,
  ``build/``, ``Makefile`` (``make -C DIR BUILD=/tmp/out`` rebuilds every guest);
- :func:`include_dir`: the directory holding ``spear.h`` (for ``-I``);
- :func:`build_dir` / :func:`prebuilt`: the prebuilt guests, by name;
- :func:`cflags`: the compiler flags the bundled guests are built with.

Each raises :class:`FileNotFoundError` naming what is missing when the installed package
lacks it (a broken install), and :class:`RuntimeError` when the package is not on a file
system (a zip import) — a compiler needs real paths.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["build_dir", "cflags", "header", "include_dir", "prebuilt", "sdk_dir"]

SDK_PACKAGE = "spear_lab.guests.sdk"
TARGET = "wasm32-wasi"


def sdk_dir() -> Path:
    """The installed guest tree (``…/spear_lab/guests/sdk``, or ``guests/`` in a checkout)."""
    try:
        root = resources.files(SDK_PACKAGE)
    except ModuleNotFoundError:
        raise FileNotFoundError(
            f"the guest SDK ({SDK_PACKAGE}) is not installed with spear_lab: reinstall the package"
        ) from None
    if not isinstance(root, Path):
        raise RuntimeError(f"{SDK_PACKAGE} is not on a file system ({root!r}); "
                           "install spear_lab unzipped to use the guest SDK")
    return root


def include_dir() -> Path:
    """The directory that holds ``spear.h`` (pass it to the C compiler's ``-I``)."""
    d = sdk_dir() / "include"
    if not (d / "spear.h").is_file():
        raise FileNotFoundError(f"no spear.h in {d}: the installed guest SDK is incomplete")
    return d


def header() -> Path:
    """The C SDK header ``spear.h``."""
    return include_dir() / "spear.h"


def build_dir() -> Path:
    """The directory of the prebuilt guests (``NAME.wasm``); it may be empty, never absent
    in a complete install."""
    return sdk_dir() / "build"


def prebuilt() -> dict[str, Path]:
    """Name -> path of every prebuilt guest shipped with the package (sorted by name)."""
    d = build_dir()
    return {p.stem: p for p in sorted(d.glob("*.wasm"))} if d.is_dir() else {}


def cflags() -> list[str]:
    """Flags to compile a C guest against the installed SDK, as the bundled guests are:
    ``--target=wasm32-wasi -O2 -Wall -I<include_dir>`` (link with ``-Wl,--strip-all``)."""
    return [f"--target={TARGET}", "-O2", "-Wall", f"-I{include_dir()}"]
