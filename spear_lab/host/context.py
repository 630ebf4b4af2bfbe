"""What the forks of one Host share: configuration, I/O loop, trace, and the edges' ports.

The composition root (:mod:`spear_lab.session.wiring`) fills the ports: ``connector``
(:data:`spear_lab.fds.ports.Connector`, chooses and starts the transport of a connecting
rtasr fd) and ``sources`` (:class:`spear_lab.fds.mic.SourceOpener`, opens microphone
sources).  A context without them is the bare core: CONNECT succeeds with no transport
(nothing carries the audio) and mic fds produce nothing, as the fds document.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Callable, Protocol

from ..fds.mic import SourceOpener
from ..fds.ports import Connector
from .config import HostConfig
from .ioloop import IoLoop

if TYPE_CHECKING:
    from .host import Host

__all__ = ["HostContext", "LogSink"]

log = logging.getLogger(__name__)


class LogSink(Protocol):
    """Where guest log lines go besides the Host (a :class:`spear_lab.trace.Trace`)."""

    def log(self, instance: str, level: int, text: str) -> None: ...


class HostContext:
    """Config, I/O loop, trace and ports shared by every fork of one Host.

    ``connector`` / ``sources``: the edges' ports (None = none wired).  Resources the
    edges start lazily (the embedded server) are closed by :meth:`close` through
    :meth:`on_close`.
    """

    def __init__(self, config: HostConfig | None = None, io: IoLoop | None = None,
                 trace: LogSink | None = None, *, connector: Connector | None = None,
                 sources: SourceOpener | None = None) -> None:
        self.config = config or HostConfig()
        self._own_io = io is None
        self.io = io or IoLoop()
        self.trace = trace
        self.connector = connector
        self.sources = sources
        self._closers: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.closed = False
        #: Called with every new Host made by :meth:`Host.fork` (e.g. to attach a Trace).
        self.fork_listeners: list[Callable[["Host"], None]] = []
        #: Host warnings already given, by key (see :meth:`warn_once`).
        self.warnings: dict[str, str] = {}
        #: Called as ``listener(key, message)`` for each first warning of a key.
        self.warning_listeners: list[Callable[[str, str], None]] = []

    def warn_once(self, key: str, message: str) -> bool:
        """Log ``message`` at WARNING the first time ``key`` is seen in this context (the
        CLI prints it); later ones at DEBUG.  True when it was the first."""
        with self._lock:
            first = key not in self.warnings
            if first:
                self.warnings[key] = message
        if not first:
            log.debug("%s", message)
            return False
        listeners = list(self.warning_listeners)
        if listeners:
            for listener in listeners:
                listener(key, message)
        else:
            log.warning("%s", message)
        return True

    def on_close(self, close: Callable[[], None]) -> None:
        """Run ``close()`` when the context closes (last registered, first run)."""
        with self._lock:
            self._closers.append(close)

    def close(self) -> None:
        """Run the registered closers (the embedded server…) and, when owned, stop the
        I/O loop.  Idempotent."""
        with self._lock:
            closers, self._closers = self._closers[::-1], []
            self.closed = True
        for close in closers:
            try:
                close()
            except Exception:  # pragma: no cover - best effort teardown
                log.exception("closing %r failed", close)
        if self._own_io:
            self.io.close()
