"""The summary of a Trace: calls, errnos, latencies, drops, transcript counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..abi.constants import errno_name
from .stats import percentile

if TYPE_CHECKING:
    from .core import Trace

__all__ = ["summary"]


def summary(trace: "Trace") -> dict[str, Any]:
    """Counts and latencies of the whole run.

    ``hostcalls``: per hostcall ``calls`` and ``errors`` (errno name → count) over the
    whole run, and ``p50_us`` / ``p95_us`` / ``max_us`` durations (µs) of the calls the
    ring still holds (:func:`~.stats.percentile`); ``errno``: totals per errno name;
    ``drops``: receive-queue events and mic frames dropped (last reported counters, summed
    over fds), ``rtasr_write`` calls refused with ``-EAGAIN``, and trace records evicted
    from the rings.
    """
    tot = trace.totals()
    errnos: dict[str, dict[str, int]] = {}
    for (name, rc), n in tot.errnos.items():
        per_name = errnos.setdefault(name, {})
        per_name[errno_name(rc)] = per_name.get(errno_name(rc), 0) + n
    durs = tot.durations
    per: dict[str, Any] = {}
    totals: dict[str, int] = {}
    for name in sorted(tot.calls):
        d = np.asarray(durs.get(name) or [0.0], dtype=np.float64)  # converted once, read thrice
        per[name] = {
            "calls": tot.calls[name],
            "errors": errnos.get(name, {}),
            "p50_us": round(percentile(d, 50) * 1e6, 2),
            "p95_us": round(percentile(d, 95) * 1e6, 2),
            "max_us": round(float(d.max()) * 1e6, 2),
        }
        for k, v in errnos.get(name, {}).items():
            totals[k] = totals.get(k, 0) + v
    levels, evicted = tot.levels, tot.evicted
    return {
        "duration_s": round(trace.now(), 6),
        "hostcalls": per,
        "errno": totals,
        "drops": {
            "dropped_events": sum(int(lv.get("dropped_events", 0) or 0) for lv in levels),
            "dropped_frames": sum(int(lv.get("dropped_frames", 0) or 0) for lv in levels),
            "eagain_writes": errnos.get("rtasr_write", {}).get("-EAGAIN", 0),
            "evicted": evicted,
        },
        "dropped_records": sum(evicted.values()),
        "events": tot.events,
        "transcript": {"items": tot.items, "completed": tot.completed},
    }
