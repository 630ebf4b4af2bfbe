"""The ``spear.vad.probabilities`` event: per-frame speech probabilities, batched.

spear_lab's extension of the protocol (a session whose ``include`` lists
:data:`~spear_lab.server.config.VAD_PROBABILITIES`). Sans-I/O: :class:`VadReport`
collects the probabilities of the frames the session's VAD computed and makes one
event of them about every :data:`VAD_BATCH_MS` of audio, or sooner when the
session flushes it (before a VAD, commit, ``session.updated`` or ``cleared`` event).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .config import VAD_PROBABILITIES
from .events import Send
from .turns import TurnDetector

__all__ = ["VadReport", "VAD_BATCH_MS"]

VAD_BATCH_MS = 500
"""Audio covered by one ``spear.vad.probabilities`` event (at most, unless flushed)."""


class VadReport:
    """Frames not yet reported; ``turns`` gives the frame geometry."""

    def __init__(self, turns: TurnDetector) -> None:
        self._turns = turns
        self._batch: list[float] = []
        self._next = 0  # index of the first frame not yet reported

    def add(self, probs: np.ndarray, wanted: bool, send: Callable[..., Send]) -> list[Send]:
        """Take the next frames' probabilities (counted only, unless ``wanted``); the
        event when the batch is full."""
        if not wanted:
            self._next += len(probs)
            return []
        self._batch += probs.tolist()
        if len(self._batch) * self._turns.frame_ms >= VAD_BATCH_MS:
            return self.flush(send)
        return []

    def flush(self, send: Callable[..., Send]) -> list[Send]:
        """The event of the frames not yet reported (none if there are none)."""
        batch, self._batch = self._batch, []
        if not batch:
            return []
        start = self._turns.frame_start_ms(self._next)
        self._next += len(batch)
        return [send(VAD_PROBABILITIES, audio_start_ms=start, frame_ms=self._turns.frame_ms,
                     probabilities=[round(p, 3) for p in batch])]
