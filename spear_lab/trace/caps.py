"""How much a Trace keeps: ring sizes and text cuts (:class:`TraceCaps`), the record kinds."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KINDS", "TraceCaps", "no_evictions"]

#: The record kinds, in export order.
KINDS = ("hostcall", "readiness", "queue", "event", "transcript", "log", "vad")


@dataclass
class TraceCaps:
    """Ring-buffer sizes: how many records of each kind are kept (the oldest go first).

    Every kind is bounded: a ring per record kind, event and log texts cut at
    ``event_text`` / ``log_text``, per transcript item at most ``deltas_per_item`` delta
    records and ``item_text`` characters, per-fd tables at ``fds`` entries.  With every
    ring full of worst-case records the defaults hold ~136 MB (measured by
    ``bench/bench_trace_memory.py``), whatever a guest or a backend does.  A guest streaming 20 ms frames
    makes about 200 hostcalls a second: 100k hostcalls are the last eight minutes or so.
    What is not kept is counted in :attr:`Trace.evicted` and the summary's
    ``dropped_records``.
    """

    hostcalls: int = 100_000
    readiness: int = 100_000
    queues: int = 50_000
    events: int = 20_000
    transcript_items: int = 2_000
    #: Longest event text kept in an ``event`` record (longer ones are cut, marked "…").
    event_text: int = 512
    #: Deltas kept per transcript item (later ones still grow its text up to ``item_text``).
    deltas_per_item: int = 64
    #: Longest text kept per transcript item (delta text or transcript), characters.
    item_text: int = 8192
    #: Guest log messages kept, and the longest text kept of each.
    logs: int = 10_000
    log_text: int = 1024
    #: Server VAD frames kept (speech probability per frame; 100k = 53 min of 32 ms frames).
    vad: int = 100_000
    #: fds remembered per trace for kinds, creation times and last queue levels.
    fds: int = 10_000


def no_evictions() -> dict[str, int]:
    """Zeroed eviction counters: one per record kind, plus ``delta`` (transcript deltas
    not kept) and ``fd`` (fds forgotten)."""
    return {**{k: 0 for k in KINDS}, "delta": 0, "fd": 0}
