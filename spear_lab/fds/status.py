"""GET_STATUS objects as typed records: what an rtasr fd (docs/abi.md §5.6) and a mic fd
(docs/abi.md §7.6) report.

Pure.  Each record is a frozen dataclass built by ``from_json`` from the decoded JSON
object; keys it does not name are ignored (the raw dict keeps them), and [EXT] keys have
defaults so that a reference host's object builds too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self

__all__ = ["MicStatus", "RtasrStatus"]


class _Status:
    """Base of the status records: built from a GET_STATUS object."""

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Self:
        """Build from the GET_STATUS object (unknown keys ignored; TypeError when one of
        the reference keys is missing)."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in obj.items() if k in names})


@dataclass(frozen=True)
class RtasrStatus(_Status):
    """GET_STATUS of an rtasr fd (docs/abi.md §5.6), plus the [EXT] keys ``transport``, ``backend``
    and ``peer_closed``.  Byte counts are raw audio/control bytes."""

    state: str
    last_error: str | None
    dropped_events: int
    send_queue_bytes: int
    recv_queue_bytes: int
    max_send_queue_bytes: int
    max_recv_queue_bytes: int
    transport: str | None = None
    backend: str | None = None
    peer_closed: bool = False


@dataclass(frozen=True)
class MicStatus(_Status):
    """GET_STATUS of a mic fd (docs/abi.md §7.6), plus the [EXT] key ``source`` (the source
    actually running).  Byte counts are pcm16 bytes; ``config`` (the four format keys) is
    None before the first SET_PARAM.  A source's own [EXT] keys (the browser source's
    ``gap_frames`` and ``jitter_ms``) stay in the raw dict."""

    config: dict[str, Any] | None
    running: bool
    last_error: str | None
    dropped_frames: int
    queue_bytes: int
    max_queue_bytes: int
    generation: int
    source: str | None = None
