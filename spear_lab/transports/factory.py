"""Choosing the transport for a connecting rtasr fd (CONNECT, abi-reference §7.3, §10.1).

``transport`` other than ``"websocket"`` → the stub (§9; ``stub_mode: "realistic"`` for
the energy-driven OpenAI-shaped events).  ``"websocket"`` → the backend routed by
:mod:`spear_lab.transports.backends`; when routing fails the stub is used silently if the
host allows it (``HostConfig.stub_fallback``, G13), else CONNECT fails with a clear
``last_error``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .base import ConnectRefused, Transport

if TYPE_CHECKING:
    from ..fds.rtasr import RtAsrFd
    from ..runtime.host import HostContext

log = logging.getLogger(__name__)


def open_stub(fd: "RtAsrFd", ctx: "HostContext", backend: str | None = None) -> Transport:
    """The stub transport for ``fd`` (reference or realistic mode, per ``stub_mode``)."""
    from .stub import StubTransport

    return StubTransport(fd, ctx.io, backend=backend)


def open_transport(fd: "RtAsrFd", ctx: "HostContext") -> Transport:
    """The transport CONNECT starts for ``fd``; raises :class:`ConnectRefused`."""
    if fd.param("transport", "stub") != "websocket":
        return open_stub(fd, ctx)
    try:
        from .backends import route
    except ImportError:  # pragma: no cover - the WebSocket layer is optional at import time
        route = None
    try:
        if route is None:
            raise ConnectRefused("no websocket backends configured")
        return route(fd, ctx)
    except ConnectRefused as exc:
        if ctx.config.stub_fallback and not getattr(exc, "final", False):
            log.warning("rtasr fd %d: %s; using the stub transport (stub_fallback)", fd.fd, exc)
            return open_stub(fd, ctx)
        raise
