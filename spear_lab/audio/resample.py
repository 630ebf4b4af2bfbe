"""Sample-rate conversion in numpy: streaming, any rates, any channel count.

:class:`Resampler` evaluates ``y(t_j) = sum_n x[n] h(t_j - n)`` at ``t_j = j * from/to``
(in input samples) with a kernel ``h`` tabulated per fractional phase:

- ``"sinc"`` (default): a Kaiser-windowed sinc low-pass with its cutoff at
  ``cutoff * min(1, to/from)`` of the input Nyquist, ``zero_crossings`` lobes each side
  (stretched when downsampling, so it also removes what would alias);
- ``"linear"``: the triangle kernel, i.e. linear interpolation (no anti-aliasing).

Each phase's taps are normalised to sum to 1 (unit gain at DC).  The output is aligned
with the input (no delay): ``process`` holds back the last few outputs until the input
they need has arrived and ``flush`` releases them (zero padding past the end), so a
whole input of ``n`` samples gives ``ceil(n * to / from)`` outputs however it was
chunked.  Rates with ``to / gcd`` above ``max_phases`` use the nearest of ``max_phases``
tabulated phases (timing error below ``1 / (2 * max_phases)`` input sample).

Measured by ``bench/bench_resample.py``; "sinc" is the default because it keeps
out-of-band tones out (linear lets them alias back) for a few times linear's cost.
"""

from __future__ import annotations

import math

import numpy as np

from .pcm import float_to_pcm16, pcm16_to_float

METHODS = ("sinc", "linear")
#: Outputs computed per vectorised block (bounds temporary memory).
_BLOCK = 4096


def _kernel_table(method: str, phases: int, ratio: float, zero_crossings: int,
                  cutoff: float, beta: float) -> tuple[np.ndarray, int]:
    """Tap table ``(phases, 2 * radius)`` and ``radius`` (input samples each side)."""
    frac = np.arange(phases, dtype=np.float64)[:, None] / phases
    if method == "linear":
        radius = 1
        k = np.arange(-radius + 1, radius + 1, dtype=np.float64)[None, :]
        table = np.maximum(0.0, 1.0 - np.abs(frac - k))
    else:
        c = cutoff * min(1.0, ratio)  # cutoff as a fraction of the input Nyquist
        radius = int(math.ceil(zero_crossings / c))
        k = np.arange(-radius + 1, radius + 1, dtype=np.float64)[None, :]
        u = frac - k
        window = np.i0(beta * np.sqrt(np.clip(1.0 - (u / radius) ** 2, 0.0, 1.0))) / np.i0(beta)
        table = c * np.sinc(c * u) * window
    table /= table.sum(axis=1, keepdims=True)
    return table, radius


class Resampler:
    """Streaming resampler from ``from_rate`` to ``to_rate`` Hz for ``channels`` channels.

    ``process(x)`` takes ``(n, channels)`` (or 1-D for mono) float samples and returns the
    outputs now complete, shape ``(m, channels)`` float64; ``flush()`` returns the rest.
    Raises ValueError for non-positive rates, ``channels < 1`` or an unknown method.
    """

    def __init__(self, from_rate: int, to_rate: int, channels: int = 1, method: str = "sinc",
                 *, zero_crossings: int = 16, cutoff: float = 0.92, beta: float = 8.6,
                 max_phases: int = 1024) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError("sample rates must be positive")
        if channels < 1:
            raise ValueError("channels must be >= 1")
        if method not in METHODS:
            raise ValueError(f"unknown resampling method {method!r} (one of {METHODS})")
        self.from_rate, self.to_rate, self.channels, self.method = from_rate, to_rate, channels, method
        g = math.gcd(from_rate, to_rate)
        self.up, self.down = to_rate // g, from_rate // g
        self.identity = self.up == self.down
        self.phases = min(self.up, max_phases)
        self._table, self.radius = _kernel_table(method, self.phases, to_rate / from_rate,
                                                 zero_crossings, cutoff, beta)
        self.taps = self._table.shape[1]
        # Input kept from global index self._start on; starts with virtual zeros before 0.
        self._start = -self.radius
        self._buf = np.zeros((self.radius, channels), dtype=np.float64)
        self._n_in = 0
        self._j = 0  # next output index
        self._flushed = False

    @property
    def samples_in(self) -> int:
        """Input samples (per channel) received so far."""
        return self._n_in

    @property
    def samples_out(self) -> int:
        """Output samples (per channel) returned so far."""
        return self._j

    def _position(self, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Base input index and phase row of outputs ``j``."""
        num = j * self.down
        base, rem = num // self.up, num % self.up
        if self.phases == self.up:
            return base, rem
        phase = (rem * self.phases * 2 + self.up) // (2 * self.up)
        wrap = phase == self.phases
        return base + wrap, np.where(wrap, 0, phase)

    def _compute(self, j_end: int) -> np.ndarray:
        out = np.empty((max(j_end - self._j, 0), self.channels), dtype=np.float64)
        offsets = np.arange(-self.radius + 1, self.radius + 1)
        for lo in range(0, len(out), _BLOCK):
            j = np.arange(self._j + lo, min(self._j + lo + _BLOCK, j_end), dtype=np.int64)
            base, phase = self._position(j)
            idx = (base - self._start)[:, None] + offsets[None, :]
            weights = self._table[phase]
            for c in range(self.channels):  # 2-D einsum per channel: ~2x faster than 3-D
                out[lo:lo + len(j), c] = np.einsum("nk,nk->n", weights, self._buf[:, c][idx])
        self._j = max(self._j, j_end)
        return out

    def _trim(self) -> None:
        base, _ = self._position(np.array([self._j], dtype=np.int64))
        keep_from = int(base[0]) - self.radius + 1
        if keep_from > self._start:
            self._buf = self._buf[keep_from - self._start:]
            self._start = keep_from

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Feed input samples; returns the outputs they complete."""
        if self._flushed:
            raise RuntimeError("Resampler.process after flush")
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {x.shape[1]}")
        if self.identity:
            self._n_in += len(x)
            self._j += len(x)
            return x.copy()
        self._buf = np.concatenate([self._buf, x]) if len(x) else self._buf
        self._n_in += len(x)
        # Output j needs inputs up to base_j + radius (+1 for phase rounding).
        last_base = self._n_in - 2 - self.radius
        if last_base < 0:
            return np.zeros((0, self.channels))
        j_end = -(-(last_base + 1) * self.up // self.down)
        out = self._compute(j_end)
        self._trim()
        return out

    def flush(self) -> np.ndarray:
        """The remaining outputs (input padded with zeros): the total becomes
        ``ceil(samples_in * to / from)``.  The resampler cannot be fed afterwards."""
        if self._flushed:
            return np.zeros((0, self.channels))
        self._flushed = True
        if self.identity:
            return np.zeros((0, self.channels))
        total = -(-self._n_in * self.up // self.down)
        self._buf = np.concatenate([self._buf, np.zeros((self.taps + 2, self.channels))])
        return self._compute(total)


def resample(samples: np.ndarray, from_rate: int, to_rate: int, method: str = "sinc") -> np.ndarray:
    """Resample a whole signal (1-D mono or ``(n, channels)``); same number of dimensions
    back, ``ceil(n * to / from)`` samples, float64."""
    x = np.asarray(samples, dtype=np.float64)
    mono = x.ndim == 1
    x2 = x[:, None] if mono else x
    r = Resampler(from_rate, to_rate, x2.shape[1], method)
    y = np.concatenate([r.process(x2), r.flush()])
    return y[:, 0] if mono else y


def resample_pcm16(data: bytes, from_rate: int, to_rate: int, channels: int = 1,
                   method: str = "sinc") -> bytes:
    """Resample interleaved pcm16 bytes; returns pcm16 bytes at ``to_rate``."""
    if from_rate == to_rate:
        return bytes(data[: len(data) - len(data) % (2 * channels)])
    x = pcm16_to_float(data, channels, dtype=np.float64)
    return float_to_pcm16(resample(x, from_rate, to_rate, method))
