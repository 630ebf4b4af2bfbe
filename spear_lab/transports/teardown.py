"""How a realtime WebSocket connection ended, in words for ``last_error`` (docs/abi.md §5.4).

- :func:`close_outcome`: peer close frame (→ EPOLLHUP) or failure (→ EPOLLERR), and
  the message, with the socket error's class and text when the connection was lost;
- :func:`describe`: ``Class: message`` of an exception, on one line;
- :func:`abort`: abort a connection's transport unless it is already gone.

Callers scrub the credential out of every message (``Secret.scrub``).
"""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

__all__ = ["abort", "close_outcome", "describe"]


def describe(exc: BaseException, limit: int = 300) -> str:
    """``Class: message`` of ``exc`` on one line (whitespace collapsed), the message cut
    at ``limit`` characters; just ``Class`` when the message is empty."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[:limit] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def close_outcome(exc: ConnectionClosed) -> tuple[bool, str]:
    """``(peer_closed, last_error)`` for a connection that ended with ``exc``.

    The peer closed when it sent a close frame first (or only it did); anything else is
    a failure: a lost connection (with the socket error that ended it, if any), or a
    close this side started after a protocol error.
    """
    rcvd, sent = exc.rcvd, exc.sent
    if rcvd is not None and (sent is None or exc.rcvd_then_sent):
        if rcvd.code in (1000, 1001, 1005):
            return True, "websocket closed by peer"
        reason = f": {rcvd.reason}" if rcvd.reason else ""
        return True, f"websocket closed by peer (code {rcvd.code}{reason})"
    if sent is not None:
        reason = f": {sent.reason}" if sent.reason else ""
        return False, f"websocket read failed (code {sent.code}{reason})"
    cause = exc.__cause__
    if cause is not None and not isinstance(cause, EOFError):  # EOF: the message says it
        return False, f"websocket closed (connection lost without a close frame: {describe(cause)})"
    return False, "websocket closed (connection lost without a close frame)"


def abort(ws: ClientConnection) -> None:
    """Abort ``ws``'s transport unless the connection is already lost.

    asyncio's ``abort()`` raises ``AttributeError: 'NoneType' object has no attribute
    'call_soon'`` on a socket transport that was closed with bytes still buffered and
    then detached itself once they drained (CPython 3.11-3.13, see
    agronholm/anyio#1250); such a transport has nothing left to abort.
    """
    transport = ws.transport
    if transport is None or ws.connection_lost_waiter.done():
        return
    try:
        transport.abort()
    except AttributeError:
        pass
