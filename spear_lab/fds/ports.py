"""The ports of an rtasr fd: what the edges that carry its audio implement (docs/abi.md §5.4).

The fd (:class:`~spear_lab.fds.rtasr.RtasrFd`) is sans-I/O.  At CONNECT it asks its
:data:`Connector` (given by the host) for a :class:`Transport`, which the connector has
started; from then on the fd only records what it wants — items in the send queue, a
segmentation, a commit deadline (:meth:`RtasrFd.next_commit_deadline`), its close (with
``unsent`` audio for ``flush_on_close``) — and tells the transport with
:meth:`Transport.wake` that there is something to look at.  The transport (an edge, in
``spear_lab.transports``) acts: it pulls items with :meth:`RtasrFd.take_send_item`,
pushes events with :meth:`RtasrFd.push_event`, reports :meth:`RtasrFd.opened`,
:meth:`RtasrFd.fail`, :meth:`RtasrFd.hang_up` and :meth:`RtasrFd.transport_ended`, and
stops itself once it sees the fd closed.

The fd calls :meth:`Transport.wake` from any thread with the table lock held: it must
only schedule work, never block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from .rtasr import RtasrFd

__all__ = ["ConnectRefused", "Connector", "Transport"]


class ConnectRefused(Exception):
    """CONNECT cannot start a transport (e.g. a backend without credential); the message is
    secret-free and becomes the fd's ``last_error``.  ``final`` refusals (a missing
    credential, a refused ``ws_url``) are never replaced by the stub."""

    final: bool = False

    def __init__(self, message: str = "", final: bool = False) -> None:
        super().__init__(message)
        self.final = final


class Transport(Protocol):
    """What an rtasr fd needs from its transport."""

    #: ``"stub"`` or ``"websocket"`` (GET_STATUS ``transport``).
    name: str
    #: Backend name, or None (GET_STATUS ``backend``).
    backend: str | None

    def wake(self) -> None:
        """Look at the fd again: a send item, the segmentation, the commit deadline — or
        its close: then send ``fd.unsent`` and a commit when ``flush_on_close``, close, and
        end every task."""


#: Host hook that chooses and starts the transport of a connecting fd; may raise
#: :class:`ConnectRefused` (nothing is started then).
Connector = Callable[["RtasrFd"], Transport]
