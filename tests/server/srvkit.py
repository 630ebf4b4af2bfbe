"""Helpers for the server tests: a small realtime client and audio utilities."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from typing import Any, Callable

import numpy as np
import pydantic
from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.realtime import RealtimeServerEvent as GAServerEvent
from websockets.asyncio.client import connect

COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"
FAILED = "conversation.item.input_audio_transcription.failed"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def norm(text: str) -> str:
    return re.sub(r"[^a-z' ]", "", text.lower()).strip()


_ADAPTERS = {"ga": pydantic.TypeAdapter(GAServerEvent), "beta": pydantic.TypeAdapter(BetaServerEvent)}
EXTENSION_PREFIX = "spear."
"""spear_lab's own server events (outside OpenAI's namespace) are not validated."""


DOCUMENTED_EXTRAS = {
    "ga": {".session.id", ".session.object", ".session.expires_at"},
    "beta": {".session.id", ".session.object", ".session.expires_at", ".session.include", ".session.input_audio_noise_reduction", ".session.client_secret",
             ".session.turn_detection.idle_timeout_ms"}}
"""Session fields OpenAI documents (openapi.yaml ``RealtimeTranscriptionSessionCreateResponseGA``,
the beta ``RealtimeTranscriptionSessionCreateRequest``/``RealtimeTurnDetection``) that the
SDK's models lack; any other field the SDK does not define fails validation."""


def _extras(model: Any, where: str = "") -> list[str]:
    """Fields of a validated SDK model (recursively) that the SDK does not define."""
    out: list[str] = []
    if isinstance(model, pydantic.BaseModel):
        out += [f"{where}.{k}" for k in (model.model_extra or {})]
        for name in type(model).model_fields:
            out += _extras(getattr(model, name), f"{where}.{name}")
    elif isinstance(model, (list, tuple)):
        for i, m in enumerate(model):
            out += _extras(m, f"{where}[{i}]")
    elif isinstance(model, dict):
        for k, m in model.items():
            out += _extras(m, f"{where}.{k}")
    return out


def validate_event(event: dict, dialect: str) -> None:
    """Assert that a server event is one of the official SDK's server events of
    ``dialect`` (strict types, no field the SDK does not define)."""
    if str(event.get("type", "")).startswith(EXTENSION_PREFIX):
        return
    if dialect == "beta" and event.get("type") == "transcription_session.created":
        # the SDK's beta union lacks .created; its body is that of .updated (openapi.yaml
        # RealtimeBetaServerEventTranscriptionSessionCreated)
        event = {**event, "type": "transcription_session.updated"}
    if dialect == "beta" and event.get("type") == "transcription_session.updated" \
            and event.get("session", {}).get("client_secret", 0) is None:
        # observed over the WebSocket: client_secret null (observed); the SDK's
        # model is the REST response's, where a secret is required
        event = {**event, "session": {**event["session"],
                                      "client_secret": {"value": "", "expires_at": 0}}}
    model = _ADAPTERS[dialect].validate_python(event, strict=True)
    extra = [x for x in _extras(model) if x not in DOCUMENTED_EXTRAS[dialect]]
    assert not extra, f"fields unknown to the SDK's {dialect} models: {extra} in {event}"


class Client:
    """A thin realtime client over websockets (events are dicts). Every event it
    receives is validated against the ``openai`` SDK's models of its dialect (beta
    when it sends the ``OpenAI-Beta`` header or ``dialect="beta"`` is given)."""

    def __init__(self, ws, dialect: str = "ga") -> None:
        self.ws = ws
        self.dialect = dialect
        self.events: list[dict] = []

    @classmethod
    async def open(cls, url: str, headers: dict | None = None, dialect: str | None = None,
                   **kw: Any) -> "Client":
        ws = await connect(url, additional_headers=headers or {}, proxy=None,
                           max_size=None, **kw)
        if dialect is None:
            dialect = "beta" if "realtime=v1" in str((headers or {}).get("OpenAI-Beta", "")) else "ga"
        return cls(ws, dialect)

    async def close(self) -> None:
        await self.ws.close()

    async def send(self, event: dict | str | bytes) -> None:
        await self.ws.send(event if isinstance(event, (str, bytes)) else json.dumps(event))

    async def recv(self, timeout: float = 10.0) -> dict:
        ev = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        validate_event(ev, self.dialect)
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
    """A GA session.update for a transcription session; it turns transcription on
    (gpt-4o-transcribe) unless ``transcription`` is given, as a client's first update
    must (OpenAI's GA sessions start with ``transcription: null``)."""
    inp = {"transcription": {"model": "gpt-4o-transcribe"}, **input_fields}
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

    def open_stream(self, *, language=None, prompt=None, state=None,
                    partials=False) -> EngineStream:
        return _CountStream(self)


class CrashOnceEngine(Engine):
    """Kills its worker process at the first finish ever (marked by creating the file
    ``marker``); afterwards behaves like :class:`FailingEngine` without failures."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.inner = FailingEngine(fail_on=())

    def open_stream(self, *, language=None, prompt=None, state=None,
                    partials=False) -> EngineStream:
        import os
        stream = self.inner.open_stream()
        if not os.path.exists(self.marker):
            def crash():
                open(self.marker, "w").close()
                os._exit(3)
            stream.finish = crash
        return stream


class EnvEngine(Engine):
    """Transcribes to the sorted names of its process's environment variables."""

    def open_stream(self, *, language=None, prompt=None, state=None, partials=False) -> EngineStream:
        import os
        stream = _CountStream(FailingEngine(fail_on=()))
        stream.finish = lambda: Recognition(" ".join(sorted(os.environ)))
        return stream


class SlowEngine(Engine):
    """Like :class:`FailingEngine` without failures, but each finish takes ``seconds``."""

    def __init__(self, seconds: float = 1.0) -> None:
        self.seconds = seconds
        self.inner = FailingEngine(fail_on=())

    def open_stream(self, *, language=None, prompt=None, state=None, partials=False) -> EngineStream:
        import time
        stream = self.inner.open_stream()
        finish = stream.finish
        stream.finish = lambda: (time.sleep(self.seconds), finish())[1]
        return stream
