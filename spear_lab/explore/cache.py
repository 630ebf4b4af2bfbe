"""On-disk cache of replays, so re-running a notebook does not recompute what it has.

A cached entry is one :class:`~spear_lab.explore.replay.RunRecord` (the raw observations,
not the metrics: metrics are recomputed from it, so changing how they are computed never
needs a new replay, and neither does correcting a reference transcript).  Its key is the
sha256 of the recording's audio digest, the configuration's canonical JSON, the pacing,
the backend and :func:`~spear_lab.explore.replay.code_version` (the code on the replay
path and the guest's wasm).  Files live in ``cache_dir()/runs/<2 hex>/<key>.json``;
writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from .corpus import cache_dir

__all__ = ["RunCache", "run_key"]

log = logging.getLogger(__name__)


def run_key(digest: str, config_key: str, pace: str, backend: str, version: str) -> str:
    """The cache key (hex sha256) of one replay."""
    text = json.dumps([digest, config_key, pace, backend, version], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class RunCache:
    """JSON files keyed by :func:`run_key`.  ``enabled=False`` makes every lookup miss and
    every store a no-op."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, enabled: bool = True) -> None:
        self.directory = Path(directory) if directory is not None else cache_dir() / "runs"
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored object, or None (missing, disabled or unreadable)."""
        if not self.enabled:
            self.misses += 1
            return None
        path = self._path(key)
        try:
            obj = json.loads(path.read_text())
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError):
            log.warning("ignoring unreadable cache entry %s", path)
            self.misses += 1
            return None
        self.hits += 1
        return obj

    def put(self, key: str, obj: dict[str, Any]) -> None:
        """Store ``obj`` under ``key`` (atomically)."""
        if not self.enabled:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(obj, separators=(",", ":")))
        os.replace(tmp, path)

    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        n = 0
        if self.directory.is_dir():
            for p in self.directory.glob("*/*.json"):
                p.unlink(missing_ok=True)
                n += 1
        return n

    def __repr__(self) -> str:
        state = "" if self.enabled else " disabled"
        return f"<RunCache {self.directory}{state} hits={self.hits} misses={self.misses}>"
