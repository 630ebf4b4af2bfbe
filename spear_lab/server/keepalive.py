"""Server keepalive that a flow-controlled client survives (issue 19).

websockets' own keepalive (a ping every 20 s; close 1011 "keepalive ping timeout" when
the pong is 20 s late) drops a client that streams audio faster than the server reads
it: the client answers the ping at once, but its pong waits in the TCP stream behind the
audio the server has not read yet.  On loopback the kernel's socket buffers hold
megabytes, so with accelerated audio the pong arrived 14-19 s after the ping (measured),
and sometimes more than 20 s: the server closed the connection under the client's
pending send.

:func:`keepalive` pings just as often, but a late pong counts against the client only
when nothing else shows it alive: no message was read from it within the timeout, and
no byte it sent is waiting unread in the server's socket.  A client that vanished (no
pong, no data) is still closed after ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import struct
import termios
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

__all__ = ["INTERVAL_S", "TIMEOUT_S", "keepalive", "unread_bytes"]

log = logging.getLogger(__name__)

INTERVAL_S = 20.0
"""Seconds between keepalive pings (websockets' default)."""
TIMEOUT_S = 20.0
"""Seconds a client may show no sign of life (no pong, no message, no unread byte)."""
CLOSE_CODE = 1011


def unread_bytes(ws: ServerConnection) -> int:
    """Bytes the peer sent that wait unread in the socket's receive buffer (FIONREAD);
    0 when the socket is gone or the platform cannot tell."""
    sock = ws.transport.get_extra_info("socket") if ws.transport is not None else None
    if sock is None:
        return 0
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0
    return struct.unpack("i", buf)[0]


def _retrieve(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()  # a pong abandoned at close: no "never retrieved" warning


async def keepalive(ws: ServerConnection, last_message: Callable[[], float],
                    interval_s: float | None = None, timeout_s: float | None = None) -> None:
    """Ping ``ws`` every ``interval_s`` seconds until it closes.

    ``last_message()`` is the loop time (``loop.time()``) when the server last took a
    message from this client.  When a pong is ``timeout_s`` late, the client is still
    considered alive if a message was taken within the last ``timeout_s`` or unread
    bytes wait in its socket (its pong is queued behind them); otherwise the connection
    is closed with 1011 ``keepalive ping timeout``.  The periods default to
    :data:`INTERVAL_S` and :data:`TIMEOUT_S` (read at call time).
    """
    interval_s = INTERVAL_S if interval_s is None else interval_s
    timeout_s = TIMEOUT_S if timeout_s is None else timeout_s
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval_s)
        try:
            pong = await ws.ping()
        except ConnectionClosed:
            return
        pong.add_done_callback(_retrieve)
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(pong), timeout_s)
                break
            except ConnectionClosed:
                return
            except TimeoutError:
                quiet = loop.time() - last_message()
                unread = unread_bytes(ws)
                if quiet < timeout_s or unread > 0:
                    log.debug("keepalive: pong late but the client is alive (last message "
                              "%.1f s ago, %d bytes unread)", quiet, unread)
                    continue
                log.info("closing a client that showed no sign of life for %.0f s "
                         "(keepalive ping timeout)", timeout_s)
                try:
                    await ws.close(CLOSE_CODE, "keepalive ping timeout")
                except ConnectionClosed:
                    pass
                return
