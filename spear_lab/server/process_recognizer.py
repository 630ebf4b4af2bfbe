"""Recognition in worker processes: the default :class:`~.lanes.Recognizer`.

:class:`ProcessRecognizer` runs ``N`` worker processes (``python -m
spear_lab.server.worker``, framed by :mod:`.wire`); each lane is pinned to the
least busy one. Needed for pocketsphinx, which holds the GIL while decoding
(measured: up to 0.5 s at the end of a long utterance), so threads would stall
every session. A worker that dies fails its open streams with
:class:`~spear_lab.server.engines.RecognitionError` and is replaced in the
background (unless it never loaded its engine).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import reccache
from . import wire as wp
from .childenv import worker_environ
from .engines import EngineSpec, engine_spec, Recognition, RecognitionError, Word
from .lanes import Lane, Recognizer, Stream

__all__ = ["ProcessRecognizer"]

log = logging.getLogger(__name__)


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
        self._abort_streams()
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

    def __init__(self, spec: EngineSpec, index: int,
                 stats: reccache.CacheStats | None = None) -> None:
        self.spec, self.index = spec, index
        self.proc: asyncio.subprocess.Process | None = None
        self.streams: dict[int, Stream] = {}
        self.lanes: dict[int, _ProcLane] = {}
        self.dead = False
        self.on_death: Callable[[_Worker], None] | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.engine_info: dict = {}
        self._reader: asyncio.Task | None = None
        self.stats = stats  # recognition-cache hits and misses, counted at each FINAL

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
                with contextlib.suppress(ProcessLookupError):  # it may just have exited
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
        w = _Worker(self.spec, index, self.cache_stats)
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
