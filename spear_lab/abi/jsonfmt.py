"""Compact JSON as the host produces it: no spaces, sorted keys, UTF-8 left unescaped."""

from __future__ import annotations

import json
from typing import Any


def dumps(obj: Any) -> str:
    """Serialise ``obj`` compactly (``{"a":1,"b":[2]}``) with keys sorted."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def dumpb(obj: Any) -> bytes:
    """:func:`dumps` encoded as UTF-8 bytes."""
    return dumps(obj).encode()


def loads(payload: bytes | None) -> tuple[bool, Any]:
    """Parse a guest payload; ``(False, None)`` when absent or not valid JSON."""
    if payload is None:
        return False, None
    try:
        return True, json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False, None
