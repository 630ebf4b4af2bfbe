"""One conversation item of a transcription session and the events about it (sans-I/O).

An :class:`Item` is a span of the session's audio (16 kHz sample indices) that is
being, or was, committed. The functions here build the server events that
announce a committed item and carry its transcript or its failure, in the order
the client receives them. Each takes ``send(type, **fields)``, the session's
event factory (it assigns the event ids, so call order is id order).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from . import transcripts as tx
from .audio import RECOGNISER_RATE
from .engines import Recognition
from .events import Send

__all__ = ["Item", "SAMPLES_PER_MS", "committed", "delta", "transcribed", "failed"]

SAMPLES_PER_MS = RECOGNISER_RATE // 1000
"""16 kHz samples per millisecond: positions are sample indices, events say ms."""

Sender = Callable[..., Send]

DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"


@dataclass
class Item:
    """An item's audio span and transcription state."""

    id: str
    start: int  # 16 kHz sample index of the item's first sample
    fed: int  # samples given to the recogniser so far (absolute index)
    transcription: dict | None
    profile: tx.Profile
    next_partial: int = 0
    live: tx.LiveDeltas = field(default_factory=tx.LiveDeltas)
    end: int | None = None


def committed(send: Sender, dialect: str, previous: str | None, item_id: str) -> list[Send]:
    """``input_audio_buffer.committed`` and the item's conversation events
    (GA: ``conversation.item.added`` + ``.done``; beta: ``conversation.item.created``)."""
    out = [send("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id)]
    body = {"id": item_id, "object": "realtime.item", "type": "message", "status": "completed",
            "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
    if dialect == "ga":
        for name in ("conversation.item.added", "conversation.item.done"):
            out.append(send(name, previous_item_id=previous, item=json.loads(json.dumps(body))))
    else:
        out.append(send("conversation.item.created", previous_item_id=previous, item=body))
    return out


def delta(send: Sender, item_id: str, piece: str, logprobs: list | None = None) -> Send:
    """One ``…input_audio_transcription.delta`` event."""
    extra = {"logprobs": logprobs} if logprobs is not None else {}
    return send(DELTA, item_id=item_id, content_index=0, delta=piece, **extra)


def transcribed(send: Sender, item: Item, rec: Recognition, with_logprobs: bool) -> list[Send]:
    """The last deltas of ``item`` (as its profile delivers them) and its ``completed``
    event, whose transcript the deltas add up to exactly."""
    lp = tx.logprobs(rec) if with_logprobs else None
    text = " ".join(rec.text.split())
    if item.profile.deltas == tx.SINGLE:
        pieces = [text] if text else []
    elif item.profile.deltas == tx.LIVE:
        pieces, text = item.live.final(text)
    else:
        pieces = tx.split_deltas(text)
    delta_lps: list[list | None] = [None] * len(pieces)  # live deltas carry none
    if lp is not None and item.profile.deltas == tx.SINGLE and pieces:
        delta_lps = [lp]
    elif lp is not None and item.profile.deltas == tx.AFTER_COMMIT and len(lp) == len(pieces):
        delta_lps = [[entry] for entry in lp]
    out = [delta(send, item.id, p, d) for p, d in zip(pieces, delta_lps)]
    ms = ((item.end or item.start) - item.start) / SAMPLES_PER_MS
    usage = tx.usage(item.profile.usage, ms, text, (item.transcription or {}).get("prompt"))
    extra = {"logprobs": lp} if lp is not None else {}
    out.append(send(COMPLETED, item_id=item.id, content_index=0, transcript=text, usage=usage,
                    **extra))
    return out


def failed(send: Sender, item_id: str, message: str) -> Send:
    """The ``…input_audio_transcription.failed`` event of ``item_id``."""
    return send(FAILED, item_id=item_id, content_index=0,
                error={"type": "server_error", "code": "transcription_failed",
                       "message": message, "param": None})
