"""Microphone configuration, ``mic_ctl`` SET_PARAM (docs/abi.md §7.1, §7.6): the accepted
config and the parser that validates a request as a whole.

Sans-I/O and pure.  :func:`parse_set_param` turns a payload into a :class:`MicRequest` or
raises ValueError naming the broken rule; :class:`spear_lab.fds.mic.MicFd` applies the
request only when the parse succeeds, so a bad request changes nothing (docs/abi.md §12).

- limits: ``sample_rate_hz`` 1..768000, ``channels`` 1..8, ``frame_ms`` 1..10000, a frame
  of 1 byte to 4 MiB, a decoded stub pattern of at most 10 MiB.
- defaults: 24000 Hz, 1 channel, 20 ms frames (960 bytes), ``pcm16``, source ``"device"``,
  ``fallback.to_stub`` true.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from ..abi.jsonfmt import loads

#: Largest decoded ``stub_pcm16_base64`` pattern (10 MiB).
MAX_PATTERN_BYTES = 10 * 1024 * 1024
#: Most channels a config may ask for (docs/abi.md §12).
MAX_CHANNELS = 8
#: [EXT] highest accepted ``sample_rate_hz``.
MAX_SAMPLE_RATE_HZ = 768000
#: [EXT] longest accepted ``frame_ms``.
MAX_FRAME_MS = 10000
#: [EXT] largest accepted frame, in bytes (4 MiB).
MAX_FRAME_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class MicConfig:
    """One accepted SET_PARAM configuration (docs/abi.md §7.1); all fields validated."""

    sample_rate_hz: int = 24000
    channels: int = 1
    frame_ms: int = 20
    format: str = "pcm16"
    #: What the guest asked for: ``"device"``, ``"file"``, ``"stub"`` or anything (→ stub).
    source: str = "device"
    #: ``device.name``: exact input-device name, or ([EXT]) a PortAudio index; None = default.
    device: str | int | None = None
    #: ``fallback.to_stub``: use the stub when the source cannot start.
    fallback_to_stub: bool = True

    @property
    def frame_samples(self) -> int:
        """Samples per channel in one frame: ``floor(rate * frame_ms / 1000)``."""
        return self.sample_rate_hz * self.frame_ms // 1000

    @property
    def frame_bytes(self) -> int:
        """Bytes in one frame: samples * channels * 2 (960 for the defaults)."""
        return self.frame_samples * self.channels * 2

    def to_json(self) -> dict[str, Any]:
        """The ``config`` object of GET_STATUS (the four reference keys)."""
        return {
            "channels": self.channels,
            "format": self.format,
            "frame_ms": self.frame_ms,
            "sample_rate_hz": self.sample_rate_hz,
        }


@dataclass(frozen=True)
class MicRequest:
    """A validated SET_PARAM request: the config plus the two persistent settings."""

    config: MicConfig
    #: New queue cap in bytes, or None to keep the current one.
    max_queue_bytes: int | None = None
    #: New stub pattern (decoded pcm16 bytes), or None to keep the current one.
    pattern: bytes | None = None


def _int(obj: dict, key: str, default: int, lo: int, hi: int) -> int:
    """``obj[key]`` as an integer in ``lo..hi``; ``default`` when absent; ValueError."""
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    if not lo <= value <= hi:
        raise ValueError(f"{key} must be in {lo}..{hi}, got {value}")
    return value


def _sub(obj: dict, key: str) -> dict:
    """``obj[key]`` as an object; ``{}`` when absent; ValueError when not an object."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be an object")
    return value


def _pattern(text: Any) -> bytes:
    """Decode ``stub_pcm16_base64`` (standard base64, at most 10 MiB); ValueError."""
    if not isinstance(text, str):
        raise ValueError("stub_pcm16_base64 must be a string")
    try:
        pattern = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("stub_pcm16_base64 is not valid base64") from None
    if len(pattern) > MAX_PATTERN_BYTES:
        raise ValueError(f"stub_pcm16_base64 decodes to {len(pattern)} bytes "
                         f"(at most {MAX_PATTERN_BYTES})")
    return pattern


def parse_set_param(payload: bytes | None) -> MicRequest:
    """Validate a SET_PARAM payload as a whole (docs/abi.md §7.6, with a fix of §12).

    Absent fields (and JSON ``null``) take their defaults; a valid JSON value that is not
    an object means "all defaults" (reference).  Raises ValueError saying which rule was
    broken: not JSON; a wrong type; ``sample_rate_hz`` outside 1..768000; ``channels``
    outside 1..8; ``frame_ms`` outside 1..10000; a frame of 0 bytes or above 4 MiB;
    ``format`` other than ``"pcm16"``; ``max_queue_bytes`` negative; a
    ``stub_pcm16_base64`` that is not standard base64 or decodes to more than 10 MiB.
    ``drop_policy`` is accepted and ignored (always drop-oldest).
    """
    ok, obj = loads(payload)
    if not ok:
        raise ValueError("payload is absent or not JSON")
    if not isinstance(obj, dict):
        obj = {}
    rate = _int(obj, "sample_rate_hz", 24000, 1, MAX_SAMPLE_RATE_HZ)
    channels = _int(obj, "channels", 1, 1, MAX_CHANNELS)
    frame_ms = _int(obj, "frame_ms", 20, 1, MAX_FRAME_MS)
    fmt = obj.get("format")
    if fmt is None:
        fmt = "pcm16"
    if fmt != "pcm16":
        raise ValueError(f"unsupported format: {fmt!r} (only \"pcm16\")")
    source = obj.get("source")
    if source is None:
        source = "device"
    if not isinstance(source, str):
        raise ValueError("source must be a string")
    device = _sub(obj, "device").get("name")
    if device is not None and (isinstance(device, bool) or not isinstance(device, (str, int))):
        raise ValueError("device.name must be a string (or an integer index)")
    to_stub = _sub(obj, "fallback").get("to_stub")
    if to_stub is None:
        to_stub = True
    if not isinstance(to_stub, bool):
        raise ValueError("fallback.to_stub must be a boolean")
    max_queue = obj.get("max_queue_bytes")
    if max_queue is not None and (isinstance(max_queue, bool) or not isinstance(max_queue, int)
                                  or max_queue < 0):
        raise ValueError("max_queue_bytes must be a non-negative integer")
    text = obj.get("stub_pcm16_base64")
    pattern = None if text is None else _pattern(text)
    config = MicConfig(rate, channels, frame_ms, fmt, source, device, to_stub)
    if config.frame_bytes == 0:
        raise ValueError(f"frame size is 0 bytes ({rate} Hz x {frame_ms} ms)")
    if config.frame_bytes > MAX_FRAME_BYTES:
        raise ValueError(f"frame size {config.frame_bytes} bytes exceeds {MAX_FRAME_BYTES}")
    return MicRequest(config, max_queue, pattern)
