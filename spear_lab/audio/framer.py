"""From a capture ring to mic frames: what a device or the browser captured since the
last tick, remixed and resampled to the fd's configuration, cut into whole frames."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from .pcm import float_to_pcm16, remix

__all__ = ["Framer", "run_framing"]

log = logging.getLogger(__name__)


class Framer:
    """Whole pcm16 frames of ``frame_bytes`` from ``ring`` (a :class:`~.ring.SampleRing`
    of float samples) through ``resampler``, remixed to ``channels``; the remainder of a
    frame waits for the next call."""

    def __init__(self, ring: Any, resampler: Any, channels: int, frame_bytes: int) -> None:
        self.ring = ring
        self.resampler = resampler
        self.channels = channels
        self.frame_bytes = frame_bytes
        self._pending = bytearray()

    def frames(self) -> list[bytes]:
        """Take what the ring holds; return the whole frames it completes (maybe none)."""
        block = self.ring.take()
        if len(block):
            self._pending += float_to_pcm16(self.resampler.process(remix(block, self.channels)))
        n = self.frame_bytes
        out = []
        while len(self._pending) >= n:
            out.append(bytes(self._pending[:n]))
            del self._pending[:n]
        return out


async def run_framing(source: Any, mic: Any, generation: int, framer: Framer,
                      health: Callable[[], str | None]) -> None:
    """Every ``frame_ms`` of ``source.config``: push the frames ``framer`` completed to
    ``mic`` (a MicFd), then ask ``health()`` for a problem and report each new one once
    as the fd's ``last_error``.  Ends when ``source.stopped`` or the generation is stale."""
    period = max(source.config.frame_ms, 1) / 1000.0
    reported = None
    while not source.stopped:
        await asyncio.sleep(period)
        if source.stopped:
            return
        if not mic.push_frames(generation, framer.frames()):
            return
        problem = health()
        if problem is not None and problem != reported:
            log.warning("mic fd %d: %s", mic.fd, problem)
            mic.source_error(generation, problem)
        reported = problem
