"""pcm16 <-> float conversion, channel remixing and frame arithmetic.

Float audio is a ``float32``/``float64`` array of shape ``(samples, channels)`` in
[-1, 1).  pcm16 is little-endian signed 16-bit, channels interleaved.  The scale is 32768
both ways, so pcm16 -> float -> pcm16 is exact.
"""

from __future__ import annotations

import numpy as np

#: Scale between pcm16 integers and float samples.
PCM16_SCALE = 32768.0


def frame_bytes(sample_rate_hz: int, frame_ms: int, channels: int) -> int:
    """Bytes in one pcm16 frame: ``floor(rate * frame_ms / 1000) * channels * 2``."""
    return sample_rate_hz * frame_ms // 1000 * channels * 2


def pcm16_to_float(data: bytes | bytearray | memoryview | np.ndarray, channels: int = 1,
                   dtype: type = np.float32) -> np.ndarray:
    """Interleaved pcm16 bytes (or an int16 array) as floats of shape ``(n, channels)``.

    A trailing partial sample frame is ignored.  Raises ValueError for ``channels < 1``.
    """
    if channels < 1:
        raise ValueError("channels must be >= 1")
    if isinstance(data, np.ndarray):
        ints = data.astype("<i2", copy=False).reshape(-1)
    else:
        buf = memoryview(data).cast("B")
        usable = len(buf) - len(buf) % (2 * channels)
        ints = np.frombuffer(buf[:usable], dtype="<i2")
    usable = len(ints) - len(ints) % channels
    out: np.ndarray = ints[:usable].reshape(-1, channels).astype(dtype)
    out *= dtype(1.0 / PCM16_SCALE)
    return out


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """Floats (any shape; rows are interleaved) as pcm16 bytes: scaled by 32768, rounded
    to nearest, clipped to [-32768, 32767]."""
    scaled = np.rint(np.asarray(samples, dtype=np.float64) * PCM16_SCALE)
    return np.clip(scaled, -32768, 32767).astype("<i2").tobytes()


def remix(samples: np.ndarray, channels: int) -> np.ndarray:
    """Map ``(n, c_in)`` samples to ``(n, channels)``.

    - same count: unchanged;
    - to mono: the mean of all input channels (the reference's mixdown);
    - from mono: the one channel copied into every output channel;
    - fewer outputs: output ``o`` is the mean of the inputs ``i`` with
      ``i * channels // c_in == o`` (e.g. 4 -> 2 averages pairs);
    - more outputs: output ``o`` copies input ``o * c_in // channels``.
    """
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    c_in = x.shape[1]
    if channels < 1:
        raise ValueError("channels must be >= 1")
    if c_in == channels:
        return x
    if channels == 1:
        return x.mean(axis=1, keepdims=True, dtype=np.float64).astype(x.dtype, copy=False)
    if c_in == 1:
        return np.repeat(x, channels, axis=1)
    if channels < c_in:
        groups = np.arange(c_in) * channels // c_in
        out = np.empty((x.shape[0], channels), dtype=x.dtype)
        for o in range(channels):
            out[:, o] = x[:, groups == o].mean(axis=1)
        return out
    return x[:, np.arange(channels) * c_in // channels]
