"""Choosing the transport for a connecting rtasr fd (CONNECT, docs/abi.md §5.6, §5.4).

A :class:`TransportOpener` is a host context's :data:`spear_lab.fds.ports.Connector`:

- ``transport`` other than ``"websocket"`` → the stub (docs/abi.md §5.4; ``stub_mode:
  "realistic"`` for the energy-driven OpenAI-shaped events);
- ``"websocket"`` → the backend routed by :mod:`spear_lab.transports.backends`.

When routing fails (an unknown backend name, a model the backend does not offer) CONNECT
fails with ``-EIO`` and a ``last_error`` naming the known backends, unless the stub may
take over: the guest asked for it (rtasr param ``fallback`` = ``{"to_stub":true}``, as for
mic fds) or the host policy says so (``HostConfig.stub_fallback``, docs/abi.md §5.4).  A
fallback is announced once per host context with one WARNING line
(:meth:`HostContext.warn_once`).  Final refusals (a missing credential, a refused
``ws_url``) never fall back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .backends import route
from .base import ConnectRefused, Transport
from .embedded import EmbeddedServerSlot
from .stub import StubTransport

if TYPE_CHECKING:
    from ..fds.rtasr import RtasrFd
    from ..host import HostContext

__all__ = ["TransportOpener", "fallback_allowed"]

log = logging.getLogger(__name__)


class TransportOpener:
    """Chooses and starts the transport of each connecting fd of ``ctx``; owns the
    context's embedded server (:attr:`embedded`), stopped by :meth:`close`."""

    def __init__(self, ctx: "HostContext") -> None:
        self.ctx = ctx
        self.embedded = EmbeddedServerSlot(ctx)

    def __call__(self, fd: "RtasrFd") -> Transport:
        """The started transport for ``fd``; raises :class:`ConnectRefused`, and then
        nothing was started."""
        transport = self.choose(fd)
        transport.start()
        return transport

    def choose(self, fd: "RtasrFd") -> Transport:
        """The transport for ``fd``, not started yet; raises :class:`ConnectRefused`."""
        if fd.param("transport", "stub") != "websocket":
            return StubTransport(fd, self.ctx.io)
        try:
            return route(fd, self.ctx, self.embedded)
        except ConnectRefused as exc:
            if exc.final or not fallback_allowed(fd, self.ctx):
                raise
            self.ctx.warn_once("stub_fallback",
                               f"rtasr fd {fd.fd}: {exc}; using the stub transport instead")
            return StubTransport(fd, self.ctx.io)

    def close(self) -> None:
        """Stop the embedded server, when one was started."""
        self.embedded.close()


def fallback_allowed(fd: "RtasrFd", ctx: "HostContext") -> bool:
    """Whether the stub may replace a backend that cannot be routed: the guest's param
    ``fallback`` is ``{"to_stub":true}``, or ``HostConfig.stub_fallback`` is on."""
    fallback = fd.param("fallback")
    if isinstance(fallback, dict) and fallback.get("to_stub") is True:
        return True
    return bool(ctx.config.stub_fallback)
