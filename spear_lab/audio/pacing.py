"""Drift-free periodic deadlines on an asyncio loop, for real-time audio pacing."""

from __future__ import annotations

import asyncio


class Pacer:
    """Ticks every ``period`` seconds measured from creation, without drift.

    Tick ``k`` is due at ``t0 + k * period`` (loop clock).  A late tick returns at once,
    so short stalls are caught up with a burst, as a real capture device would deliver;
    when more than ``max_lag`` seconds behind, the schedule restarts from now (the stall is
    skipped, not replayed).  Must be created and awaited on the running loop.
    """

    def __init__(self, period: float, max_lag: float = 1.0) -> None:
        if period <= 0:
            raise ValueError("period must be positive")
        self.period = period
        self.max_lag = max_lag
        self._loop = asyncio.get_running_loop()
        self._next = self._loop.time() + period
        self.resyncs = 0

    async def wait(self) -> None:
        """Sleep until the next tick is due."""
        now = self._loop.time()
        delay = self._next - now
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay > self.max_lag:
            self._next = now
            self.resyncs += 1
        self._next += self.period
