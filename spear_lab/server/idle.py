"""The idle timer of a transcription session (``turn_detection.idle_timeout_ms``).

Sans-I/O: an idle period begins where the last commit ended. It has lasted
``limit_ms`` once that much audio was appended after it (audio time, 16 kHz
sample indices) or that much wall time passed (``monotonic`` seconds), whichever
comes first. The session fires at most one timeout per idle period (``fired``)
and decides when the timer is armed at all.
"""

from __future__ import annotations

from typing import Callable

from .items import SAMPLES_PER_MS

__all__ = ["IdleTimer"]


class IdleTimer:
    """Where and when the current idle period began."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self.anchor = 0  # sample index where the idle period began
        self.anchor_wall = monotonic()
        self.fired = False  # one timeout per idle period

    def restart(self, at: int) -> None:
        """A commit ended at sample ``at``: a new idle period begins now."""
        self.anchor = at
        self.anchor_wall = self._monotonic()

    def elapsed(self, limit_ms: int, position: int) -> bool:
        """``limit_ms`` of audio (up to sample ``position``) or of wall time have passed."""
        return (position - self.anchor >= limit_ms * SAMPLES_PER_MS
                or (self._monotonic() - self.anchor_wall) * 1000 >= limit_ms)

    def deadline(self, limit_ms: int) -> float:
        """Monotonic time at which ``limit_ms`` of wall time have passed."""
        return self.anchor_wall + limit_ms / 1000.0
