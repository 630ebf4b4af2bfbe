"""The project's one percentile function (trace summaries, replay metrics, benchmarks)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["percentile"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` (q in 0..100, linear interpolation between
    the closest ranks, as ``numpy.percentile``); NaN for no values.

    Raises ValueError for ``q`` outside 0..100 or NaN.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be within 0..100, got {q!r}")
    if not len(values):
        return math.nan
    import numpy as np  # a dependency of the package; imported on first use only

    return float(np.percentile(np.asarray(values, dtype=np.float64), q))
