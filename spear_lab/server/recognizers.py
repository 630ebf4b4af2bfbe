"""Running engines off the event loop: worker processes or threads.

A :class:`Recognizer` hands out one :class:`Lane` per session. Everything done on
a lane (open a stream, feed it, ask for a partial, finish) runs strictly in order,
and the engine's adaptation state (e.g. pocketsphinx's cepstral mean) is carried
from one stream of the lane to the next, so a session's results depend only on
its own audio. Different lanes run in parallel. No method blocks the event loop.

* :class:`ProcessRecognizer` (default): ``N`` worker processes
  (``python -m spear_lab.server.worker``); each lane is pinned to the least busy
  one. Needed for pocketsphinx, which holds the GIL while decoding (measured: up to
  0.5 s at the end of a long utterance), so threads would stall every session.
* :class:`ThreadRecognizer`: a thread pool in this process, for engines that release
  the GIL or engine objects that cannot be rebuilt in another process (tests).

Errors: a failed stream's ``result`` future raises
:class:`~spear_lab.server.engines.RecognitionError`. A worker that dies fails its
open streams that way and is replaced in the background.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import sys
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import reccache
from . import wire as wp
from .childenv import worker_environ
from .engines import Engine, EngineSpec, engine_spec, Recognition, RecognitionError, Word

__all__ = ["Stream", "Lane", "Recognizer", "ProcessRecognizer", "ThreadRecognizer"]

log = logging.getLogger(__name__)

PartialCallback = Callable[[str], None]


def _retrieved(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()


class Stream:
    """One utterance on a lane. ``result`` resolves to a :class:`Recognition`."""

    def __init__(self, lane: Lane, sid: int, on_partial: PartialCallback | None) -> None:
        self.lane, self.sid, self.on_partial = lane, sid, on_partial
        self.result: asyncio.Future[Recognition] = asyncio.get_running_loop().create_future()
        self.result.add_done_callback(_retrieved)  # a failure nobody awaits is not an error
        self.finishing = False

    def feed(self, pcm: np.ndarray) -> None:
        """Queue 16 kHz int16 samples."""
        if len(pcm) and not self.finishing:
            self.lane._op(wp.FEED, self, np.asarray(pcm, "<i2"))

    def request_partial(self) -> None:
        """Queue a partial-hypothesis request; the text goes to ``on_partial``."""
        if not self.finishing:
            self.lane._op(wp.PARTIAL, self, None)

    def finish(self) -> asyncio.Future[Recognition]:
        """Queue the end of the utterance; returns ``result``."""
        if not self.finishing:
            self.finishing = True
            self.lane._op(wp.FINISH, self, None)
        return self.result

    def abort(self) -> None:
        """Drop the utterance; ``result`` is cancelled if not done."""
        self.finishing = True
        if not self.result.done():
            self.result.cancel()
            self.lane._op(wp.ABORT, self, None)

    def _partial(self, text: str) -> None:
        if self.on_partial is not None and not self.result.done():
            try:
                self.on_partial(text)
            except Exception:  # noqa: BLE001 - a consumer bug must not kill the worker reader
                log.exception("partial-hypothesis callback failed")

    def _resolve(self, rec: Recognition | None, error: str | None = None) -> None:
        if not self.result.done():
            if error is None:
                self.result.set_result(rec)
            else:
                self.result.set_exception(RecognitionError(error))


class Lane(ABC):
    """An ordered queue of recognition work for one session."""

    def __init__(self) -> None:
        self._next = 0
        self.streams: dict[int, Stream] = {}

    def open(self, *, on_partial: PartialCallback | None = None, language: str | None = None,
             prompt: str | None = None, partials: bool = False) -> Stream:
        """Start a stream (the lane's previous engine state is carried over);
        ``partials``: partial hypotheses will be requested."""
        self._next += 1
        stream = Stream(self, self._next, on_partial)
        self.streams[stream.sid] = stream
        stream.result.add_done_callback(lambda _f, sid=stream.sid: self.streams.pop(sid, None))
        self._op(wp.OPEN, stream, {"language": language, "prompt": prompt,
                                   "partials": partials})
        return stream

    @abstractmethod
    def _op(self, op: int, stream: Stream, arg: Any) -> None:
        """Queue one operation."""

    @abstractmethod
    async def sync(self) -> None:
        """Wait until every operation queued so far has been processed."""

    async def drain(self) -> None:
        """Wait while the queue towards the worker is above its high-water mark."""

    @abstractmethod
    def close(self) -> None:
        """Abort open streams and free the lane."""


class Recognizer(ABC):
    """Factory of lanes bound to one event loop."""

    @property
    def cache_stats(self) -> reccache.CacheStats:
        """Recognition-cache hits and misses of this recognizer (see :mod:`.reccache`)."""
        if "_cache_stats" not in self.__dict__:
            self.__dict__["_cache_stats"] = reccache.CacheStats()
        return self.__dict__["_cache_stats"]

    @abstractmethod
    async def start(self) -> None:
        """Prepare workers (returns before models are loaded)."""

    async def wait_ready(self) -> None:
        """Wait until models are loaded; raises RecognitionError if they cannot be."""

    @abstractmethod
    def lane(self) -> Lane:
        """A new lane (call after ``start``)."""

    def describe(self) -> dict:
        """The engine and model in use (JSON-able; empty until known)."""
        return {}

    @abstractmethod
    async def aclose(self) -> None:
        """Stop all workers; open streams fail."""


# --------------------------------------------------------------------------- processes

class _ProcLane(Lane):
    def __init__(self, rec: ProcessRecognizer, lane_id: int, worker: _Worker) -> None:
        super().__init__()
        self.rec, self.id, self.worker = rec, lane_id, worker
        self.syncs: collections.deque[asyncio.Future[None]] = collections.deque()
        worker.lanes[lane_id] = self

    def _key(self, stream: Stream) -> int:
        return (self.id << 16) | (stream.sid & 0xFFFF)

    def _op(self, op: int, stream: Stream, arg: Any) -> None:
        w = self.worker
        if op == wp.OPEN and w.dead:  # move to the replacement worker, if any
            w.lanes.pop(self.id, None)
            self.worker = w = self.rec._live_worker(w.index)
            w.lanes[self.id] = self
        if w.dead:
            stream._resolve(None, "recognition worker is not running")
            return
        if op == wp.OPEN:
            w.streams[self._key(stream)] = stream
            arg = {**arg, "lane": self.id}
        elif op == wp.ABORT:
            w.streams.pop(self._key(stream), None)
        payload = arg.tobytes() if isinstance(arg, np.ndarray) else arg
        w.send(op, self._key(stream), payload)

    async def sync(self) -> None:
        if self.worker.dead:
            return
        fut = asyncio.get_running_loop().create_future()
        self.syncs.append(fut)
        self.worker.send(wp.SYNC, self.id << 16)
        await fut

    async def drain(self) -> None:
        await self.worker.drain()

    def close(self) -> None:
        for stream in list(self.streams.values()):
            stream.abort()
        self.worker.send(wp.DROP_LANE, self.id << 16)
        self.worker.lanes.pop(self.id, None)
        self._release_syncs()

    def _release_syncs(self) -> None:
        while self.syncs:
            f = self.syncs.popleft()
            if not f.done():
                f.set_result(None)


class _Worker:
    """Parent-side handle of one worker process."""

    def __init__(self, spec: EngineSpec, index: int) -> None:
        self.spec, self.index = spec, index
        self.proc: asyncio.subprocess.Process | None = None
        self.streams: dict[int, Stream] = {}
        self.lanes: dict[int, _ProcLane] = {}
        self.dead = False
        self.on_death: Callable[[_Worker], None] | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.engine_info: dict = {}
        self._reader: asyncio.Task | None = None
        self.stats: reccache.CacheStats | None = None  # set by ProcessRecognizer

    async def spawn(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = worker_environ()  # an allowlist without credentials (childenv.py)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        spec = json.dumps({"factory": self.spec.factory, "kwargs": self.spec.kwargs})
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "spear_lab.server.worker", spec,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
        self._reader = asyncio.create_task(self._read(), name=f"spear-recognizer-{self.index}")

    def send(self, op: int, key: int, payload: Any = None) -> None:
        if self.dead or self.proc is None or self.proc.stdin.is_closing():
            return
        self.proc.stdin.write(wp.encode(op, key, payload))

    async def drain(self) -> None:
        if not self.dead and self.proc is not None:
            try:
                await self.proc.stdin.drain()
            except (ConnectionError, BrokenPipeError):
                pass

    async def _read(self) -> None:
        out = self.proc.stdout
        reason = "recognition worker exited"
        try:
            while True:
                op, key, n = wp.HEADER.unpack(await out.readexactly(wp.HEADER.size))
                self._dispatch(op, key, json.loads(await out.readexactly(n)) if n else {})
        except asyncio.IncompleteReadError:
            pass
        except Exception as exc:  # noqa: BLE001 - any failure ends this worker
            reason = f"recognition worker protocol error: {exc}"
            log.exception("recognition worker %d", self.index)
        finally:
            self._die(reason)

    def _dispatch(self, op: int, key: int, payload: dict) -> None:
        if op == wp.READY:
            self.engine_info = payload.get("engine") or {}
            log.log(logging.INFO if self.index == 0 else logging.DEBUG,
                    "recognition worker %d ready (pid %s): %s", self.index, payload.get("pid"),
                    self.engine_info)
            self.ready.set_result(None)
        elif op == wp.FATAL:
            self.ready.set_exception(RecognitionError(payload["message"]))
        elif op == wp.SYNCED:
            lane = self.lanes.get(key >> 16)
            if lane is not None and lane.syncs:
                fut = lane.syncs.popleft()
                if not fut.done():
                    fut.set_result(None)
        elif op == wp.PARTIAL_TEXT:
            stream = self.streams.get(key)
            if stream is not None:
                stream._partial(payload["text"])
        elif op in (wp.FINAL, wp.FAILED):
            stream = self.streams.pop(key, None)
            if stream is not None:
                if op == wp.FINAL:
                    if self.stats is not None:
                        self.stats.record(bool(payload.get("cached")))
                    words = tuple(Word(t, float(lp), int(s), int(e)) for t, lp, s, e in payload["words"])
                    stream._resolve(Recognition(payload["text"], words, payload.get("state")))
                else:
                    stream._resolve(None, payload["message"])

    def _die(self, reason: str) -> None:
        if self.dead:
            return
        self.dead = True
        if not self.ready.done():
            self.ready.set_exception(RecognitionError(reason))
        if not self.ready.cancelled():
            self.ready.exception()  # mark retrieved: waiters already saw it
        for stream in list(self.streams.values()):
            stream._resolve(None, reason)
        self.streams.clear()
        for lane in self.lanes.values():
            lane._release_syncs()
        if self.on_death is not None:
            self.on_death(self)

    async def close(self, timeout: float = 1.0) -> None:
        """Ask the worker to stop (it drops queued work at once); kill it after ``timeout`` s."""
        self.on_death = None
        proc = self.proc
        if proc is not None and proc.returncode is None:
            try:
                self.send(wp.SHUTDOWN, 0)
                proc.stdin.close()
                await asyncio.wait_for(proc.wait(), timeout)
            except (asyncio.TimeoutError, ConnectionError):
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        self._die("recognizer closed")


class ProcessRecognizer(Recognizer):
    """Engines in ``workers`` child processes (default: number of CPUs).

    Raises :class:`~spear_lab.server.engines.EngineUnavailable` at construction if
    the engine's cheap check fails (missing package or model path)."""

    def __init__(self, spec: EngineSpec | None = None, workers: int | None = None) -> None:
        spec = spec or engine_spec()
        spec.resolve().check(**spec.kwargs)
        self.spec = spec
        self.n = max(1, workers or os.cpu_count() or 1)
        self._workers: list[_Worker] = []
        self._lanes = 0
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    async def start(self) -> None:
        for i in range(self.n):
            self._workers.append(await self._spawn(i))

    async def _spawn(self, index: int) -> _Worker:
        w = _Worker(self.spec, index)
        w.stats = self.cache_stats
        w.on_death = self._replace
        await w.spawn()
        return w

    def _replace(self, dead: _Worker) -> None:
        if self._closed:
            return
        if dead.ready.cancelled() or dead.ready.exception() is not None:
            log.error("recognition worker %d could not load its engine; not restarting it",
                      dead.index)
            return
        log.warning("recognition worker %d died; starting a new one", dead.index)

        async def respawn() -> None:
            await dead.close()
            if not self._closed:
                self._workers[dead.index] = await self._spawn(dead.index)
        task = asyncio.get_running_loop().create_task(respawn())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _live_worker(self, index: int) -> _Worker:
        return self._workers[index]

    async def wait_ready(self) -> None:
        await asyncio.gather(*(w.ready for w in self._workers))

    def describe(self) -> dict:
        info = next((w.engine_info for w in self._workers if w.engine_info), {})
        return {**info, "workers": self.n}

    def lane(self) -> Lane:
        if self._closed or not self._workers:
            raise RecognitionError("recognizer is not running")
        self._lanes += 1
        worker = min(self._workers, key=lambda w: (w.dead, len(w.lanes)))
        return _ProcLane(self, self._lanes, worker)

    async def aclose(self) -> None:
        self._closed = True
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(w.close() for w in self._workers))


# --------------------------------------------------------------------------- threads

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
        for stream in list(self.streams.values()):
            stream.abort()
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
