"""What the protocol core asks its I/O adapter to do, plus ids and error events.

The sans-I/O :class:`~spear_lab.server.protocol.TranscriptionSession` returns lists
of these small immutable actions; the asyncio adapter performs them in order.
"""

from __future__ import annotations

import itertools
import secrets
import string
from dataclasses import dataclass

import numpy as np

__all__ = ["Send", "OpenStream", "FeedAudio", "RequestPartial", "FinishStream",
           "AbortStream", "CloseConnection", "Action", "Ids", "error_event"]


@dataclass(frozen=True)
class Send:
    """Send ``event`` (a server event dict) to the client."""

    event: dict


@dataclass(frozen=True)
class OpenStream:
    """Start recognising the audio of ``item_id``."""

    item_id: str
    language: str | None
    prompt: str | None
    partials: bool = False
    """Partial hypotheses will be requested (live deltas, semantic_vad)."""


@dataclass(frozen=True, eq=False)
class FeedAudio:
    """Give 16 kHz int16 samples of ``item_id`` to its recogniser."""

    item_id: str
    pcm: np.ndarray


@dataclass(frozen=True)
class RequestPartial:
    """Ask the recogniser of ``item_id`` for its partial hypothesis."""

    item_id: str


@dataclass(frozen=True)
class FinishStream:
    """The audio of ``item_id`` is complete; produce the transcript."""

    item_id: str


@dataclass(frozen=True)
class AbortStream:
    """Drop the recogniser of ``item_id`` (its audio was cleared)."""

    item_id: str


@dataclass(frozen=True)
class CloseConnection:
    """End the connection with WebSocket close ``code`` (after the events before it)."""

    code: int
    reason: str


Action = Send | OpenStream | FeedAudio | RequestPartial | FinishStream | AbortStream | CloseConnection

_ALPHABET = string.ascii_letters + string.digits


class Ids:
    """Id factory: random (``event_`` + 22 alphanumerics, like OpenAI's) or, when
    ``deterministic``, counters per prefix (``item_000001``)."""

    def __init__(self, deterministic: bool = False) -> None:
        self.deterministic = deterministic
        self._counters: dict[str, itertools.count] = {}

    def new(self, prefix: str) -> str:
        if self.deterministic:
            n = next(self._counters.setdefault(prefix, itertools.count(1)))
            return f"{prefix}_{n:06d}"
        return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def error_event(ids: Ids, code: str | None, message: str, param: str | None = None,
                client_event_id: str | None = None,
                kind: str = "invalid_request_error") -> dict:
    """An OpenAI ``error`` server event echoing the client's ``event_id``."""
    return {"type": "error", "event_id": ids.new("event"),
            "error": {"type": kind, "code": code, "message": message, "param": param,
                      "event_id": client_event_id}}
