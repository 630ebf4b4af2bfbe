"""Helpers for the server tests: a small realtime client and audio utilities."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from typing import Any, Callable

import numpy as np
from websockets.asyncio.client import connect

COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"
FAILED = "conversation.item.input_audio_transcription.failed"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def norm(text: str) -> str:
    return re.sub(r"[^a-z' ]", "", text.lower()).strip()


class Client:
    """A thin realtime client over websockets (events are dicts)."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.events: list[dict] = []

    @classmethod
    async def open(cls, url: str, headers: dict | None = None, **kw: Any) -> "Client":
        ws = await connect(url, additional_headers=headers or {}, proxy=None,
                           max_size=None, **kw)
        return cls(ws)

    async def close(self) -> None:
        await self.ws.close()

    async def send(self, event: dict | str | bytes) -> None:
        await self.ws.send(event if isinstance(event, (str, bytes)) else json.dumps(event))

    async def recv(self, timeout: float = 10.0) -> dict:
        ev = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.events.append(ev)
        return ev

    async def until(self, pred: Callable[[dict], bool] | str, timeout: float = 30.0) -> list[dict]:
        """Receive until an event matches ``pred`` (a type name or a predicate);
        returns all events received, the match last."""
        if isinstance(pred, str):
            kind = pred
            pred = lambda e: e["type"] == kind  # noqa: E731
        got = []
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            ev = await self.recv(max(0.01, end - loop.time()))
            got.append(ev)
            if pred(ev):
                return got

    async def no_event(self, wait: float = 0.3) -> None:
        """Assert nothing arrives within ``wait`` seconds."""
        try:
            ev = await asyncio.wait_for(self.ws.recv(), wait)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected event {ev[:300]}")

    async def stream(self, pcm: bytes, chunk_bytes: int = 4800) -> None:
        """Append audio in chunks (default 100 ms of 24 kHz pcm16), as fast as possible."""
        for i in range(0, len(pcm), chunk_bytes):
            await self.send({"type": "input_audio_buffer.append", "audio": b64(pcm[i:i + chunk_bytes])})


def ga_update(turn_detection: Any = "keep", **input_fields: Any) -> dict:
    """A GA session.update for a transcription session."""
    inp = dict(input_fields)
    if turn_detection != "keep":
        inp["turn_detection"] = turn_detection
    return {"type": "session.update", "session": {"type": "transcription", "audio": {"input": inp}}}


def silence(ms: int, rate: int = 24000) -> bytes:
    return np.zeros(rate * ms // 1000, np.int16).tobytes()


# ---------------------------------------------------------------- test engines

from spear_lab.server.engines import Engine, EngineStream, Recognition, RecognitionError  # noqa: E402


class _CountStream(EngineStream):
    def __init__(self, engine: "FailingEngine") -> None:
        self.engine = engine
        self.samples = 0

    def accept(self, pcm) -> None:
        self.samples += len(pcm)

    def partial(self) -> str:
        return "partial"

    def finish(self) -> Recognition:
        self.engine.finished += 1
        if self.engine.finished in self.engine.fail_on:
            raise RecognitionError("injected failure")
        return Recognition(f"{self.samples} samples")


class FailingEngine(Engine):
    """Reports the sample count as the transcript; fails the n-th finishes in ``fail_on``."""

    def __init__(self, fail_on: tuple[int, ...] = (1,)) -> None:
        self.fail_on, self.finished = set(fail_on), 0

    def open_stream(self, *, language=None, prompt=None, state=None) -> EngineStream:
        return _CountStream(self)


class CrashOnceEngine(Engine):
    """Kills its worker process at the first finish ever (marked by creating the file
    ``marker``); afterwards behaves like :class:`FailingEngine` without failures."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.inner = FailingEngine(fail_on=())

    def open_stream(self, *, language=None, prompt=None, state=None) -> EngineStream:
        import os
        stream = self.inner.open_stream()
        if not os.path.exists(self.marker):
            def crash():
                open(self.marker, "w").close()
                os._exit(3)
            stream.finish = crash
        return stream
