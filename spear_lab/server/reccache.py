"""Recognition once per distinct audio: a content-addressed cache around an engine.

:func:`wrap` turns an :class:`~.engines.Engine` into a :class:`CachingEngine`. Its
streams forward audio to the real engine as it arrives (so partial hypotheses and the
engine's incremental work are unchanged) and also hash it; at ``finish`` they look up

    sha256(engine id, language, prompt, input adaptation state, the 16 kHz pcm16 bytes)

and return the stored :class:`~.engines.Recognition` (closing the real stream unfinished)
or let the engine finish and store its result. The engine id is the engine's factory,
its keyword arguments (model path, model name, …) and a hash of the engine class's source
file, so a changed engine never answers from old entries. The input state (e.g.
pocketsphinx's cepstral mean, carried from stream to stream on a lane) is part of the
key, and the cached result carries the output state: a lane's chain of states is the
same with and without the cache, so results are identical.

Where entries live: an in-process LRU bounded by ``max_bytes`` (of stored JSON) and,
when configured, a directory shared by processes (``<dir>/<2 hex>/<key>.json``, atomic
writes). Settings come from the environment of the process that builds the engine
(the recognition workers inherit the server's):

- ``SPEAR_LAB_RECOGNITION_CACHE``: unset or ``off`` (no caching: a live server, or a
  benchmark replaying one utterance many times, recognises everything), ``memory`` (LRU
  only), or a directory path (LRU + shared directory).  The explorer's sweeps set it for
  the servers they start (``sweep(recognition_cache=...)``);
- ``SPEAR_LAB_RECOGNITION_CACHE_MB``: LRU cap in MiB (default 32).

Only successful recognitions are stored; failures are never cached. :class:`CacheStats`
counts hits and misses (a recognizer sums its workers' counts; see
:attr:`~.lanes.Recognizer.cache_stats`).
"""

from __future__ import annotations

import collections
import hashlib
import inspect
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .engines import Engine, EngineSpec, EngineStream, Recognition, Word

__all__ = ["ENV", "ENV_MB", "CacheStats", "CachingEngine", "RecognitionStore", "engine_id", "wrap"]

log = logging.getLogger(__name__)

ENV = "SPEAR_LAB_RECOGNITION_CACHE"
ENV_MB = "SPEAR_LAB_RECOGNITION_CACHE_MB"
DEFAULT_MB = 32


class CacheStats:
    """Thread-safe hit/miss counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def record(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def snapshot(self) -> dict[str, Any]:
        """``hits``, ``misses``, ``lookups`` and ``hit_rate`` (NaN before any lookup)."""
        with self._lock:
            h, m = self.hits, self.misses
        return {"hits": h, "misses": m, "lookups": h + m,
                "hit_rate": h / (h + m) if h + m else float("nan")}

    def __repr__(self) -> str:
        return f"<CacheStats hits={self.hits} misses={self.misses}>"


def _to_json(rec: Recognition) -> dict[str, Any]:
    return {"text": rec.text, "state": rec.state,
            "words": [[w.text, w.logprob, w.start_ms, w.end_ms] for w in rec.words]}


def _from_json(obj: dict[str, Any]) -> Recognition:
    words = tuple(Word(str(t), float(lp), int(s), int(e)) for t, lp, s, e in obj["words"])
    return Recognition(obj["text"], words, obj.get("state"))


class RecognitionStore:
    """LRU of recognitions (``max_bytes`` of JSON) plus an optional shared ``directory``."""

    def __init__(self, max_bytes: int = DEFAULT_MB << 20, directory: str | os.PathLike[str] | None = None) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory is not None else None
        self._lru: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Recognition | None:
        with self._lock:
            text = self._lru.get(key)
            if text is not None:
                self._lru.move_to_end(key)
        if text is None and self.directory is not None:
            try:
                text = (self.directory / key[:2] / f"{key}.json").read_text()
            except FileNotFoundError:
                text = None
            except OSError as exc:
                log.warning("recognition cache: cannot read %s: %s", key, exc)
                text = None
            if text is not None:
                self._remember(key, text)
        if text is None:
            return None
        try:
            return _from_json(json.loads(text))
        except (ValueError, KeyError, TypeError):
            log.warning("recognition cache: ignoring a corrupt entry %s", key)
            return None

    def put(self, key: str, rec: Recognition) -> None:
        text = json.dumps(_to_json(rec), separators=(",", ":"))
        self._remember(key, text)
        if self.directory is not None:
            path = self.directory / key[:2] / f"{key}.json"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"{path.name}.tmp{os.getpid()}.{threading.get_ident()}")
                tmp.write_text(text)
                os.replace(tmp, path)
            except OSError as exc:
                log.warning("recognition cache: cannot write %s: %s", path, exc)

    def _remember(self, key: str, text: str) -> None:
        if len(text) > self.max_bytes:
            return
        with self._lock:
            old = self._lru.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._lru[key] = text
            self._bytes += len(text)
            while self._bytes > self.max_bytes:
                _, dropped = self._lru.popitem(last=False)
                self._bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._lru)


def engine_id(engine: Engine, spec: EngineSpec | None = None) -> str:
    """What identifies an engine's results: factory, kwargs and the class's source hash."""
    cls = type(engine)
    factory = spec.factory if spec is not None else f"{cls.__module__}:{cls.__qualname__}"
    kwargs = spec.kwargs if spec is not None else {}
    h = hashlib.sha256()
    try:
        src = inspect.getsourcefile(cls)
        if src:
            h.update(Path(src).read_bytes())
    except (OSError, TypeError):
        pass
    return json.dumps([factory, kwargs, h.hexdigest()[:16]], sort_keys=True, default=str)


class _CachingStream(EngineStream):
    def __init__(self, owner: CachingEngine, inner: EngineStream, head: bytes) -> None:
        self._owner, self._inner = owner, inner
        self._h = hashlib.sha256(head)
        self.cache_hit = False

    def accept(self, pcm: np.ndarray) -> None:
        x = np.ascontiguousarray(pcm, dtype="<i2")
        self._inner.accept(x)
        self._h.update(x.tobytes())

    def partial(self) -> str:
        return self._inner.partial()

    def finish(self) -> Recognition:
        key = self._h.hexdigest()
        found = self._owner.store.get(key)
        if found is not None:
            self.cache_hit = True
            self._owner.stats.record(True)
            self._inner.close()
            return found
        rec = self._inner.finish()
        self._owner.stats.record(False)
        self._owner.store.put(key, rec)
        return rec

    def close(self) -> None:
        self._inner.close()


class CachingEngine(Engine):
    """An engine whose streams answer byte-identical audio from :class:`RecognitionStore`."""

    def __init__(self, inner: Engine, store: RecognitionStore, ident: str,
                 stats: CacheStats | None = None) -> None:
        self.inner, self.store, self.ident = inner, store, ident
        self.stats = stats if stats is not None else CacheStats()
        self.sample_rate = inner.sample_rate

    def open_stream(self, *, language: str | None = None, prompt: str | None = None,
                    state: Any = None, partials: bool = False) -> EngineStream:
        inner = self.inner.open_stream(language=language, prompt=prompt, state=state,
                                       partials=partials)
        head = json.dumps([self.ident, language, prompt, state], sort_keys=True,
                          default=repr).encode() + b"\0"
        return _CachingStream(self, inner, head)

    def describe(self) -> dict:
        return {**self.inner.describe(), "recognition_cache": True}

    def close(self) -> None:
        self.inner.close()


def wrap(engine: Engine, spec: EngineSpec | None = None, *, stats: CacheStats | None = None,
         setting: str | None = None) -> Engine:
    """``engine`` behind a recognition cache configured by ``setting`` (default: the
    ``SPEAR_LAB_RECOGNITION_CACHE`` environment variable; see the module docstring);
    ``engine`` itself when the setting is unset or ``off``."""
    setting = os.environ.get(ENV, "") if setting is None else setting
    if setting.strip().lower() in ("", "off", "0", "false", "no"):
        return engine
    try:
        mb = float(os.environ.get(ENV_MB, DEFAULT_MB))
    except ValueError:
        raise ValueError(f"{ENV_MB} must be a number of MiB, not {os.environ.get(ENV_MB)!r}") from None
    directory = None if setting.strip().lower() in ("memory", "on", "1") else setting
    store = RecognitionStore(int(mb * (1 << 20)), directory)
    return CachingEngine(engine, store, engine_id(engine, spec), stats)
