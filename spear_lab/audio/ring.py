"""A preallocated single-producer single-consumer ring of float samples.

The producer is a PortAudio callback thread: :meth:`SampleRing.write` copies a block into
preallocated memory, never blocks, never takes a lock, never logs.  The consumer (the
framing step on the I/O loop) takes everything written so far with :meth:`SampleRing.take`.
If the consumer falls more than ``capacity`` samples behind, the oldest samples are lost
and counted in :attr:`SampleRing.lost`.
"""

from __future__ import annotations

import numpy as np


class SampleRing:
    """``capacity`` sample frames of ``channels`` float32 channels."""

    def __init__(self, capacity: int, channels: int) -> None:
        if capacity < 1 or channels < 1:
            raise ValueError("capacity and channels must be >= 1")
        self.capacity = capacity
        self.channels = channels
        self._buf = np.zeros((capacity, channels), dtype=np.float32)
        #: Sample frames ever written / ever taken or skipped (monotonic counters).
        self.written = 0
        self.read = 0
        #: Sample frames overwritten before the consumer took them.
        self.lost = 0

    def write(self, block: np.ndarray) -> None:
        """Producer: append ``block`` (shape ``(n, channels)``)."""
        n = len(block)
        cap = self.capacity
        if n > cap:
            block = block[n - cap:]
            self.written += n - cap
            n = cap
        start = self.written % cap
        first = min(n, cap - start)
        self._buf[start:start + first] = block[:first]
        if first < n:
            self._buf[:n - first] = block[first:]
        self.written += n

    def take(self) -> np.ndarray:
        """Consumer: copy out every sample written since the last take (oldest first)."""
        w = self.written
        r = self.read
        if w - r > self.capacity:
            self.lost += w - r - self.capacity
            r = w - self.capacity
        n = w - r
        if n <= 0:
            return np.zeros((0, self.channels), dtype=np.float32)
        start = r % self.capacity
        first = min(n, self.capacity - start)
        out = np.empty((n, self.channels), dtype=np.float32)
        out[:first] = self._buf[start:start + first]
        if first < n:
            out[first:] = self._buf[:n - first]
        # Samples the producer overwrote while we copied are unusable: drop them.
        overrun = self.written - r - self.capacity
        if overrun > 0:
            self.lost += overrun
            out = out[overrun:]
        self.read = w
        return out

    @property
    def available(self) -> int:
        """Sample frames waiting to be taken (capped at the capacity)."""
        return min(self.written - self.read, self.capacity)
