"""The pocketsphinx engine: CMU pocketsphinx 5 with the US-English model of its wheel,
streaming, with partial hypotheses.

Errors: :class:`~spear_lab.server.engine_base.EngineUnavailable` when pocketsphinx is
not installed, :class:`~spear_lab.server.engine_base.RecognitionError` when decoding an
utterance fails or a closed stream is used.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

import numpy as np

from .engine_base import (LOGPROB_FLOOR, Engine, EngineStream, EngineUnavailable, Recognition,
                          RecognitionError, Word)

__all__ = ["PocketSphinxEngine"]

log = logging.getLogger(__name__)


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
