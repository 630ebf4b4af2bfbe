"""The common shape of a source that runs as one task on the host's I/O loop."""

from __future__ import annotations

import concurrent.futures
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:
    from ..host.ioloop import IoLoop

log = logging.getLogger(__name__)


class TaskSource:
    """A source whose producer is one coroutine on the I/O loop.

    ``stop()`` only cancels (never blocks), so the mic fd may call it with its table lock
    held; the producer also stops by itself when the fd's generation moves on.
    """

    name = "task"

    def __init__(self, io: "IoLoop") -> None:
        self._io = io
        self._future: concurrent.futures.Future | None = None
        self.stopped = False

    def _launch(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run ``fn(*args)`` as the producer task (the coroutine is made on the loop, so a
        source stopped before it starts leaves nothing un-awaited)."""
        self._future = self._io.submit(self._guard(fn, *args))
        self._future.add_done_callback(lambda _f: self._task_done())

    def _task_done(self) -> None:
        """Called once the producer task has finished, however (any thread)."""

    async def _guard(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        try:
            await fn(*args)
        except Exception:  # a bug in a producer must not kill the loop silently
            log.exception("%s source failed", self.name)

    def stop(self) -> None:
        """Stop producing (idempotent, non-blocking)."""
        self.stopped = True
        if self._future is not None:
            self._future.cancel()

    def wake(self) -> None:
        """The reader made room; this source does not care."""

    @property
    def done(self) -> bool:
        """True once the producer task has finished (ended, stopped or stale)."""
        return self._future is None or self._future.done()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the producer task has finished; True when it has."""
        if self._future is None:
            return True
        done, _ = concurrent.futures.wait([self._future], timeout)
        return bool(done)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'done' if self.done else 'running'}>"
