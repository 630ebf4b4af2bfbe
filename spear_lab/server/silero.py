"""Silero VAD (v6, ONNX) as a streaming speech-probability estimator.

:class:`SileroSpeechProbability` has the interface of
:class:`~spear_lab.server.vad.SpeechProbability`: ``process(int16 16 kHz pcm)``
returns the speech probabilities of the frames it completes, whatever the chunk
sizes. A frame is one 512-sample (32 ms) window; the model also sees the 64
samples before it (its context) and carries a recurrent state (``h``, ``c``)
from frame to frame, so frame ``i`` depends on all audio up to sample
``512 (i + 1)`` and nothing after it (no lookahead).

The weights are the ``silero_vad_v6.onnx`` file shipped inside the
faster-whisper wheel (found with :mod:`importlib.resources`, never downloaded),
run by onnxruntime on the CPU with one intra-op thread. One
``InferenceSession`` is shared by every estimator of the process (its ``run``
is thread-safe); each estimator keeps its own state.

Errors: :class:`SileroUnavailable` (onnxruntime, faster-whisper or the model
file missing, or the file fails to load), with the cause in its message.
"""

from __future__ import annotations

import importlib.resources
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SileroSpeechProbability", "SileroUnavailable", "model_path", "shared_session",
           "unavailable_reason"]

log = logging.getLogger(__name__)

MODEL_PACKAGE = "faster_whisper"
MODEL_FILE = "assets/silero_vad_v6.onnx"
WINDOW = 512
"""Samples per frame (32 ms at 16 kHz)."""
CONTEXT = 64
"""Samples of the previous frame the model sees before each window."""
STATE_SHAPE = (1, 1, 128)

_lock = threading.Lock()
_session: Any = None


class SileroUnavailable(RuntimeError):
    """The Silero model cannot be used here (the message says why)."""


def model_path() -> Path:
    """Path of ``silero_vad_v6.onnx`` inside the installed faster-whisper package.

    Raises :class:`SileroUnavailable` when the package or the file is missing.
    """
    try:
        root = importlib.resources.files(MODEL_PACKAGE)
    except ModuleNotFoundError:
        raise SileroUnavailable("Silero VAD needs the faster-whisper package (it ships "
                                f"{MODEL_FILE}); install the 'whisper' extra") from None
    path = Path(str(root.joinpath(MODEL_FILE)))
    if not path.is_file():
        raise SileroUnavailable(f"Silero VAD model not found: {path}")
    return path


def shared_session() -> Any:
    """The process-wide onnxruntime session of the model (loaded on first use).

    Raises :class:`SileroUnavailable` naming the cause when it cannot load.
    """
    global _session
    with _lock:
        if _session is not None:
            return _session
        try:
            import onnxruntime as ort
        except Exception as exc:  # ImportError, or a broken native library (OSError)
            raise SileroUnavailable(f"Silero VAD needs onnxruntime: {exc}") from None
        path = model_path()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            sess = ort.InferenceSession(str(path), sess_options=opts,
                                        providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise SileroUnavailable(f"Silero VAD model {path} failed to load: {exc}") from None
        names = sorted(i.name for i in sess.get_inputs())
        if names != ["c", "h", "input"]:
            raise SileroUnavailable(f"Silero VAD model {path} has unexpected inputs {names} "
                                    "(expected input, h, c)")
        log.info("Silero VAD loaded from %s", path)
        _session = sess
        return sess


def unavailable_reason() -> str | None:
    """Why Silero cannot be used (None when it can): tries to load the shared session."""
    try:
        shared_session()
    except SileroUnavailable as exc:
        return str(exc)
    return None


class SileroSpeechProbability:
    """Streaming Silero speech probability for 16 kHz mono int16 audio.

    ``process(pcm)`` returns the probabilities (float64, in [0, 1]) of the 32 ms
    frames completed by ``pcm`` (an empty array if none). Frame ``i`` covers
    samples ``[512 i, 512 (i + 1))``. Deterministic; chunk sizes do not change
    the result. Raises :class:`SileroUnavailable` if the model cannot load.
    """

    RATE = 16000
    frame_ms = WINDOW * 1000 // RATE
    """Hop between probability frames (ms): 32."""
    lookahead_ms = 0
    """A frame's window ends where its hop ends."""
    BLOCK = 1 << 16
    """Samples run through the model per call (bounds memory for huge chunks)."""

    def __init__(self) -> None:
        self._session = shared_session()
        self._pending = np.zeros(0, np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._h = np.zeros(STATE_SHAPE, np.float32)
        self._c = np.zeros(STATE_SHAPE, np.float32)
        self.frames = 0

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Consume int16 samples; return probabilities of completed frames."""
        samples = np.asarray(pcm, dtype=np.float32) / np.float32(32768.0)
        out = [self._process(samples[i:i + self.BLOCK])
               for i in range(0, len(samples), self.BLOCK)]
        return np.concatenate(out) if out else np.zeros(0)

    def _process(self, samples: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self._pending, samples])
        n = len(buf) // WINDOW
        if n == 0:
            self._pending = buf
            return np.zeros(0)
        windows = buf[:n * WINDOW].reshape(n, WINDOW)
        self._pending = buf[n * WINDOW:]
        context = np.empty((n, CONTEXT), np.float32)
        context[0] = self._context
        context[1:] = windows[:-1, -CONTEXT:]
        batch = np.concatenate([context, windows], axis=1)
        probs, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c})
        self._context = windows[-1, -CONTEXT:].copy()
        self.frames += n
        return np.asarray(probs, dtype=np.float64).reshape(n)
