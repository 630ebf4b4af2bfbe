"""Segmentation (autoflush) settings of an rtasr fd (docs/abi.md §6).

Three strategies decide who cuts the audio into turns:

- ``server_vad``: the server's voice activity detection commits (the default);
- ``client_commit``: the host commits on a timer — every ``flush_interval_ms``, after
  ``max_buffer_bytes`` of audio, or after ``silence_ms`` of silence — never more often
  than ``min_flush_gap_ms``;
- ``manual``: only the guest's FLUSH commits.

:meth:`Segmentation.parse` accepts the strategy form and the legacy form and returns None
for anything the ABI rejects with -EINVAL.  :func:`turn_detection` maps a setting to the
OpenAI ``turn_detection`` object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MANUAL, SERVER_VAD, CLIENT_COMMIT = "manual", "server_vad", "client_commit"
_STRATEGIES = {"manual": MANUAL, "off": MANUAL, "server_vad": SERVER_VAD, "client_commit": CLIENT_COMMIT}

DEFAULT_SILENCE_MS = 500
DEFAULT_THRESHOLD = 0.5
DEFAULT_PREFIX_PADDING_MS = 300
DEFAULT_MIN_FLUSH_GAP_MS = 500
#: Peak level (of 32767) below which a pcm16 chunk counts as silence for ``silence_ms``.
SILENCE_PEAK = 500
#: Bytes per millisecond of the ABI's audio (24 kHz mono pcm16), to measure silence written.
BYTES_PER_MS = 48
#: Seconds a commit deadline lies after the exact trigger time (float rounding margin).
DEADLINE_SLACK_S = 1e-6


def _uint(obj: dict, key: str) -> int | None:
    """``obj[key]`` when it is a non-negative integer, else None (treated as absent)."""
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


@dataclass(frozen=True)
class Vad:
    """Server VAD settings; ``threshold`` and ``prefix_padding_ms`` may be unset."""

    silence_ms: int = DEFAULT_SILENCE_MS
    threshold: float | None = None
    prefix_padding_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"silence_ms": self.silence_ms}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        if self.prefix_padding_ms is not None:
            out["prefix_padding_ms"] = self.prefix_padding_ms
        return out


@dataclass(frozen=True)
class ClientCommit:
    """Host-side commit triggers (any one fires), in ms and bytes; None = not used."""

    flush_interval_ms: int | None = None
    max_buffer_bytes: int | None = None
    silence_ms: int | None = None
    min_flush_gap_ms: int = DEFAULT_MIN_FLUSH_GAP_MS

    def to_json(self) -> dict[str, Any]:
        return {
            "flush_interval_ms": self.flush_interval_ms,
            "max_buffer_bytes": self.max_buffer_bytes,
            "min_flush_gap_ms": self.min_flush_gap_ms,
            "silence_ms": self.silence_ms,
        }


@dataclass(frozen=True)
class Segmentation:
    """One segmentation setting, as stored by SET_AUTOFLUSH and shown by GET_AUTOFLUSH."""

    strategy: str = SERVER_VAD
    vad: Vad | None = field(
        default_factory=lambda: Vad(DEFAULT_SILENCE_MS, DEFAULT_THRESHOLD, DEFAULT_PREFIX_PADDING_MS)
    )
    client_commit: ClientCommit | None = None
    flush_on_close: bool = False

    def to_json(self) -> dict[str, Any]:
        """The GET_AUTOFLUSH object (always the four keys of docs/abi.md §6.4)."""
        return {
            "client_commit": self.client_commit.to_json() if self.client_commit else None,
            "flush_on_close": self.flush_on_close,
            "strategy": self.strategy,
            "vad": self.vad.to_json() if self.vad else None,
        }

    @classmethod
    def parse(cls, obj: Any) -> "Segmentation | None":
        """Parse a SET_AUTOFLUSH payload; None when it must be refused with -EINVAL."""
        if not isinstance(obj, dict):
            return None
        flush_on_close = obj.get("flush_on_close") is True
        strategy = obj.get("strategy")
        if isinstance(strategy, str):
            return _parse_strategy(obj, strategy, flush_on_close)
        return _parse_legacy(obj, flush_on_close)


def _parse_strategy(obj: dict, strategy: str, flush_on_close: bool) -> Segmentation | None:
    name = _STRATEGIES.get(strategy)
    if name is None:
        return None
    vad = cc = None
    if "vad" in obj:
        raw = obj["vad"]
        if not isinstance(raw, dict):
            return None
        threshold = raw.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            threshold = None
        silence = _uint(raw, "silence_ms")
        vad = Vad(
            silence_ms=DEFAULT_SILENCE_MS if silence is None else silence,
            threshold=threshold,
            prefix_padding_ms=_uint(raw, "prefix_padding_ms"),
        )
    if "client_commit" in obj:
        raw = obj["client_commit"]
        if not isinstance(raw, dict):
            return None
        gap = _uint(raw, "min_flush_gap_ms")
        cc = ClientCommit(
            flush_interval_ms=_uint(raw, "flush_interval_ms"),
            max_buffer_bytes=_uint(raw, "max_buffer_bytes"),
            silence_ms=_uint(raw, "silence_ms"),
            min_flush_gap_ms=DEFAULT_MIN_FLUSH_GAP_MS if gap is None else gap,
        )
    return Segmentation(name, vad, cc, flush_on_close)


def _parse_legacy(obj: dict, flush_on_close: bool) -> Segmentation:
    enabled = obj.get("enabled") is True
    mode = obj.get("mode") if isinstance(obj.get("mode"), str) else "off"
    if not enabled or mode == "off":
        return Segmentation(MANUAL, None, None, flush_on_close)
    interval, max_bytes, silence = (_uint(obj, k) for k in ("flush_interval_ms", "max_buffer_bytes", "silence_ms"))
    if mode == "silence":
        ms = silence if silence is not None else interval if interval is not None else DEFAULT_SILENCE_MS
        return Segmentation(SERVER_VAD, Vad(ms, DEFAULT_THRESHOLD, DEFAULT_PREFIX_PADDING_MS), None, flush_on_close)
    gap = _uint(obj, "min_flush_gap_ms")
    cc = ClientCommit(
        flush_interval_ms=None if mode == "bytes" else interval,
        max_buffer_bytes=None if mode == "time" else max_bytes,
        silence_ms=None if mode in ("bytes", "time") else silence,
        min_flush_gap_ms=DEFAULT_MIN_FLUSH_GAP_MS if gap is None else gap,
    )
    return Segmentation(CLIENT_COMMIT, None, cc, flush_on_close)


def turn_detection(seg: Segmentation) -> dict[str, Any] | None:
    """The OpenAI ``turn_detection`` object for ``seg`` (docs/abi.md §6.6): server VAD or None."""
    if seg.strategy != SERVER_VAD:
        return None
    vad = seg.vad or Vad(DEFAULT_SILENCE_MS)
    return {
        "type": "server_vad",
        "threshold": DEFAULT_THRESHOLD if vad.threshold is None else vad.threshold,
        "prefix_padding_ms": DEFAULT_PREFIX_PADDING_MS if vad.prefix_padding_ms is None else vad.prefix_padding_ms,
        "silence_duration_ms": vad.silence_ms,
    }


def is_silent(chunk: bytes, peak: int = SILENCE_PEAK) -> bool:
    """True when every pcm16 sample of ``chunk`` is quieter than ``peak`` (odd bytes ignored)."""
    n = len(chunk) // 2
    if n == 0:
        return True
    samples = np.frombuffer(chunk, dtype="<i2", count=n)
    return int(np.abs(samples.astype(np.int32)).max()) < peak


@dataclass
class CommitClock:
    """Host-side commit bookkeeping of one fd (docs/abi.md §6.5); times in seconds (monotonic)."""

    last_flush_at: float
    last_voice_at: float
    pending_flush: bool = False
    buffered_bytes: int = 0
    silent_run_bytes: int = 0

    def reset(self, now: float, pending: bool = False) -> None:
        """After FLUSH (pending=True), CLEAR or SET_AUTOFLUSH."""
        self.pending_flush = pending
        self.buffered_bytes = 0
        self.silent_run_bytes = 0
        self.last_flush_at = now

    def audio(self, nbytes: int, now: float, silent: bool) -> None:
        """Record an accepted write of ``nbytes`` (``silent`` from :func:`is_silent`)."""
        self.buffered_bytes += nbytes
        if silent:
            self.silent_run_bytes += nbytes
        else:
            self.silent_run_bytes = 0
            self.last_voice_at = now

    def next_deadline(self, seg: Segmentation) -> float | None:
        """The earliest time (seconds, same clock) at which :meth:`due` holds without
        another :meth:`audio` or :meth:`reset`, or None when only those can make it hold."""
        cc = seg.client_commit
        if seg.strategy != CLIENT_COMMIT or cc is None or self.pending_flush or self.buffered_bytes <= 0:
            return None
        gap_at = self.last_flush_at + cc.min_flush_gap_ms / 1000.0
        times = []
        if cc.max_buffer_bytes is not None and self.buffered_bytes >= cc.max_buffer_bytes:
            times.append(gap_at)
        if cc.flush_interval_ms is not None:
            times.append(self.last_flush_at + cc.flush_interval_ms / 1000.0)
        if cc.silence_ms is not None and self.last_voice_at > self.last_flush_at:
            if self.silent_run_bytes >= cc.silence_ms * BYTES_PER_MS:
                times.append(gap_at)
            else:
                times.append(max(self.last_voice_at, self.last_flush_at) + cc.silence_ms / 1000.0)
        if not times:
            return None
        # A microsecond late, so that due() (which compares in ms) agrees at the deadline.
        return max(gap_at, min(times)) + DEADLINE_SLACK_S

    def due(self, seg: Segmentation, now: float) -> bool:
        """True when a client_commit trigger fires now (docs/abi.md §6.5, with a fix of §12)."""
        cc = seg.client_commit
        if seg.strategy != CLIENT_COMMIT or cc is None or self.pending_flush or self.buffered_bytes <= 0:
            return False
        since_flush_ms = (now - self.last_flush_at) * 1000.0
        if since_flush_ms < cc.min_flush_gap_ms:
            return False
        if cc.max_buffer_bytes is not None and self.buffered_bytes >= cc.max_buffer_bytes:
            return True
        if cc.flush_interval_ms is not None and since_flush_ms >= cc.flush_interval_ms:
            return True
        if cc.silence_ms is not None and self.last_voice_at > self.last_flush_at:
            # Voice since the last commit, then silence_ms of silence: counted in audio
            # written (so files replayed fast work too) or in wall time without voice.
            if self.silent_run_bytes >= cc.silence_ms * BYTES_PER_MS:
                return True
            if (now - max(self.last_voice_at, self.last_flush_at)) * 1000.0 >= cc.silence_ms:
                return True
        return False
