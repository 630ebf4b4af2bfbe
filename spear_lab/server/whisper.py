"""The Whisper engine: faster-whisper (CTranslate2, int8 on the CPU) for final
transcripts, pocketsphinx for partial hypotheses while speech goes on.

Two passes. A stream buffers its item's audio; :meth:`EngineStream.finish` decodes it
once with Whisper. A stream opened with ``partials=True`` (the live-delta profiles and
semantic_vad) also feeds a pocketsphinx stream, whose hypothesis answers
:meth:`EngineStream.partial`; it is dropped unfinished at the end, so the final costs
one Whisper decode only.

Decoding (measured in ``bench/bench_recognition.py``):

1. **Speech gate.** Silence or noise gives an empty transcript, never a hallucinated
   "you": the server's Silero estimator (:mod:`.silero`) must find speech in the
   item, and a decoded segment with Whisper's no-speech probability above
   ``no_speech_threshold`` and a mean log probability below ``logprob_threshold`` is
   dropped, as Whisper itself does.
2. **Short window.** Whisper is trained on 30 s windows; CTranslate2 also encodes
   shorter mel features. The item plus :data:`PAD_S` of silence, padded to at least
   :data:`MIN_WINDOW_S`, is encoded (about 2.5x less work than 30 s for a 3 s
   utterance) and decoded with beam search and a length bound.
3. **Fallback.** If the short decode did not end by itself, repeats itself
   (compression ratio above 2.4, as Whisper's own check, or the loops of
   :func:`_repeats`) or is unlikely (mean log probability below ``logprob_threshold``),
   the item is decoded again the standard way: padded to 30 s, with faster-whisper's
   temperature fallback.

Word ``logprob`` is the sum of its tokens' log probabilities from the short decode
(the segment mean per token, times the word's tokens, after a fallback). Word times
are estimates: the speech span shared out by token count.
"""

from __future__ import annotations

import logging
import os
import threading
import zlib
from typing import Any

import numpy as np

from .engine_base import (LOGPROB_FLOOR, Engine, EngineStream, EngineUnavailable, Recognition,
                          RecognitionError, Word)
from .whisper_models import WhisperModelInfo, resolve_model

__all__ = ["WhisperEngine", "PAD_S"]

log = logging.getLogger(__name__)

RATE = 16000
PAD_S = 1.0
"""Silence appended before encoding a short window (s)."""
MIN_WINDOW_S = 10.0
"""Shortest window encoded (s): shorter ones decode faster but repeat and mishear more."""
SHORT_MAX_S = 25.0
"""Items longer than this are decoded the standard way (30 s windows, seeking)."""
TOKENS_PER_S = 6
"""Length bound of a short decode: tokens per second of audio, plus 10."""
MIN_SPEECH_MS = 120


def _compression_ratio(text: str) -> float:
    raw = text.encode()
    return len(raw) / max(1, len(zlib.compress(raw)))


def _repeats(text: str) -> bool:
    """A decode that starts over or loops: its first three or more words come again
    later, or a run of 1-6 words repeats three times in a row (four for one word)."""
    w = [s for s in ("".join(c for c in x.lower() if c.isalnum()) for x in text.split()) if s]
    k = 3
    if len(w) >= 2 * k and any(w[j:j + k] == w[:k] for j in range(k, len(w) - k + 1)):
        return True
    for n in range(1, 7):
        times = 4 if n == 1 else 3
        for i in range(0, len(w) - n * times + 1):
            if all(w[i + r * n:i + (r + 1) * n] == w[i:i + n] for r in range(1, times)):
                return True
    return False


def _log_softmax_pick(logits: Any, token: int) -> float:
    x = np.asarray(logits, dtype=np.float32).ravel()
    m = float(x.max())
    return float(x[token] - m - np.log(np.exp(x - m).sum()))


class _WhisperStream(EngineStream):
    def __init__(self, engine: WhisperEngine, language: str | None, prompt: str | None,
                 partial_stream: EngineStream | None) -> None:
        self._engine, self._language, self._prompt = engine, language, prompt
        self._chunks: list[np.ndarray] = []
        self._partial = partial_stream
        self._open = True

    def accept(self, pcm: np.ndarray) -> None:
        if not self._open:
            raise RecognitionError("stream is closed")
        x = np.asarray(pcm, np.int16)
        self._chunks.append(x)
        if self._partial is not None:
            self._partial.accept(x)

    def partial(self) -> str:
        return self._partial.partial() if self._partial is not None else ""

    def finish(self) -> Recognition:
        if not self._open:
            raise RecognitionError("stream is closed")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        self.close()
        return self._engine.recognize(audio, self._language, self._prompt)

    def close(self) -> None:
        self._open = False
        self._chunks = []
        if self._partial is not None:
            p, self._partial = self._partial, None
            p.close()


class WhisperEngine(Engine):
    """Whisper through faster-whisper; ``model``: see
    :func:`~spear_lab.server.whisper_models.resolve_model` (default: the bundled,
    hash-verified tiny.en).

    ``cpu_threads``: CTranslate2 threads (default: up to 2). ``partials``: allow
    pocketsphinx partial hypotheses for streams that ask. Raises
    :class:`EngineUnavailable` (or its subclass ``ModelIntegrityError``) when the
    package or model is missing or a pinned hash differs."""

    def __init__(self, model: str | None = None, *, compute_type: str = "int8",
                 device: str = "cpu", cpu_threads: int = 0, beam_size: int = 5,
                 partials: bool = True, no_speech_threshold: float = 0.6,
                 logprob_threshold: float = -1.0, speech_gate: float = 0.35) -> None:
        self.info: WhisperModelInfo = resolve_model(model)
        self.check()
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        threads = cpu_threads or min(2, os.cpu_count() or 1)
        try:
            self._model = WhisperModel(str(self.info.path), device=device,
                                       compute_type=compute_type, cpu_threads=threads,
                                       local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - ctranslate2 raises RuntimeError/ValueError
            raise EngineUnavailable(f"whisper model at {self.info.path} failed to load: "
                                    f"{exc}") from None
        self._tokenizer_cls = Tokenizer
        self._multilingual = bool(self._model.model.is_multilingual)
        self._beam = beam_size
        self._no_speech, self._min_logprob = no_speech_threshold, logprob_threshold
        self._gate = speech_gate
        self._allow_partials = partials
        self._sphinx: Engine | None = None
        self._lock = threading.Lock()
        self.fallbacks = 0
        self.decodes = 0
        log.info("whisper engine: %s (%s, %s %s, %d threads)", self.info.name, self.info.source,
                 device, compute_type, threads)

    @classmethod
    def check(cls, **_: Any) -> None:
        import importlib.util
        for mod, pkg in (("faster_whisper", "faster-whisper"), ("ctranslate2", "ctranslate2")):
            if importlib.util.find_spec(mod) is None:
                raise EngineUnavailable(f"the whisper engine needs {pkg}: "
                                        "pip install 'spear_lab[whisper]'")

    def describe(self) -> dict:
        return {"engine": "whisper", **self.info.describe(),
                "partials": "pocketsphinx" if self._allow_partials else None}

    def open_stream(self, *, language: str | None = None, prompt: str | None = None,
                    state: Any = None, partials: bool = False) -> EngineStream:
        partial_stream = None
        if partials and self._allow_partials:
            partial_stream = self._partial_engine().open_stream(language="en")
        return _WhisperStream(self, language, prompt, partial_stream)

    def _partial_engine(self) -> Engine:
        with self._lock:
            if self._sphinx is None:
                from .sphinx import PocketSphinxEngine
                self._sphinx = PocketSphinxEngine(max_idle=2, prewarm=1, fwdflat=False)
            return self._sphinx

    # ------------------------------------------------------------------ decoding
    def _tokenizer(self, language: str | None) -> Any:
        lang = (language or "en").split("-")[0].lower() if self._multilingual else "en"
        if not self._multilingual and language and not language.lower().startswith("en"):
            log.warning("model %s is English-only; language %r ignored", self.info.name, language)
        return self._tokenizer_cls(self._model.hf_tokenizer, self._multilingual,
                                   task="transcribe", language=lang)

    def speech_span(self, pcm: np.ndarray) -> tuple[int, int] | None:
        """Sample range from the first to the last 32 ms frame that the server's Silero
        estimator scores at or above the gate, or None when fewer than
        :data:`MIN_SPEECH_MS` of frames are speech."""
        from .silero import WINDOW, SileroSpeechProbability
        probs = SileroSpeechProbability().process(pcm)
        speech = np.flatnonzero(probs >= self._gate)
        if len(speech) * WINDOW * 1000 < MIN_SPEECH_MS * RATE:
            return None
        return int(speech[0]) * WINDOW, min(len(pcm), (int(speech[-1]) + 1) * WINDOW)

    def recognize(self, pcm: np.ndarray, language: str | None = None,
                  prompt: str | None = None) -> Recognition:
        """Transcribe one item of 16 kHz int16 audio; raises RecognitionError."""
        pcm = np.asarray(pcm, np.int16)
        audio = pcm.astype(np.float32) / 32768.0
        try:
            span = self.speech_span(pcm)
            if span is None:
                return Recognition("")
            self.decodes += 1
            tok = self._tokenizer(language)
            if len(audio) / RATE <= SHORT_MAX_S:
                rec = self._short(audio, tok, prompt, span)
                if rec is not None:
                    return rec
                self.fallbacks += 1
            return self._standard(audio, language, prompt, span)
        except RecognitionError:
            raise
        except Exception as exc:  # noqa: BLE001 - ctranslate2 raises assorted types
            raise RecognitionError(f"whisper failed: {type(exc).__name__}: {exc}") from exc

    def _prompt_tokens(self, tok: Any, prompt: str | None) -> list[int]:
        head: list[int] = []
        if prompt:
            head = [tok.sot_prev] + tok.encode(" " + prompt.strip())[-223:]
        return head + list(tok.sot_sequence) + [tok.no_timestamps]

    def _short(self, audio: np.ndarray, tok: Any, prompt: str | None,
               span: tuple[int, int]) -> Recognition | None:
        import ctranslate2
        total = max(len(audio) + int(PAD_S * RATE), int(MIN_WINDOW_S * RATE))
        padded = np.concatenate([audio, np.zeros(total - len(audio), np.float32)])
        feats = self._model.feature_extractor(padded, padding=0)
        x = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats[None], np.float32))
        enc = self._model.model.encode(x, to_cpu=False)
        max_len = int(len(audio) / RATE * TOKENS_PER_S) + 10
        greedy = self._beam <= 1  # per-token log probabilities come with greedy search only
        res = self._model.model.generate(
            enc, [self._prompt_tokens(tok, prompt)], beam_size=self._beam, max_length=max_len,
            return_no_speech_prob=True, return_logits_vocab=greedy, return_scores=not greedy,
            suppress_blank=True, suppress_tokens=[-1])[0]
        ids = [t for t in res.sequences_ids[0] if t < tok.eot]
        if len(ids) >= max_len - 1:
            return None  # did not end by itself
        if greedy:
            logps = [_log_softmax_pick(step, t) for step, t in zip(res.logits[0], ids)]
        else:  # the length-normalised sequence score: a mean per token
            logps = [float(res.scores[0])] * len(ids)
        text = tok.decode(ids).strip()
        mean = float(np.mean(logps)) if logps else 0.0
        if res.no_speech_prob > self._no_speech and mean < self._min_logprob:
            return Recognition("")
        if not text:
            return Recognition("")
        if _compression_ratio(text) > 2.4 or mean < self._min_logprob or _repeats(text):
            return None
        return Recognition(text, self._words(tok, ids, logps, span))

    def _standard(self, audio: np.ndarray, language: str | None, prompt: str | None,
                  span: tuple[int, int]) -> Recognition:
        segments, _info = self._model.transcribe(
            audio, language=(language or "en") if self._multilingual else "en",
            initial_prompt=prompt or None, beam_size=max(self._beam, 1), vad_filter=False,
            condition_on_previous_text=False, without_timestamps=True,
            no_speech_threshold=self._no_speech, log_prob_threshold=self._min_logprob)
        tok = self._tokenizer(language)
        texts: list[str] = []
        ids: list[int] = []
        logps: list[float] = []
        for seg in segments:
            if seg.no_speech_prob > self._no_speech and seg.avg_logprob < self._min_logprob:
                continue
            texts.append(seg.text.strip())
            seg_ids = [t for t in seg.tokens if t < tok.eot]
            ids += seg_ids
            logps += [seg.avg_logprob] * len(seg_ids)
        text = " ".join(t for t in texts if t)
        return Recognition(text, self._words(tok, ids, logps, span) if text else ())

    def _words(self, tok: Any, ids: list[int], logps: list[float],
               span: tuple[int, int]) -> tuple[Word, ...]:
        groups: list[tuple[list[int], float]] = []
        for t, lp in zip(ids, logps):
            piece = tok.decode([t])
            if not groups or piece.startswith(" "):
                groups.append(([t], lp))
            else:
                groups[-1][0].append(t)
                groups[-1] = (groups[-1][0], groups[-1][1] + lp)
        total = sum(len(g) for g, _ in groups) or 1
        start_ms, end_ms = span[0] * 1000 // RATE, span[1] * 1000 // RATE
        out, done = [], 0
        for g, lp in groups:
            text = tok.decode(g).strip()
            a = start_ms + (end_ms - start_ms) * done // total
            done += len(g)
            b = start_ms + (end_ms - start_ms) * done // total
            if text:
                out.append(Word(text, max(LOGPROB_FLOOR, min(0.0, lp)), a, b))
        return tuple(out)

    def close(self) -> None:
        if self._sphinx is not None:
            self._sphinx.close()
