"""One client connection of the server: the asyncio driver of one session.

:class:`Connection` feeds the client's messages to its sans-I/O
:class:`~spear_lab.server.protocol.TranscriptionSession` and performs the actions
the session returns: it queues events for the client (a bounded outbox, sent by
its own task), drives the session's recognition lane, applies recognition results
in commit order, and calls the session's idle timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from . import admission
from .events import (AbortStream, CloseConnection, FeedAudio, FinishStream, OpenStream,
                     RequestPartial, Send, error_event)
from .keepalive import keepalive
from .lanes import Lane, Stream
from .options import ServerOptions
from .protocol import TranscriptionSession

__all__ = ["Connection", "OFFLOAD_BYTES", "POLICY_CLOSE_TIMEOUT_S"]

log = logging.getLogger(__name__)

POLICY_CLOSE_TIMEOUT_S = 5.0
"""Seconds a slow reader gets to reach the close frame after it was refused (1008)."""
OFFLOAD_BYTES = 256 * 1024
"""Messages larger than this are parsed and decoded in a worker thread."""


class Connection:
    """One client: message loop, event sender, recognition results, idle timer.

    Bounded: at most ``max_outbox_bytes`` of serialized events wait for a client
    (past that it is closed with 1008 and nothing more is queued for it), at most
    ``max_backlog`` committed items wait for recognition: while that many wait, the
    client's next message is not read (TCP backpressure paces a client that streams
    faster than real time), and commits that one message adds past the cap fail."""

    def __init__(self, ws: ServerConnection, session: TranscriptionSession, lane: Lane,
                 lockstep: bool, decoder_pool: ThreadPoolExecutor, opts: ServerOptions) -> None:
        self.ws, self.session, self.lane, self.lockstep = ws, session, lane, lockstep
        self.decoder_pool = decoder_pool
        self.opts = opts
        self.outbox: asyncio.Queue[str | tuple | None] = asyncio.Queue()
        self.outbox_bytes = 0
        self.results: asyncio.Queue[tuple[str, Stream | str]] = asyncio.Queue()
        self.backlog = 0  # committed items whose recognition is not applied yet
        self.backlog_fell = asyncio.Event()
        self.streams: dict[str, Stream] = {}
        self.wake = asyncio.Event()
        self.closing = False
        self._closer: asyncio.Task | None = None
        self._sender_task: asyncio.Task | None = None
        #: Loop time the last client message was taken (the keepalive's sign of life).
        self.last_message = asyncio.get_running_loop().time()

    async def run(self) -> None:
        sid = self.session.session_id
        log.debug("session %s opened (%s)", sid, self.session.dialect)
        tasks = [asyncio.create_task(self._sender(), name=f"spear-send-{sid}"),
                 asyncio.create_task(self._collector(), name=f"spear-results-{sid}"),
                 asyncio.create_task(self._idle_timer(), name=f"spear-idle-{sid}"),
                 asyncio.create_task(keepalive(self.ws, lambda: self.last_message),
                                     name=f"spear-keepalive-{sid}")]
        self._sender_task = tasks[0]
        try:
            self._do(self.session.start())
            loop = asyncio.get_running_loop()
            async for message in self.ws:
                self.last_message = loop.time()
                if self.closing:
                    break
                if isinstance(message, bytes) and not self.opts.lenient:
                    self._send(error_event(self.session.ids, "invalid_event",
                                           "Binary WebSocket messages are not supported: send each "
                                           "client event as a JSON text message."))
                    continue
                if len(message) > OFFLOAD_BYTES:  # decode big appends off the loop
                    prepared = await loop.run_in_executor(self.decoder_pool, self.session.prepare,
                                                          message)
                else:
                    prepared = self.session.prepare(message)
                self._do(self.session.handle(prepared))
                await self.lane.drain()
                while self.backlog >= self.opts.max_backlog and not self.closing:
                    self.backlog_fell.clear()  # read no more until recognition catches up
                    if await self._closed_while(self.backlog_fell.wait()):
                        raise ConnectionClosed(None, None)  # vanished: cancel its work now
                if self.lockstep:
                    await self.lane.sync()
                    await self.results.join()
                self.wake.set()
                await asyncio.sleep(0)  # queued messages must not starve other clients
        except ConnectionClosed:
            pass
        finally:
            self._do(self.session.close())
            self.lane.close()
            self.outbox.put_nowait(None)
            for t in tasks[1:]:
                t.cancel()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(tasks[0]), 1.0)
            tasks[0].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._closer is not None:
                await asyncio.gather(self._closer, return_exceptions=True)
            log.debug("session %s closed", sid)

    async def _closed_while(self, aw) -> bool:
        """Await ``aw`` unless the connection closes first (then True)."""
        waiter = asyncio.ensure_future(aw)
        closed = asyncio.ensure_future(self.ws.wait_closed())
        await asyncio.wait([waiter, closed], return_when=asyncio.FIRST_COMPLETED)
        for t in (waiter, closed):
            t.cancel()
        return closed.done() and not closed.cancelled()

    def _send(self, event: dict) -> None:
        """Queue one event, unless the client is being closed; past the outbox cap,
        close it with 1008 (its queued events are dropped with the connection)."""
        if self.closing:
            return
        data = json.dumps(event, separators=(",", ":"))
        if self.outbox_bytes + len(data) > self.opts.max_outbox_bytes:
            log.warning("session %s: client does not read its events (%d bytes queued); "
                        "closing it", self.session.session_id, self.outbox_bytes)
            self.closing = True
            self._closer = asyncio.ensure_future(self._close(admission.CLOSE_POLICY,
                                                             "client is not reading events"))
            return
        self.outbox_bytes += len(data)
        self.outbox.put_nowait(data)

    async def _close(self, code: int, reason: str) -> None:
        # the close frame waits behind the events already in the socket: give a slow
        # reader a few seconds to reach it (what it holds meanwhile is bounded)
        self.ws.close_timeout = POLICY_CLOSE_TIMEOUT_S
        sender = self._sender_task
        if sender is not None:  # stop it mid-send (a whole frame is already written)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close(code, reason)

    def _do(self, actions: list) -> None:
        """Perform the session's actions, in order."""
        for a in actions:
            if isinstance(a, Send):
                self._send(a.event)
            elif isinstance(a, CloseConnection):
                if not self.closing:
                    self.closing = True
                    self.outbox.put_nowait(("close", a.code, a.reason))
            elif isinstance(a, FeedAudio):
                s = self.streams.get(a.item_id)
                if s is not None:
                    s.feed(a.pcm)
            elif isinstance(a, OpenStream):
                item = a.item_id
                self.streams[item] = self.lane.open(
                    on_partial=lambda text, item=item: self._do(self.session.partial(item, text)),
                    language=a.language, prompt=a.prompt, partials=a.partials)
            elif isinstance(a, RequestPartial):
                if a.item_id in self.streams:
                    self.streams[a.item_id].request_partial()
            elif isinstance(a, FinishStream):
                s = self.streams.pop(a.item_id, None)
                if s is not None:
                    if self.backlog >= self.opts.max_backlog:
                        s.abort()
                        s = (f"transcription backlog full: {self.backlog} earlier items of this "
                             "session are still waiting for recognition")
                    else:
                        s.finish()
                    self.backlog += 1
                    self.results.put_nowait((a.item_id, s))
            elif isinstance(a, AbortStream):
                s = self.streams.pop(a.item_id, None)
                if s is not None:
                    s.abort()

    async def _collector(self) -> None:
        """Apply final recognitions in commit order."""
        while True:
            item_id, stream = await self.results.get()
            try:
                if isinstance(stream, str):  # refused at commit: over the backlog cap
                    self._do(self.session.failed(item_id, stream))
                    continue
                await asyncio.wait([stream.result])
                if stream.result.cancelled():
                    continue
                exc = stream.result.exception()
                if exc is not None:
                    (log.debug if self.closing else log.warning)(
                        "transcription of %s failed: %s", item_id, exc)
                    self._do(self.session.failed(item_id, str(exc)))
                else:
                    self._do(self.session.recognized(item_id, stream.result.result()))
            except Exception:  # noqa: BLE001 - keep collecting the next items
                log.exception("applying the transcription of %s failed", item_id)
            finally:
                self.backlog -= 1
                self.backlog_fell.set()
                self.results.task_done()

    async def _sender(self) -> None:
        while True:
            data = await self.outbox.get()
            if data is None:
                return
            try:
                if isinstance(data, tuple):  # ("close", code, reason) after the events before it
                    await self.ws.close(data[1], data[2])
                    return
                self.outbox_bytes -= len(data)
                await self.ws.send(data)
            except ConnectionClosed:
                return

    async def _idle_timer(self) -> None:
        """Calls ``session.tick`` at the idle deadline (re-read after every message)."""
        while True:
            self.wake.clear()
            deadline = self.session.idle_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
            self._do(self.session.tick())
