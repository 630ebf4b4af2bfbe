"""The server's keepalive (issue 19): a client whose pong waits behind its own unread
audio is kept; a client that shows no sign of life is closed with 1011.

Real websockets servers and clients on loopback, with short periods (ping every 0.2 s,
0.3 s without a sign of life) so that the kernel's socket buffers delay the pong far
longer than the timeout.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from spear_lab.server.keepalive import keepalive, unread_bytes

INTERVAL, TIMEOUT = 0.2, 0.3
FLOOD_S = 3.0
MESSAGE = os.urandom(48 * 1024)  # about 1 s of 24 kHz pcm16 per message


def _slow_reader_server(ours: bool, result: dict):
    """A handler that takes one message every 20 ms (a recogniser catching up), with
    our keepalive (``ours``) or websockets' own (ping_interval/ping_timeout)."""
    async def handler(ws):
        loop = asyncio.get_running_loop()
        last = [loop.time()]
        ka = asyncio.create_task(keepalive(ws, lambda: last[0], INTERVAL, TIMEOUT)) if ours else None
        try:
            async for _ in ws:
                last[0] = loop.time()
                result["unread_max"] = max(result.get("unread_max", 0), unread_bytes(ws))
                await asyncio.sleep(0.02)
        except ConnectionClosed:
            pass
        finally:
            sent = ws.protocol.close_sent  # the close frame this server sent, if any
            result["close_sent"] = (sent.code, sent.reason) if sent is not None else None
            if ka is not None:
                ka.cancel()
    kwargs = {"ping_interval": None} if ours else {"ping_interval": INTERVAL, "ping_timeout": TIMEOUT}
    return handler, kwargs


async def _flood(ours: bool) -> dict:
    result: dict = {}
    handler, kwargs = _slow_reader_server(ours, result)
    async with serve(handler, "127.0.0.1", 0, max_size=None, compression=None, **kwargs) as srv:
        port = srv.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", ping_interval=None, max_size=None,
                           compression=None, close_timeout=1) as ws:
            reader = asyncio.create_task(_drain(ws))  # the client reads (and pongs) at once
            deadline = time.monotonic() + FLOOD_S
            try:
                while time.monotonic() < deadline:
                    await ws.send(MESSAGE)
                result["open_after_flood"] = True
            except (ConnectionClosed, AttributeError):  # AttributeError: asyncio, see teardown.abort
                result["open_after_flood"] = False
                return result
            # Measure how late a pong is behind the data still in flight.
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(await ws.ping(), 30)
                result["pong_s"] = time.monotonic() - t0
            except (ConnectionClosed, TimeoutError):
                result["pong_s"] = None
            reader.cancel()
    return result


async def _drain(ws) -> None:
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


def test_websockets_keepalive_drops_a_client_behind_its_own_data():
    """The control: websockets' keepalive closes the flooding client with 1011."""
    result = asyncio.run(_flood(ours=False))
    assert result["open_after_flood"] is False, result
    assert result["close_sent"] == (1011, "keepalive ping timeout"), result


def test_keepalive_keeps_a_client_whose_pong_waits_behind_unread_data():
    result = asyncio.run(_flood(ours=True))
    assert result["open_after_flood"] is True, result
    assert result["close_sent"] in (None, (1000, "")), result  # only the normal close at the end
    # The pong really was late: far more than the timeout, behind unread bytes.
    assert result["pong_s"] is not None and result["pong_s"] > TIMEOUT, result
    assert result["unread_max"] > 0, result


def test_keepalive_closes_a_client_that_shows_no_sign_of_life():
    """A raw client completes the handshake, then never reads, answers or sends."""
    async def run() -> tuple[float, bytes, int | None]:
        ended: dict = {}

        async def handler(ws):
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await keepalive(ws, lambda: t0, INTERVAL, TIMEOUT)
            ended["after_s"] = loop.time() - t0
            ended["code"] = ws.close_code

        async with serve(handler, "127.0.0.1", 0, ping_interval=None, close_timeout=0.5) as srv:
            port = srv.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            await reader.readuntil(b"\r\n\r\n")
            for _ in range(200):  # until the server gives up (10 s at most)
                if "after_s" in ended:
                    break
                await asyncio.sleep(0.05)
            received = await asyncio.wait_for(reader.read(), 5)  # what the server sent
            writer.close()
            return ended.get("after_s", float("inf")), received, ended.get("code")

    after_s, received, code = asyncio.run(run())
    assert INTERVAL + TIMEOUT <= after_s < 5, after_s
    assert b"\x88" in received and b"keepalive ping timeout" in received, received[-60:]
    assert code in (1011, 1006), code  # 1006: the client never completed the handshake


def test_unread_bytes_counts_what_waits_in_the_socket():
    a, b = socket.socketpair()
    try:
        a.sendall(b"x" * 1000)
        time.sleep(0.05)

        class _T:  # just what unread_bytes looks at: the transport's socket
            def get_extra_info(self, name):
                return b if name == "socket" else None

        class _WS:
            transport = _T()
        assert unread_bytes(_WS()) == 1000
        b.recv(1000)
        assert unread_bytes(_WS()) == 0
    finally:
        a.close()
        b.close()
