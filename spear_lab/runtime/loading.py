"""Finding and loading guests: a path, wasm bytes, WAT text or a built-in name.

A built-in guest is a prebuilt ``NAME.wasm`` shipped in the package
(:mod:`spear_lab.guests`) or found in ``$SPEAR_LAB_GUESTS``.  Running them is
:mod:`spear_lab.runtime.guest`'s job.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import wasmtime

log = logging.getLogger(__name__)

WASM_MAGIC = b"\0asm"


def guest_dirs() -> list[Path]:
    """Where built-in guests are looked up: ``$SPEAR_LAB_GUESTS``, then the prebuilt guests
    installed with the package (:func:`spear_lab.guests.build_dir`)."""
    from .. import guests

    dirs = []
    env = os.environ.get("SPEAR_LAB_GUESTS")
    if env:
        dirs.append(Path(env))
    try:
        dirs.append(guests.build_dir())
    except (FileNotFoundError, RuntimeError) as exc:
        log.warning("no prebuilt guests: %s", exc)
    return dirs


def builtin_guests() -> dict[str, Path]:
    """Name -> path of every built-in guest found (``$SPEAR_LAB_GUESTS`` wins a tie)."""
    found: dict[str, Path] = {}
    for d in reversed(guest_dirs()):
        if d.is_dir():
            for p in sorted(d.glob("*.wasm")):
                found[p.stem] = p
    return found


@dataclass(frozen=True)
class Guest:
    """A guest module's bytes (wasm binary) and a display name."""

    name: str
    wasm: bytes

    def __repr__(self) -> str:
        return f"<Guest {self.name} {len(self.wasm)} bytes>"


def load_guest(source: Guest | str | os.PathLike[str] | bytes, name: str | None = None) -> Guest:
    """A :class:`Guest` from a path, wasm/WAT bytes, WAT text or a built-in name.

    Raises FileNotFoundError naming the built-ins when nothing matches, ValueError when
    WAT text does not parse or a file is neither wasm nor text.
    """
    if isinstance(source, Guest):
        return source
    if isinstance(source, bytes):
        if source[:4] == WASM_MAGIC:
            return Guest(name or "guest", source)
        return Guest(name or "wat", _wat(source.decode()))
    text = os.fspath(source)
    if text.lstrip().startswith("("):
        return Guest(name or "wat", _wat(text))
    path = Path(text)
    if path.is_file():
        data = path.read_bytes()
        if data[:4] == WASM_MAGIC:
            return Guest(name or path.stem, data)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise ValueError(f"{path}: neither a wasm module (no \\0asm magic) nor WAT text") from None
        return Guest(name or path.stem, _wat(text))
    builtins = builtin_guests()
    if text in builtins:
        return Guest(name or text, builtins[text].read_bytes())
    raise FileNotFoundError(
        f"no guest {text!r}: not a file and not a built-in guest "
        f"(built-ins: {', '.join(sorted(builtins)) or _no_builtins()})"
    )


def _no_builtins() -> str:
    where = ", ".join(str(d) for d in guest_dirs()) or "no guest directory"
    return f"none found in {where}; in a checkout run make -C guests"


def _wat(text: str) -> bytes:
    """WAT text compiled to wasm; ValueError when it does not parse."""
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as exc:
        raise ValueError(f"invalid WAT: {exc}") from None
