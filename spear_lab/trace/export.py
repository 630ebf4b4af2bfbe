"""A Trace's records as flat dicts, JSON Lines and CSV (functions over a Trace)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .caps import KINDS

if TYPE_CHECKING:
    from .core import Trace

__all__ = ["records", "to_jsonl", "to_csv"]


def records(trace: "Trace", kinds: Iterable[str] = KINDS) -> list[dict[str, Any]]:
    """Every record of the given kinds as flat dicts with a ``kind`` key, by time.

    Raises ValueError naming any unknown kind.
    """
    kinds = set(kinds)
    unknown = kinds - set(KINDS)
    if unknown:
        raise ValueError(f"unknown record kinds {sorted(unknown)}; kinds are {KINDS}")
    readers = {"hostcall": trace.hostcalls, "readiness": trace.readiness_changes,
               "queue": trace.queue_levels, "event": trace.events, "transcript": _transcript,
               "log": trace.logs, "vad": trace.vad}
    out: list[dict[str, Any]] = []
    for kind in KINDS:
        if kind in kinds:
            out += [{"kind": kind, **r} for r in (readers[kind](trace) if kind == "transcript"
                                                   else readers[kind]())]
    out.sort(key=lambda r: r["t"])
    return out


def _transcript(trace: "Trace") -> list[dict[str, Any]]:
    """Transcript items as records, timed at their first sighting."""
    return [{"t": i.t_first if i.t_first is not None else 0.0, **i.as_dict()}
            for i in trace.transcript()]


def to_jsonl(trace: "Trace", path: str | os.PathLike[str] | None = None,
             kinds: Iterable[str] = KINDS) -> str:
    """JSON Lines, one record per line; written to ``path`` when given; returns the text."""
    text = "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n"
                   for r in records(trace, kinds))
    if path is not None:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    return text


def to_csv(trace: "Trace", path: str | os.PathLike[str] | None = None,
           kinds: Iterable[str] = KINDS) -> str:
    """CSV with the union of all record fields as columns (lists and dicts as JSON);
    written to ``path`` when given; returns the text."""
    rows = records(trace, kinds)
    columns: dict[str, None] = {"kind": None, "t": None}
    for r in rows:
        for k in r:
            columns.setdefault(k, None)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict))
                             else v) for k, v in r.items()})
    text = buf.getvalue()
    if path is not None:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return text
