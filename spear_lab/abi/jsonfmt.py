"""Compact JSON as the host produces it: no spaces, sorted keys, UTF-8 left unescaped."""

from __future__ import annotations

import json
from typing import Any


def dumps(obj: Any) -> str:
    """Serialise ``obj`` compactly (``{"a":1,"b":[2]}``) with keys sorted."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)


def dumpb(obj: Any) -> bytes:
    """:func:`dumps` encoded as UTF-8 bytes."""
    return dumps(obj).encode()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(payload: bytes | None) -> tuple[bool, Any]:
    """Parse a guest payload; ``(False, None)`` when absent or not valid JSON.

    Stricter than :func:`json.loads`, as RFC 8259 is: ``NaN``/``Infinity`` and strings
    with lone surrogates (``"\\ud800"``, which cannot be re-encoded) are refused.
    """
    if payload is None:
        return False, None
    try:
        obj = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
        dumpb(obj)  # lone surrogates fail here, not later inside a hostcall
        return True, obj
    except (UnicodeError, ValueError, RecursionError):
        return False, None
