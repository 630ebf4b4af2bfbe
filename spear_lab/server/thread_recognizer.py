"""Recognition in a thread pool of this process: :class:`ThreadRecognizer`.

For engines that release the GIL, or engine objects that cannot be rebuilt in
another process (tests). Each lane is an asyncio task that runs its operations
in order, calling the engine in the pool.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from . import reccache
from . import wire as wp
from .engines import Engine, EngineSpec, engine_spec, RecognitionError
from .lanes import Lane, Recognizer, Stream

__all__ = ["ThreadRecognizer"]


class _ThreadLane(Lane):
    def __init__(self, rec: ThreadRecognizer) -> None:
        super().__init__()
        self.rec = rec
        self.queue: asyncio.Queue = asyncio.Queue()
        self.state: Any = None
        self.engine_streams: dict[int, Any] = {}
        self.task = asyncio.create_task(self._run(), name="spear-recognizer-lane")
        rec._tasks.add(self.task)
        self.task.add_done_callback(rec._tasks.discard)

    def _op(self, op: int, stream: Stream, arg: Any) -> None:
        self.queue.put_nowait((op, stream, arg))

    async def sync(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((wp.SYNC, None, fut))
        await fut

    def close(self) -> None:
        self._abort_streams()
        self.queue.put_nowait((wp.SHUTDOWN, None, None))

    async def _call(self, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.rec._pool, fn, *args)

    async def _run(self) -> None:
        while True:
            op, stream, arg = await self.queue.get()
            if op == wp.SYNC:
                if not arg.done():
                    arg.set_result(None)
                continue
            if op == wp.SHUTDOWN:
                break
            es = self.engine_streams.get(stream.sid)
            try:
                if op == wp.OPEN:
                    self.engine_streams[stream.sid] = await self._call(
                        lambda: self.rec.engine.open_stream(**arg, state=self.state))
                elif es is None:
                    if op == wp.FINISH:
                        stream._resolve(None, "recognition stream is not open")
                elif op == wp.ABORT:
                    await self._call(self.engine_streams.pop(stream.sid).close)
                elif stream.result.done():
                    continue
                elif op == wp.FEED:
                    await self._call(es.accept, arg)
                elif op == wp.PARTIAL:
                    stream._partial(await self._call(es.partial))
                elif op == wp.FINISH:
                    self.engine_streams.pop(stream.sid)
                    rec = await self._call(es.finish)
                    if rec.state is not None:
                        self.state = rec.state
                    stream._resolve(rec)
            except Exception as exc:  # noqa: BLE001 - reported through the stream
                bad = self.engine_streams.pop(stream.sid, None)
                if bad is not None:
                    await self._call(bad.close)
                stream._resolve(None, str(exc) if isinstance(exc, RecognitionError)
                                else f"{type(exc).__name__}: {exc}")
        for es in self.engine_streams.values():
            await self._call(es.close)
        self.engine_streams.clear()


class ThreadRecognizer(Recognizer):
    """Engine calls in a thread pool of this process. ``engine`` is an
    :class:`Engine` instance or an :class:`EngineSpec` built at ``start``."""

    def __init__(self, engine: Engine | EngineSpec | None = None, max_workers: int = 2) -> None:
        engine = engine or engine_spec()
        self._engine_arg = engine
        self.engine: Engine | None = engine if isinstance(engine, Engine) else None
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="spear-recognizer")
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        if self.engine is None:
            loop = asyncio.get_running_loop()
            self.engine = reccache.wrap(await loop.run_in_executor(self._pool, self._engine_arg.build),
                                        self._engine_arg, stats=self.cache_stats)

    def describe(self) -> dict:
        return self.engine.describe() if self.engine is not None else {}

    def lane(self) -> Lane:
        if self.engine is None:
            raise RecognitionError("recognizer is not started")
        return _ThreadLane(self)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=True)
        if not isinstance(self._engine_arg, Engine) and self.engine is not None:
            self.engine.close()
