"""The server's settings (:class:`ServerOptions`) and the recognition engine they pick."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from .config import DEFAULT_SILENCE_MS
from .engines import EngineSpec, engine_spec
from .lanes import Recognizer

__all__ = ["ServerOptions", "SESSIONS_PER_CORE", "engine_for"]

SESSIONS_PER_CORE = 32
"""Default session cap: this many per CPU core (``ServerOptions.max_sessions``)."""


@dataclass
class ServerOptions:
    """Server settings.

    ``api_key``: if set, clients must send ``Authorization: Bearer <key>`` (or the
    ``openai-insecure-api-key.<key>`` subprotocol). ``require_auth``: ``None`` means
    "only when not bound to loopback" (then ``api_key`` must be set). ``dialect``:
    the shape for clients that send no ``OpenAI-Beta`` header (``ga`` or ``beta``).
    ``strict_ga``: answer beta clients with ``beta_api_shape_disabled`` and close
    4000, as api.openai.com does. ``deterministic``: counter ids, a fixed clock, and
    every client message fully processed (recognition included) before the next.
    ``vad``: the server_vad/semantic_vad frame estimator, ``"silero"``,
    ``"statistical"`` or ``"auto"`` (Silero when onnxruntime and its model file are
    installed, else statistical with a log notice); an explicit ``"silero"`` that
    cannot load makes the server refuse to start
    (:class:`~spear_lab.server.silero.SileroUnavailable`). ``engine``: the recogniser,
    ``"auto"`` (whisper when installed, else pocketsphinx), ``"whisper"``,
    ``"pocketsphinx"`` or an :class:`EngineSpec`; ``whisper_model``: a model name or
    directory for whisper (default: the bundled, hash-verified tiny.en).

    Profiles: by default the server behaves as OpenAI's service does (partial updates
    merge, GA sessions start with ``transcription: null``, the rejections of
    docs/server.md); ``lenient=True`` keeps the older acceptance for legacy clients.
    Bounds: ``max_sessions`` open sessions (default :data:`SESSIONS_PER_CORE` per
    core; past it an ``error`` and close 1013); ``max_backlog`` commits per session
    waiting for recognition (past it ``…transcription.failed``); ``max_outbox_bytes``
    of events queued for one client (past it the client is closed with 1008).
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = field(default=None, repr=False)
    require_auth: bool | None = None
    dialect: str = "ga"
    strict_ga: bool = False
    default_silence_ms: int = DEFAULT_SILENCE_MS
    deterministic: bool = False
    engine: str | EngineSpec = "auto"
    whisper_model: str | None = None
    workers: int | None = None
    recognizer: Recognizer | None = None
    clock: Callable[[], float] | None = None
    vad: str = "auto"
    lenient: bool = False
    max_sessions: int | None = None
    max_backlog: int = 4
    max_outbox_bytes: int = 4 * 1024 * 1024



def engine_for(opts: ServerOptions) -> tuple[EngineSpec, int | None]:
    """The engine spec and worker count of ``opts``. Whisper defaults to one worker
    process whose CTranslate2 threads use every core (one model in memory, and the
    fastest single decode); its threads are cores / workers when more are asked for."""
    spec = opts.engine if isinstance(opts.engine, EngineSpec) else engine_spec(
        opts.engine, whisper_model=opts.whisper_model)
    workers = opts.workers
    if spec.factory.endswith(":WhisperEngine"):
        workers = workers or 1
        if "cpu_threads" not in spec.kwargs:
            spec = EngineSpec(spec.factory, {**spec.kwargs, "cpu_threads": max(
                1, (os.cpu_count() or 1) // workers)})
    return spec, workers
