"""Framing of the parent <-> recognition worker pipe protocol.

Every message is a header ``<BQI`` (op, key, payload length) and a payload (JSON
or raw int16 audio). A key is ``lane << 16 | stream``.
"""

from __future__ import annotations

import json
import struct

HEADER = struct.Struct("<BQI")

# parent -> worker
OPEN, FEED, PARTIAL, FINISH, ABORT, SYNC, SHUTDOWN, DROP_LANE = 1, 2, 3, 4, 5, 6, 7, 8
# worker -> parent
READY, PARTIAL_TEXT, FINAL, FAILED, SYNCED, FATAL = 10, 11, 12, 13, 14, 15


def encode(op: int, key: int, payload: bytes | dict | None = None) -> bytes:
    """One framed message; dict payloads are JSON."""
    if isinstance(payload, dict):
        payload = json.dumps(payload, separators=(",", ":")).encode()
    payload = payload or b""
    return HEADER.pack(op, key, len(payload)) + payload
