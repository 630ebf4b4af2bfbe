"""Frame-level speech probability for server VAD.

:class:`SpeechProbability` turns 16 kHz int16 audio into one probability of speech
per 10 ms frame, in [0, 1], so that server_vad's ``threshold`` means what
OpenAI's does: "speech probability above which a frame counts as speech".

The model (chosen by measurement, see ``bench/bench_vad.py`` and docs/server.md):

1. **Noise tracking** per frequency bin with speech-presence-probability weighted
   recursive averaging (Gerkmann & Hendriks 2012, fixed a-priori SNR of 15 dB), so
   a stationary or slowly changing noise floor is learnt while speech goes on.
2. **Statistical-model likelihood ratio** (Sohn, Kim & Sung 1999): per bin a
   Gaussian speech-vs-noise log likelihood ratio with a decision-directed
   a-priori SNR, averaged over 100–6000 Hz.
3. **Two-state HMM forward filter** over frames, giving the posterior probability
   that the current frame is speech given all audio so far.

Everything is computed from sample positions, never from wall clock.

:func:`new_estimator` makes the estimator a server uses: this one
(``"statistical"``) or Silero (``"silero"``, :mod:`.silero`); :func:`resolve_vad`
turns the server option (``"auto"`` included) into one of them. Every estimator
has ``process(pcm)`` and its frame geometry, ``frame_ms`` and ``lookahead_ms``.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["SpeechProbability", "FRAME_MS", "LOOKAHEAD_MS", "VAD_CHOICES", "resolve_vad",
           "new_estimator"]

log = logging.getLogger(__name__)

FRAME_MS = 10
"""Hop between probability frames (ms)."""
LOOKAHEAD_MS = 15
"""A frame's window reaches this far past its hop (25 ms window, 10 ms hop)."""

VAD_CHOICES = ("auto", "silero", "statistical")
"""Values of the server's ``vad`` option."""


def resolve_vad(choice: str) -> str:
    """``"silero"`` or ``"statistical"`` for the server option ``choice``.

    ``"auto"`` is Silero when onnxruntime and the model file are there, else the
    statistical model (with one log notice). ``"silero"`` that cannot load raises
    :class:`~spear_lab.server.silero.SileroUnavailable` naming the cause;
    an unknown ``choice`` raises ValueError.
    """
    if choice not in VAD_CHOICES:
        raise ValueError(f"vad must be one of {', '.join(VAD_CHOICES)}, not {choice!r}")
    if choice == "statistical":
        return choice
    from . import silero

    if choice == "silero":
        silero.shared_session()
        return choice
    reason = silero.unavailable_reason()
    if reason is None:
        return "silero"
    log.warning("server VAD: Silero unavailable (%s); using the statistical VAD", reason)
    return "statistical"


def new_estimator(kind: str = "statistical"):
    """A fresh estimator of ``kind`` (``"statistical"`` or ``"silero"``)."""
    if kind == "statistical":
        return SpeechProbability()
    if kind == "silero":
        from .silero import SileroSpeechProbability

        return SileroSpeechProbability()
    raise ValueError(f"unknown VAD estimator {kind!r} (expected 'statistical' or 'silero')")


class SpeechProbability:
    """Streaming speech-probability estimator for 16 kHz mono int16 audio.

    ``process(pcm)`` returns the probabilities of the 10 ms frames completed by
    ``pcm`` (an empty array if none). Chunk sizes do not change the result.
    Frame ``i`` covers samples ``[i*160, i*160+400)``.
    """

    frame_ms = FRAME_MS
    lookahead_ms = LOOKAHEAD_MS
    RATE = 16000
    HOP = 160
    WIN = 400
    NFFT = 512
    INIT_FRAMES = 10
    """Frames (100 ms) averaged into the first noise estimate."""

    def __init__(self, *, scale: float = 3.0, bias: float = 0.5,
                 p_enter: float = 0.05, p_leave: float = 0.05,
                 band_hz: tuple[float, float] = (100.0, 6000.0)) -> None:
        """``scale``/``bias`` map the mean log likelihood ratio L of a frame to the
        HMM observation ratio ``exp(scale*(L-bias))``; ``p_enter``/``p_leave`` are the
        per-frame silence→speech and speech→silence transition probabilities."""
        self._scale, self._bias = scale, bias
        self._a01, self._a10 = p_enter, p_leave
        self._window = np.hanning(self.WIN)
        freqs = np.fft.rfftfreq(self.NFFT, 1 / self.RATE)
        self._band = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
        self._pending = np.zeros(0, dtype=np.float64)
        self._noise: np.ndarray | None = None
        self._prev_a2: np.ndarray | None = None
        self._p_bar: np.ndarray | None = None
        self._odds = 0.1  # P(speech)/P(silence) after the last frame
        self.frames = 0

    BLOCK = 1 << 16
    """Samples handled per step (bounds temporary memory for huge chunks)."""

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Consume int16 samples; return probabilities (float64) of completed frames."""
        if len(pcm) > self.BLOCK:
            return np.concatenate([self._process(pcm[i:i + self.BLOCK])
                                   for i in range(0, len(pcm), self.BLOCK)])
        return self._process(pcm)

    def _process(self, pcm: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self._pending, np.asarray(pcm, dtype=np.float64)])
        n = 0 if len(buf) < self.WIN else 1 + (len(buf) - self.WIN) // self.HOP
        if n == 0:
            self._pending = buf
            return np.zeros(0)
        idx = np.arange(self.WIN)[None, :] + self.HOP * np.arange(n)[:, None]
        spec = np.fft.rfft(buf[idx] * self._window, self.NFFT)
        power = (spec.real ** 2 + spec.imag ** 2) / 32768.0 ** 2 + 1e-12
        self._pending = buf[n * self.HOP:]
        out = np.empty(n)
        for i in range(n):
            out[i] = self._frame(power[i])
        self.frames += n
        return out

    def _frame(self, p: np.ndarray) -> float:
        if self._noise is None:
            self._noise = p.copy()
            self._prev_a2 = np.zeros_like(p)
            self._p_bar = np.zeros_like(p)
            self._seen = 0
        self._seen += 1
        if self._seen <= self.INIT_FRAMES:  # learn the floor: running mean
            self._noise += (p - self._noise) / self._seen
        noise = self._noise
        gamma = p / noise
        # -- noise tracking (SPP-weighted recursive average)
        xi_h1 = 31.62  # 15 dB
        post = 1.0 / (1.0 + (1.0 + xi_h1) * np.exp(-np.minimum(gamma * xi_h1 / (1 + xi_h1), 50)))
        self._p_bar = 0.9 * self._p_bar + 0.1 * post
        post = np.where(self._p_bar > 0.99, np.minimum(post, 0.99), post)
        noise = 0.8 * noise + 0.2 * ((1 - post) * p + post * noise)
        self._noise = noise
        # -- Sohn likelihood ratio with decision-directed a-priori SNR
        xi = 0.98 * self._prev_a2 / noise + 0.02 * np.maximum(gamma - 1, 0)
        xi = np.maximum(xi, 0.003)  # -25 dB floor
        llr = gamma * xi / (1 + xi) - np.log1p(xi)
        gain = xi / (1 + xi)
        self._prev_a2 = gain * gain * p
        mean_llr = float(np.mean(llr[self._band]))
        # -- HMM forward filter on the odds ratio
        obs = np.exp(min(self._scale * (mean_llr - self._bias), 50.0))
        o = self._odds
        prior = (self._a01 + (1 - self._a10) * o) / ((1 - self._a01) + self._a10 * o)
        self._odds = min(prior * obs, 1e12)
        return self._odds / (1 + self._odds)
