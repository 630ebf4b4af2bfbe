"""The client side of the OpenAI Realtime transcription protocol, sans I/O.

Builds the bytes a transcription client sends, in two dialects:

- ``"ga"`` (default): ``session.update`` with ``session.type = "transcription"`` and the
  audio settings under ``session.audio.input``; no ``OpenAI-Beta`` header.
- ``"beta"``: ``transcription_session.update`` with the flat fields
  ``input_audio_format``, ``input_audio_transcription``, ``turn_detection`` and
  ``input_audio_noise_reduction``; header ``OpenAI-Beta: realtime=v1``.

The embedded server's wire extension (never sent to other backends): ``include``
listing :data:`VAD_PROBABILITIES` makes the server send events of that type, the
per-frame speech probability (the server's session echo does not list the value);
:func:`host_only_event` recognises them so that the transport can keep them from the
guest.

Everything here returns compact JSON bytes with sorted keys (the host's JSON style).
URL helpers: :func:`realtime_url`, :func:`redact_url`, :func:`is_loopback_url`.
Audio is pcm16, 24 kHz, mono; ``input_audio_buffer.append`` carries it as standard
base64 with padding, split so that no event exceeds :data:`MAX_EVENT_BYTES`.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from dataclasses import dataclass, replace
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

from ..abi.jsonfmt import dumpb

GA, BETA = "ga", "beta"
#: The dialects a backend may speak.
DIALECTS = (GA, BETA)
#: Sample rate of ``audio/pcm`` / ``pcm16`` (the only one the protocol allows).
SAMPLE_RATE_HZ = 24000
#: Largest client event the server accepts (``input_audio_buffer.append``: 15 MiB).
MAX_EVENT_BYTES = 15 * 1024 * 1024
#: The query of a transcription-only session URL.
TRANSCRIPTION_QUERY = "intent=transcription"

COMMIT = b'{"type":"input_audio_buffer.commit"}'
CLEAR = b'{"type":"input_audio_buffer.clear"}'
#: The ``include`` value and event type of the embedded server's VAD extension.
VAD_PROBABILITIES = "spear.vad.probabilities"
_VAD_MARK = VAD_PROBABILITIES.encode()
_APPEND_HEAD = b'{"audio":"'
_APPEND_TAIL = b'","type":"input_audio_buffer.append"}'
_APPEND_OVERHEAD = len(_APPEND_HEAD) + len(_APPEND_TAIL)


def check_dialect(dialect: str) -> str:
    """``dialect`` when it is ``"ga"`` or ``"beta"``; ValueError otherwise."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r} (expected 'ga' or 'beta')")
    return dialect


@dataclass(frozen=True)
class SessionRequest:
    """What the first configuration event says (apart from turn detection).

    ``noise_reduction`` is an object such as ``{"type": "near_field"}`` or None;
    ``include`` lists extra outputs (e.g. ``"item.input_audio_transcription.logprobs"``)
    or is None (field omitted).
    """

    model: str
    language: str | None = None
    prompt: str | None = None
    noise_reduction: dict[str, Any] | None = None
    include: tuple[str, ...] | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any], model: str) -> "SessionRequest":
        """Read the rtasr params that feed the session (``language``, ``prompt``,
        ``noise_reduction``, ``include``); values of the wrong type are ignored."""
        language = params.get("language")
        prompt = params.get("prompt")
        nr = params.get("noise_reduction")
        if isinstance(nr, str) and nr:
            nr = {"type": nr}
        elif not (isinstance(nr, dict) and isinstance(nr.get("type"), str)):
            nr = None
        include = params.get("include")
        if isinstance(include, str) and include:
            include = (include,)
        elif isinstance(include, list) and all(isinstance(x, str) for x in include):
            include = tuple(include)
        else:
            include = None
        return cls(
            model=model,
            language=language if isinstance(language, str) and language else None,
            prompt=prompt if isinstance(prompt, str) else None,
            noise_reduction=nr,
            include=include,
        )

    def transcription(self) -> dict[str, Any]:
        """The ``transcription`` / ``input_audio_transcription`` object."""
        out: dict[str, Any] = {"model": self.model}
        if self.language is not None:
            out["language"] = self.language
        if self.prompt is not None:
            out["prompt"] = self.prompt
        return out


def session_update(dialect: str, config: SessionRequest, turn_detection: dict[str, Any] | None) -> bytes:
    """The first client event: the whole transcription session configuration."""
    if check_dialect(dialect) == GA:
        session: dict[str, Any] = {
            "type": "transcription",
            "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": SAMPLE_RATE_HZ},
                "transcription": config.transcription(),
                "turn_detection": turn_detection,
                "noise_reduction": config.noise_reduction,
            }},
        }
        kind = "session.update"
    else:
        session = {
            "input_audio_format": "pcm16",
            "input_audio_transcription": config.transcription(),
            "turn_detection": turn_detection,
            "input_audio_noise_reduction": config.noise_reduction,
        }
        kind = "transcription_session.update"
    if config.include is not None:
        session["include"] = list(config.include)
    return dumpb({"type": kind, "session": session})


def with_include(config: SessionRequest, value: str) -> SessionRequest:
    """``config`` whose ``include`` also lists ``value`` (unchanged if it does)."""
    include = config.include or ()
    return config if value in include else replace(config, include=(*include, value))


def host_only_event(data: bytes) -> dict | None:
    """The parsed event when ``data`` is a :data:`VAD_PROBABILITIES` event with an
    ``audio_start_ms``, a ``frame_ms`` and a list of ``probabilities``; else None."""
    if _VAD_MARK not in data[:64]:
        return None
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(obj, dict) or obj.get("type") != VAD_PROBABILITIES:
        return None
    ok = all(isinstance(obj.get(k), (int, float)) for k in ("audio_start_ms", "frame_ms"))
    return obj if ok and isinstance(obj.get("probabilities"), list) else None


def turn_detection_update(dialect: str, turn_detection: dict[str, Any] | None) -> bytes:
    """A configuration event that changes only ``turn_detection`` (None = server VAD off)."""
    if check_dialect(dialect) == GA:
        return dumpb({"type": "session.update", "session": {
            "type": "transcription", "audio": {"input": {"turn_detection": turn_detection}}}})
    return dumpb({"type": "transcription_session.update", "session": {"turn_detection": turn_detection}})


def append_chunk_bytes(max_event_bytes: int = MAX_EVENT_BYTES) -> int:
    """Largest raw audio chunk whose append event fits ``max_event_bytes`` (a multiple of
    6, so every piece is whole samples and whole base64 quanta)."""
    room = (max_event_bytes - _APPEND_OVERHEAD) // 4 * 3
    chunk = room - room % 6
    if chunk <= 0:
        raise ValueError(f"max_event_bytes {max_event_bytes} leaves no room for audio")
    return chunk


def append_events(audio: bytes, max_event_bytes: int = MAX_EVENT_BYTES) -> Iterator[bytes]:
    """``input_audio_buffer.append`` events carrying ``audio`` in order (none for empty
    audio); each event is at most ``max_event_bytes`` long."""
    step = append_chunk_bytes(max_event_bytes)
    view = memoryview(audio)
    for start in range(0, len(audio), step):
        yield _APPEND_HEAD + base64.b64encode(view[start:start + step]) + _APPEND_TAIL


def event_type(text: bytes) -> str | None:
    """The ``type`` of a client event, or None when it is not an object with a string type."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(obj, dict) and isinstance(obj.get("type"), str):
        return obj["type"]
    return None


def invalid_event_reason(text: bytes) -> str | None:
    """Why ``text`` cannot be sent as a client event, or None when it can (a JSON object
    with a string ``type``).  The wording follows the server's own ``invalid_event``."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "The event is not valid JSON; it was not sent."
    if not isinstance(obj, dict):
        return "The event must be a JSON object; it was not sent."
    if "type" not in obj:
        return "The 'type' field is missing; the event was not sent."
    if not isinstance(obj["type"], str):
        return "The 'type' field must be a string; the event was not sent."
    return None


def error_event(message: str, code: str = "invalid_event",
                error_type: str = "invalid_request_error") -> bytes:
    """A server-shaped ``error`` event (what the host queues for the guest itself)."""
    return dumpb({"type": "error", "error": {"type": error_type, "code": code,
                                              "message": message, "param": None}})


def handshake_headers(dialect: str, bearer: str | None) -> list[tuple[str, str]]:
    """Extra handshake headers: ``Authorization`` only with a credential, plus
    ``OpenAI-Beta: realtime=v1`` for the beta dialect."""
    headers = []
    if bearer:
        headers.append(("Authorization", f"Bearer {bearer}"))
    if check_dialect(dialect) == BETA:
        headers.append(("OpenAI-Beta", "realtime=v1"))
    return headers


def realtime_url(base: str) -> str:
    """The WebSocket URL of a realtime transcription session from a configured base URL.

    ``https``/``http`` become ``wss``/``ws``; a path not ending in ``/realtime`` gets
    ``/v1`` (unless it ends in ``/v1``) and ``/realtime``; an empty query becomes
    ``intent=transcription``.  ValueError for any other scheme or a missing host.
    """
    parts = urlsplit(base)
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ValueError("a realtime URL needs a ws, wss, http or https scheme and a host")
    path = parts.path.rstrip("/")
    if not path.endswith("/realtime"):
        if not path.endswith("/v1"):
            path += "/v1"
        path += "/realtime"
    return urlunsplit((scheme, parts.netloc, path, parts.query or TRANSCRIPTION_QUERY, ""))


def is_loopback_url(url: str) -> bool:
    """True for ``ws``/``wss`` URLs whose host is ``localhost``, 127.0.0.0/8 or ``::1``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme.lower() not in ("ws", "wss") or not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """``url`` without credentials in the user part and without the query (for logs)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))
