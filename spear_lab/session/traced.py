"""The ABI for Python callers, every hostcall recorded in the Trace (``session.abi``)."""

from __future__ import annotations

from typing import Any, Callable

from ..host import Host
from ..host.recording import recorder

__all__ = ["TRACED", "TracedAbi"]

#: Hostcalls :class:`TracedAbi` records, by their Host method names.
TRACED = frozenset({
    "spear_epoll_create", "spear_epoll_ctl", "spear_epoll_wait", "spear_epoll_close",
    "spear_fd_ctl", "rtasr_create", "rtasr_ctl", "rtasr_write", "rtasr_read", "rtasr_close",
    "mic_create", "mic_ctl", "mic_read", "mic_close", "log", "sleep_ms",
})

class TracedAbi:
    """A Host's hostcall methods for Python callers, each call recorded in the trace of
    the host's context (:func:`spear_lab.host.recording.recorder`, as for guests).

    Attribute access falls through to the Host, so ``abi.table``, ``abi.config`` and
    helpers work; only the hostcalls in :data:`TRACED` are wrapped.
    """

    def __init__(self, host: Host) -> None:
        self._host = host
        self._wrapped: dict[str, Callable[..., Any]] = {}

    @property
    def host(self) -> Host:
        """The Host underneath."""
        return self._host

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._host, name)
        if name not in TRACED:
            return attr
        fn = self._wrapped.get(name)
        if fn is None:
            fn = self._wrapped[name] = recorder(self._host, name, attr, python=True)
        return fn

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._host)) | set(self.__dict__))

    def __repr__(self) -> str:
        return f"<TracedAbi {self._host!r}>"
