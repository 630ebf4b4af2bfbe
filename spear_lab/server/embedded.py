"""The server embedded in a host program: on demand, on loopback, cleaned up after.

    with EmbeddedServer() as srv:          # own thread + event loop
        connect(srv.url)                   # ws://127.0.0.1:PORT/v1/realtime?intent=transcription

    srv = await EmbeddedServer().start_async()   # on the running loop
    ...
    await srv.stop_async()

``stop()`` closes every connection, stops the recognition workers, the loop and
the thread: nothing is left running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from typing import Any

from .app import RealtimeServer, ServerOptions

__all__ = ["EmbeddedServer"]

log = logging.getLogger(__name__)


class EmbeddedServer:
    """A :class:`~spear_lab.server.app.RealtimeServer` on an ephemeral loopback port.

    ``options`` or keyword arguments (fields of :class:`ServerOptions`, e.g.
    ``dialect="beta"``, ``deterministic=True``, ``lenient=True`` for the legacy-client
    profile, ``max_sessions=…``) configure it. ``io``: an object whose
    ``loop`` attribute is an event loop running in another thread (such as the host's
    ``spear_lab.host.ioloop.IoLoop``); ``start()`` then runs the server on that
    loop instead of a thread of its own. ``wait_ready`` makes
    ``start`` wait until the recogniser model is loaded (raising its error if it
    cannot load). Raises ``RuntimeError`` if started twice.
    """

    def __init__(self, options: ServerOptions | None = None, *, io: Any = None,
                 wait_ready: bool = True, **kwargs: Any) -> None:
        opts = options or ServerOptions()
        self.options = dataclasses.replace(opts, **kwargs) if kwargs else opts
        self.wait_ready = wait_ready
        self.io = io
        self.server: RealtimeServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._own_loop = False

    @property
    def url(self) -> str:
        """WebSocket URL of the transcription endpoint (after start)."""
        if self.server is None or self.server.port is None:
            raise RuntimeError("server is not started")
        return self.server.url

    @property
    def port(self) -> int:
        if self.server is None or self.server.port is None:
            raise RuntimeError("server is not started")
        return self.server.port

    @property
    def running(self) -> bool:
        return self.server is not None

    def recognition_stats(self) -> dict[str, Any]:
        """Recognition-cache ``hits``, ``misses``, ``lookups``, ``hit_rate`` of this
        server's recognizer (see :mod:`.reccache`); zeros before ``start``."""
        if self.server is None:
            return {"hits": 0, "misses": 0, "lookups": 0, "hit_rate": float("nan")}
        return self.server.recognizer.cache_stats.snapshot()

    # ------------------------------------------------------------------ own thread
    def start(self, timeout: float = 120.0) -> EmbeddedServer:
        """Start in a new thread with its own event loop (or on ``io.loop``, when an
        ``io`` object owning a running loop in another thread was given); returns self."""
        if self.server is not None:
            raise RuntimeError("server already started")
        if self.io is not None:
            self._loop, self._own_loop = self.io.loop, False
            try:
                asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout)
            except BaseException:
                self.stop()
                raise
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="spear-lab-server", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop, self._own_loop = loop, True
        try:
            asyncio.run_coroutine_threadsafe(self._start(), loop).result(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server (and its thread, if it has one); idempotent.

        For a server started with :meth:`start_async`, call from another thread or
        use :meth:`stop_async` on its loop.
        """
        loop = self._loop
        if loop is None:
            return
        if self._own_loop:
            try:
                if loop.is_running():
                    asyncio.run_coroutine_threadsafe(self._stop(), loop).result(timeout)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                self._thread.join(timeout)
                loop.close()
                self._thread = None
                self._loop = None
        else:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                raise RuntimeError("stop() would block the server's own loop; await stop_async()")
            asyncio.run_coroutine_threadsafe(self._stop(), loop).result(timeout)
            self._loop = None

    close = stop
    """Alias of :meth:`stop` (for owners that close their services)."""

    # ------------------------------------------------------------------ caller's loop
    async def start_async(self) -> EmbeddedServer:
        """Start on the running event loop; returns self."""
        if self.server is not None:
            raise RuntimeError("server already started")
        self._loop, self._own_loop = asyncio.get_running_loop(), False
        try:
            await self._start()
        except BaseException:
            await self._stop()
            self._loop = None
            raise
        return self

    async def stop_async(self) -> None:
        """Stop a server started with :meth:`start_async` (on its loop)."""
        if self._own_loop:
            await asyncio.get_running_loop().run_in_executor(None, self.stop)
            return
        await self._stop()
        self._loop = None

    # ------------------------------------------------------------------ shared
    async def _start(self) -> None:
        self.server = RealtimeServer(self.options)
        await self.server.start()
        if self.wait_ready:
            await self.server.wait_ready()

    async def _stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.aclose()
        if self._own_loop:
            current = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not current]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedServer:
        return await self.start_async()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_async()

    def __repr__(self) -> str:
        where = self.server.url if self.server is not None and self.server.port else "stopped"
        return f"<EmbeddedServer {where}>"
