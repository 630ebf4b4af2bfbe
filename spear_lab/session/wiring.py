"""Wiring the host core to the real edges: the one place that fills a context's ports.

:func:`wire` gives a :class:`~spear_lab.host.HostContext` its connector (a
:class:`~spear_lab.transports.factory.TransportOpener`: stub, WebSocket backends, the
embedded server) and its microphone sources (a
:class:`~spear_lab.audio.sources.SourceFactory`: device, file, stub, browser).
:func:`make_host` — ``spear_lab.Host`` — is a wired Host; a bare
``spear_lab.host.Host`` has no edges.
"""

from __future__ import annotations

from typing import Any

from ..audio.sources import SourceFactory
from ..host import Host, HostConfig, HostContext, IoLoop
from ..host.context import LogSink
from ..runtime.probe import Probe
from ..transports.factory import TransportOpener

__all__ = ["embedded_server", "host_context", "make_host", "make_probe", "wire"]


def wire(context: HostContext) -> HostContext:
    """Fill the ports of ``context`` that are still empty with the real edges; returns it."""
    if context.connector is None:
        opener = TransportOpener(context)
        context.connector = opener
        context.on_close(opener.close)
    if context.sources is None:
        context.sources = SourceFactory(context)
    return context


def host_context(config: HostConfig | None = None, *, io: IoLoop | None = None,
                 trace: LogSink | None = None) -> HostContext:
    """A new, wired :class:`HostContext`."""
    return wire(HostContext(config, io, trace))


def make_host(config: HostConfig | None = None, *, name: str = "host") -> Host:
    """A Host whose rtasr fds reach the real transports and whose mic fds open the real
    sources (``spear_lab.Host``).  ``host.shutdown()`` (or ``with``) closes it."""
    return Host(context=host_context(config), name=name)


def make_probe(host: Host | None = None, memory: bool = True) -> Probe:
    """A :class:`~spear_lab.runtime.probe.Probe` on ``host`` (``spear_lab.Probe``); by
    default on a new wired Host that the probe closes with itself."""
    return Probe(host if host is not None else make_host(), memory, owns_host=host is None)


def embedded_server(context: HostContext) -> Any:
    """The embedded server ``context`` started, or None (never starts one)."""
    opener = context.connector
    return opener.embedded.peek() if isinstance(opener, TransportOpener) else None
