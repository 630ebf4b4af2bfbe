"""Client messages of a transcription session: parse and validate one (sans-I/O).

:func:`parse` checks the envelope of one client message (UTF-8 JSON object,
``event_id``, ``type``, no unknown fields) against the session's handler table
and returns a :class:`Prepared`: the handler to run, or the ``error`` event that
answers the message. :func:`append_audio` checks and base64-decodes the ``audio``
of an ``input_audio_buffer.append``. Error codes and messages are OpenAI's.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from .events import Ids, Send, error_event

__all__ = ["Prepared", "Handlers", "UNSUPPORTED", "reject", "parse", "append_audio"]

UNSUPPORTED = frozenset({"conversation.item.create", "conversation.item.delete",
                         "conversation.item.retrieve", "conversation.item.truncate",
                         "response.create", "response.cancel", "output_audio_buffer.clear"})
"""Client events of conversation sessions that a transcription session refuses by name."""
MAX_EVENT_ID = 512

Handlers = Mapping[str, tuple[set, Callable]]
"""Client event type -> (its allowed fields besides ``type``/``event_id``, handler)."""


@dataclass
class Prepared:
    """A client message after :meth:`TranscriptionSession.prepare`: either the
    ``actions`` answering it (an error) or its handler, event and decoded audio."""

    actions: list | None = None
    handler: Callable | None = None
    event: dict | None = None
    event_id: str | None = None
    pcm: np.ndarray | None = None
    probs: np.ndarray | None = None


def reject(ids: Ids, code: str, message: str, param: str | None = None,
           eid: str | None = None) -> Prepared:
    """A message answered by an ``invalid_request_error`` event."""
    return Prepared(actions=[Send(error_event(ids, code, message, param, eid))])


def parse(ids: Ids, data: str | bytes, handlers: Handlers) -> Prepared:
    """Parse one client message and pick its handler from ``handlers``, or reject it."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            return reject(ids, "invalid_json", "The message is not valid UTF-8 JSON.")
    try:
        ev = json.loads(data)
    except (ValueError, RecursionError) as exc:
        return reject(ids, "invalid_json", f"We could not parse the JSON body of your "
                      f"request: {exc}.")
    if not isinstance(ev, dict):
        return reject(ids, "invalid_event", "The event must be a JSON object.")
    eid = ev.get("event_id")
    if eid is not None and not isinstance(eid, str):
        return reject(ids, "invalid_type", "Invalid type for 'event_id': expected a string.",
                      "event_id")
    if eid is not None and len(eid) > MAX_EVENT_ID:
        return reject(ids, "string_above_max_length", "Invalid 'event_id': string too long. "
                      f"Expected a string with maximum length {MAX_EVENT_ID}.", "event_id")
    kind = ev.get("type")
    if kind is None:
        return reject(ids, "invalid_event", "The 'type' field is missing.", None, eid)
    if not isinstance(kind, str):
        return reject(ids, "invalid_type", "Invalid type for 'type': expected a string.",
                      "type", eid)
    if kind not in handlers:
        if kind in UNSUPPORTED:
            msg = f"'{kind}' is not supported in transcription sessions."
        else:
            msg = (f"Invalid value: '{kind}'. Supported values are: "
                   + ", ".join(f"'{k}'" for k in handlers) + ".")
        return reject(ids, "invalid_value", msg, "type", eid)
    fields, handler = handlers[kind]
    for k in ev:
        if k not in fields | {"type", "event_id"}:
            return reject(ids, "unknown_parameter", f"Unknown parameter: '{k}'.", k, eid)
    return Prepared(handler=handler, event=ev, event_id=eid)


def append_audio(ids: Ids, p: Prepared, max_bytes: int) -> bytes | Prepared:
    """The decoded ``audio`` bytes of an append (at most ``max_bytes``), or its rejection."""
    audio, eid = p.event.get("audio"), p.event_id
    if audio is None:
        return reject(ids, "missing_required_parameter",
                      "Missing required parameter: 'audio'.", "audio", eid)
    if not isinstance(audio, str):
        return reject(ids, "invalid_type", "Invalid type for 'audio': expected a base64 "
                      "string.", "audio", eid)
    too_big = (f"Invalid 'audio': the audio is larger than the maximum of {max_bytes} "
               "bytes (15 MiB).")
    if len(audio) // 4 * 3 > max_bytes + 3:
        return reject(ids, "invalid_value", too_big, "audio", eid)
    try:
        raw = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        return reject(ids, "invalid_value", "Invalid 'audio': expected base64-encoded "
                      "audio bytes.", "audio", eid)
    if len(raw) > max_bytes:
        return reject(ids, "invalid_value", too_big, "audio", eid)
    return raw
