"""The interface between an rtasr fd and whatever carries its audio (stub or WebSocket).

A transport is created by the host at CONNECT and runs on the host's I/O loop.  It pulls
items with :meth:`RtAsrFd.take_send_item`, pushes events with :meth:`RtAsrFd.push_event`,
reports failure with :meth:`RtAsrFd.fail` and a peer close with :meth:`RtAsrFd.hang_up`.
The fd calls the methods below, from any thread, with the table lock held: they must
only schedule work, never block.
"""

from __future__ import annotations

from typing import Protocol


class ConnectRefused(Exception):
    """CONNECT cannot start a transport (e.g. a backend without credential); the message is
    secret-free and becomes the fd's ``last_error``."""


class Transport(Protocol):
    """What an rtasr fd needs from its transport."""

    #: ``"stub"`` or ``"websocket"`` (GET_STATUS ``transport``).
    name: str
    #: Backend name, or None (GET_STATUS ``backend``).
    backend: str | None

    def start(self) -> None:
        """Begin moving data (schedules a task on the I/O loop)."""

    def wake(self) -> None:
        """A send item was queued, or the segmentation changed."""

    def stop(self, flush: bool) -> None:
        """The fd closed: commit first when ``flush``, then close and end every task."""
