"""The stub source (docs/abi.md §7.3): one frame every ``frame_ms``, zeros or the
fd's stored pattern (built by :meth:`spear_lab.fds.mic.MicFd.stub_frame`).

Paced by :class:`~spear_lab.audio.pacing.Pacer`, so the rate does not drift (the
reference sleeps ``frame_ms`` between frames and drifts slowly).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import TaskSource
from .pacing import Pacer

if TYPE_CHECKING:
    from ..fds.mic import MicConfig, MicFd
    from ..host.ioloop import IoLoop


class StubSource(TaskSource):
    """Produces stub frames for one mic fd generation until stopped or stale."""

    name = "stub"

    def __init__(self, mic: "MicFd", config: "MicConfig", generation: int, io: "IoLoop") -> None:
        super().__init__(io)
        self._launch(self._run, mic, generation, config.frame_ms / 1000.0)

    async def _run(self, mic: "MicFd", generation: int, period: float) -> None:
        pacer = Pacer(period)
        while not self.stopped:
            await pacer.wait()
            if self.stopped or not mic.stub_tick(generation):
                return
