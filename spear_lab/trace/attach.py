"""Attaching a Trace to hosts: an fd-table observer and listener per host."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..abi.notes import Note
    from .core import Trace

__all__ = ["attach", "detach"]


def attach(trace: "Trace", host: Any) -> None:
    """Record ``host``'s readiness changes and notes, and its hostcalls.

    Adds an observer and a listener to ``host.table`` and, when the host's shared
    context has no trace yet, makes ``trace`` its trace (the wasm glue of every fork then
    records hostcalls there).  Attach each fork's table separately (the Session does so
    for every guest).  Attaching twice is a no-op.
    """
    if any(h is host for h, _, _ in trace._attached):
        return
    instance = host.name
    table = host.table

    def observer(fd: int, old: int, new: int) -> None:
        trace.readiness(instance, fd, old, new)

    def listener(fd: int, note: "Note") -> None:
        trace.note(instance, fd, note)

    with table.lock:
        table.observers.append(observer)
        table.listeners.append(listener)
    ctx = getattr(host, "context", None)
    if ctx is not None and getattr(ctx, "trace", None) is None:
        ctx.trace = trace
    with trace._lock:
        trace._attached.append((host, observer, listener))


def detach(trace: "Trace", host: Any) -> None:
    """Undo :func:`attach` for ``host`` (records already made stay)."""
    with trace._lock:
        found = [a for a in trace._attached if a[0] is host]
        trace._attached = [a for a in trace._attached if a[0] is not host]
    for h, observer, listener in found:
        with h.table.lock:
            if observer in h.table.observers:
                h.table.observers.remove(observer)
            if listener in h.table.listeners:
                h.table.listeners.remove(listener)
        ctx = getattr(h, "context", None)
        if ctx is not None and getattr(ctx, "trace", None) is trace and not any(
                getattr(a[0], "context", None) is ctx for a in trace._attached):
            ctx.trace = None
