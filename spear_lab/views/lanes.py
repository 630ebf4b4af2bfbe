"""The rows of the readiness timeline, as data: lanes of intervals and their binning.

:func:`timeline_lanes` reads a :class:`~spear_lab.trace.Trace` into :class:`Lane` rows:
one per readiness bit (IN, OUT, ERR, HUP) of each fd of each instance, the ``(start,
end)`` intervals (trace seconds) during which the bit was set, and one lane per instance
of its ``spear_epoll_wait`` calls with their return codes.  :func:`aggregate_spans` turns a
lane with too many intervals in view into at most :data:`BINS` bars whose *duty* (0..1)
says how much of the time the bit was set.  Nothing here draws; see
:mod:`spear_lab.views.timeline`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..abi.constants import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT

__all__ = ["BINS", "BITS", "MAX_EXACT_SPANS", "Lane", "aggregate_spans", "returns_in_view",
           "timeline_lanes"]

BITS = ((EPOLLIN, "IN"), (EPOLLOUT, "OUT"), (EPOLLERR, "ERR"), (EPOLLHUP, "HUP"))
#: Columns a lane is binned into when it has too many spans to draw one by one.
BINS = 200
#: Lanes with at most this many spans in view are drawn span by span.
MAX_EXACT_SPANS = 150


@dataclass
class Lane:
    """One row of the timeline: ``spans`` are ``(start, end)`` trace times."""

    instance: str
    fd: int | None
    label: str
    bit: str | None = None
    kind: str | None = None
    spans: list[tuple[float, float]] = field(default_factory=list)
    #: For wait lanes: ``(t_return, rc)`` of every call.
    returns: list[tuple[float, int]] = field(default_factory=list)
    #: What the last figure drew: ``(start, end, duty)`` bars (duty 1.0 = set throughout;
    #: less when short intervals were merged into one bar), in trace time.
    drawn: list[tuple[float, float, float]] = field(default_factory=list)


def _end_time(trace: Any) -> float:
    """The latest time any record reaches (a finished run's end)."""
    end = 0.0
    for r in trace.hostcalls():
        end = max(end, r["t"] + r["dur"])
    for getter in (trace.readiness_changes, trace.queue_levels, trace.events):
        rows = getter()
        if rows:
            end = max(end, rows[-1]["t"])
    return end


def timeline_lanes(trace: Any, instance: str | None = None, t_end: float | None = None,
                   waits: bool = True, since: float | None = None) -> list[Lane]:
    """The lanes of the timeline, in order: per instance, its wait lane, then its fds
    (ascending) and their bits (IN, OUT, ERR, HUP), only bits that were ever set.

    A bit already set at the first recorded transition is drawn from the fd's creation
    (its create hostcall) when known.  Spans still open end at ``t_end`` (default: the
    latest record).  ``since`` skips what ended before that time (live windows).
    """
    window = t_end is not None
    if t_end is None:
        t_end = _end_time(trace)
    changes = trace.readiness_changes(instance, since=since)
    if window:
        changes = [c for c in changes if c["t"] <= t_end]
    per_fd: dict[tuple[str, int], list[dict]] = {}
    for c in changes:
        per_fd.setdefault((c["instance"], c["fd"]), []).append(c)
    calls = trace.hostcalls(instance, "spear_epoll_wait", since=since) if waits else []
    if window:
        calls = [r for r in calls if r["t"] <= t_end]
    order: dict[str, None] = {}
    for r in calls:
        order.setdefault(r["instance"], None)
    for inst, _ in per_fd:
        order.setdefault(inst, None)
    lanes: list[Lane] = []
    for inst in order:
        if waits:
            mine = [r for r in calls if r["instance"] == inst]
            if mine:
                lanes.append(Lane(inst, None, f"{inst}: epoll_wait", None, "wait",
                                  [(r["t"], r["t"] + r["dur"]) for r in mine],
                                  [(r["t"] + r["dur"], r["rc"]) for r in mine]))
        for (i, fd) in sorted(k for k in per_fd if k[0] == inst):
            rows = per_fd[(i, fd)]
            kind = trace.fd_kind(i, fd)
            created = trace.fd_created(i, fd)
            first_t = rows[0]["t"]
            start0 = created if created is not None and created <= first_t else first_t
            for bit, bname in BITS:
                spans: list[tuple[float, float]] = []
                on_since = start0 if rows[0]["old"] & bit else None
                for c in rows:
                    now_on = bool(c["new"] & bit)
                    if now_on and on_since is None:
                        on_since = c["t"]
                    elif not now_on and on_since is not None:
                        spans.append((on_since, c["t"]))
                        on_since = None
                if on_since is not None:
                    spans.append((on_since, max(t_end, on_since)))
                if since is not None:
                    spans = [(max(a, since), b) for a, b in spans if b >= since]
                if spans:
                    tag = f" {kind}" if kind else ""
                    lanes.append(Lane(inst, fd, f"{inst}: fd {fd}{tag} {bname}", bname, kind, spans))
    return lanes


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Spans sorted by start with overlaps joined."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def aggregate_spans(spans: list[tuple[float, float]], lo: float, hi: float, *, bins: int = BINS,
                    max_exact: int = MAX_EXACT_SPANS) -> list[tuple[float, float, float]]:
    """The bars to draw for ``spans`` seen between ``lo`` and ``hi`` (trace seconds).

    At most ``max_exact`` spans in view: each span as it is (duty 1.0).  More: the range
    is cut into ``bins`` columns and each column gets the fraction of its time the spans
    cover (its *duty*, 0..1); neighbouring columns of about the same duty (quarters) are
    joined into one bar.  So a long run never draws more than ``bins`` bars per lane.
    """
    if hi <= lo:
        return []
    view = [(max(a, lo), min(b, hi)) for a, b in spans if b >= lo and a <= hi]
    if len(view) <= max_exact:
        return [(a, b, 1.0) for a, b in view]
    merged = _merged(view)
    starts = np.array([a for a, _ in merged])
    ends = np.array([b for _, b in merged])
    cum = np.concatenate([[0.0], np.cumsum(ends - starts)])
    edges = np.linspace(lo, hi, bins + 1)
    done = np.searchsorted(ends, edges, side="right")  # spans wholly before each edge
    covered = cum[done]
    inside = done < len(merged)
    part = np.zeros_like(edges)
    part[inside] = np.clip(edges[inside] - starts[done[inside]], 0.0, None)
    covered = covered + part
    width = (hi - lo) / bins
    duty = np.diff(covered) / width
    touched = np.zeros(bins, dtype=bool)  # columns any span reaches, however briefly
    first = np.clip(np.searchsorted(edges, starts, side="right") - 1, 0, bins - 1)
    last = np.clip(np.searchsorted(edges, ends, side="left") - 1, 0, bins - 1)
    for f, g in zip(first, last):
        touched[f:g + 1] = True
    level = np.where(touched, np.maximum(np.ceil(np.clip(duty, 0, 1) * 4) / 4, 0.25), 0.0)
    out: list[tuple[float, float, float]] = []
    k = 0
    while k < bins:
        if level[k] == 0:
            k += 1
            continue
        j = k
        while j + 1 < bins and level[j + 1] == level[k]:
            j += 1
        out.append((float(edges[k]), float(edges[j + 1]), float(np.clip(duty[k:j + 1].mean(), 0.0, 1.0))))
        k = j + 1
    return out


def returns_in_view(returns: list[tuple[float, int]], lo: float, hi: float, exact: bool,
                    bins: int) -> list[tuple[float, int]]:
    """The ``(t_return, rc)`` wait returns to mark between ``lo`` and ``hi`` (trace
    seconds): all of them when ``exact``, else one per column of ``bins`` and kind of
    return (records, timeout, error)."""
    seen: set[tuple[int, int]] = set()
    out = []
    width = (hi - lo) / bins if hi > lo else 1.0
    for t, rc in returns:
        if not lo <= t <= hi:
            continue
        if not exact:
            key = (int((t - lo) / width), (rc > 0) - (rc < 0))
            if key in seen:
                continue
            seen.add(key)
        out.append((t, rc))
    return out
