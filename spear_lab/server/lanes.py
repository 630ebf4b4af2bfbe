"""The recognition interface of the server: streams on ordered lanes of a recognizer.

A :class:`Recognizer` hands out one :class:`Lane` per session. Everything done on
a lane (open a stream, feed it, ask for a partial, finish) runs strictly in order,
and the engine's adaptation state (e.g. pocketsphinx's cepstral mean) is carried
from one stream of the lane to the next, so a session's results depend only on
its own audio. Different lanes run in parallel. No method blocks the event loop.
Implementations: :mod:`.process_recognizer` (worker processes, the default) and
:mod:`.thread_recognizer` (a thread pool).

Errors: a failed stream's ``result`` future raises
:class:`~spear_lab.server.engines.RecognitionError`.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from functools import cached_property
from typing import Any, Callable

import numpy as np

from . import reccache
from . import wire as wp
from .engines import Recognition, RecognitionError

__all__ = ["Stream", "Lane", "Recognizer", "PartialCallback"]

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

    def _abort_streams(self) -> None:
        """Abort every open stream of this lane."""
        for stream in list(self.streams.values()):
            stream.abort()

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

    @cached_property
    def cache_stats(self) -> reccache.CacheStats:
        """Recognition-cache hits and misses of this recognizer (see :mod:`.reccache`)."""
        return reccache.CacheStats()

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
