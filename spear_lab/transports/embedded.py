"""The embedded local server of one host context, started on first use.

The ``local`` backend connects to an :class:`spear_lab.server.embedded.EmbeddedServer`
that runs on the context's I/O loop.  An :class:`EmbeddedServerSlot` holds it: the first
``local`` connection starts it (in the connection's worker thread: loading a recogniser
takes a while), later ones reuse it, and :meth:`EmbeddedServerSlot.close` stops it with
the context.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable

from . import protocol
from .base import ConnectRefused

if TYPE_CHECKING:
    from ..host import HostContext

__all__ = ["EMBEDDED_MODULE", "EmbeddedServerSlot"]

log = logging.getLogger(__name__)

#: Where the embedded server lives (imported on first use only).
EMBEDDED_MODULE = "spear_lab.server.embedded"


class EmbeddedServerSlot:
    """The embedded server of ``ctx``: none until :meth:`get` starts it."""

    def __init__(self, ctx: "HostContext") -> None:
        self.ctx = ctx
        self._server: Any = None
        self._lock = threading.Lock()
        self._closed = False

    def peek(self) -> Any:
        """The running server, or None when none was started (never starts one)."""
        with self._lock:
            return self._server

    def get(self, server_cls: type) -> Any:
        """The server, made from ``server_cls`` and started on first call.  RuntimeError
        once the slot is closed."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the host context is closed")
            if self._server is None:
                self._server = _start(server_cls, self.ctx)
            return self._server

    def url_resolver(self) -> Callable[[], str]:
        """A resolver of the server's session URL, run at connect time in a worker
        thread.  ConnectRefused at once when :data:`EMBEDDED_MODULE` cannot be imported."""
        try:
            server_cls = importlib.import_module(EMBEDDED_MODULE).EmbeddedServer
        except (ImportError, AttributeError):
            raise ConnectRefused(f"backend 'local' unavailable: the embedded server "
                                 f"({EMBEDDED_MODULE}) cannot be imported") from None

        def resolve() -> str:
            try:
                return protocol.realtime_url(self.get(server_cls).url)
            except Exception as exc:
                detail = str(exc).splitlines()[0][:200] if str(exc) else ""
                raise RuntimeError(f"embedded server failed to start: {type(exc).__name__}"
                                   + (f": {detail}" if detail else "")) from None

        return resolve

    def close(self) -> None:
        """Stop the server (when one was started); later :meth:`get` calls fail."""
        with self._lock:
            server, self._server, self._closed = self._server, None, True
        if server is not None:
            stop = getattr(server, "close", None) or getattr(server, "stop")
            stop()


def _start(server_cls: type, ctx: "HostContext") -> Any:
    """Construct the server (passing the I/O loop / context when its constructor takes
    them, and ``HostConfig.local_server`` options) and start it unless it has a URL."""
    try:
        params = inspect.signature(server_cls).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = dict(ctx.config.local_server or {})
    for key, value in (("io", ctx.io), ("context", ctx), ("ctx", ctx)):
        if key in params:
            kwargs[key] = value
    server = server_cls(**kwargs)
    try:
        url = server.url
    except Exception:
        url = None
    if not url:
        server.start()
    log.info("embedded realtime server at %s", protocol.redact_url(server.url))
    return server
