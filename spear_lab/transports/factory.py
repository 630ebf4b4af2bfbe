"""Choosing the transport for a connecting rtasr fd (CONNECT, docs/abi.md §5.6, §5.4).

``transport`` other than ``"websocket"`` → the stub (docs/abi.md §5.4; ``stub_mode: "realistic"`` for
the energy-driven OpenAI-shaped events).  ``"websocket"`` → the backend routed by
:mod:`spear_lab.transports.backends`.  When routing fails (an unknown backend name, a
model the backend does not offer) CONNECT fails with ``-EIO`` and a ``last_error`` naming
the known backends, unless the stub may take over: the guest asked for it (rtasr param
``fallback`` = ``{"to_stub":true}``, as for mic fds) or the host policy says so
(``HostConfig.stub_fallback``, docs/abi.md §5.4).  A fallback is announced once per host context with
one WARNING line (:meth:`HostContext.warn_once`).  Final refusals (a missing credential,
a refused ``ws_url``) never fall back.
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
    """The transport CONNECT starts for ``fd``, started (the fd's :data:`Connector`);
    raises :class:`ConnectRefused`, and then nothing was started."""
    transport = choose_transport(fd, ctx)
    transport.start()
    return transport


def choose_transport(fd: "RtAsrFd", ctx: "HostContext") -> Transport:
    """The transport for ``fd``, not started yet; raises :class:`ConnectRefused`."""
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
        if fallback_allowed(fd, ctx) and not exc.final:
            message = f"rtasr fd {fd.fd}: {exc}; using the stub transport instead"
            warn = getattr(ctx, "warn_once", None)
            if warn is not None:
                warn("stub_fallback", message)
            else:  # pragma: no cover - a context without the hook
                log.warning("%s", message)
            return open_stub(fd, ctx)
        raise


def fallback_allowed(fd: "RtAsrFd", ctx: "HostContext") -> bool:
    """Whether the stub may replace a backend that cannot be routed: the guest's param
    ``fallback`` is ``{"to_stub":true}``, or ``HostConfig.stub_fallback`` is on."""
    fallback = fd.param("fallback")
    if isinstance(fallback, dict) and fallback.get("to_stub") is True:
        return True
    return bool(ctx.config.stub_fallback)
