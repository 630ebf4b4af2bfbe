"""Segmentation configurations to sweep: server VAD, client commit, manual.

A :class:`SegConfig` is one point of a sweep.  It turns into the ``SET_AUTOFLUSH`` JSON a
guest applies (:meth:`SegConfig.segmentation`, docs/abi.md §6.2strategy form) and into
flat table columns (:meth:`SegConfig.params`).  :func:`grid` makes the cartesian product
of parameter lists::

    grid(silence_ms=[200, 500, 800], threshold=[0.3, 0.5])   # 6 server-VAD configs

Pacing: server VAD segments by audio position, so it can be replayed faster than real
time.  Client commit cannot: the host's commit clock measures ``flush_interval_ms`` and
``min_flush_gap_ms`` in wall time, and after each commit no other fires until the
transport has sent it — replayed fast, the guest has written seconds of audio by then,
so even byte-counting triggers would cut elsewhere than live
(:meth:`SegConfig.needs_realtime`).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Iterable, Sequence

__all__ = ["SegConfig", "server_vad", "client_commit", "manual", "grid"]

SERVER_VAD, CLIENT_COMMIT, MANUAL = "server_vad", "client_commit", "manual"


@dataclass(frozen=True)
class SegConfig:
    """One segmentation setting.

    Server VAD: ``silence_ms`` (silence that ends a turn), ``threshold`` (speech
    probability 0–1), ``prefix_padding_ms`` (audio kept before the detected onset).
    Client commit (host commits on its own): ``flush_interval_ms``, ``max_buffer_bytes``,
    ``commit_silence_ms`` (silence written, peak < 500 of 32767), ``min_flush_gap_ms``.
    Manual: only the guest's FLUSH at the end of the recording commits.
    ``label`` overrides the generated :attr:`name`.
    """

    strategy: str = SERVER_VAD
    silence_ms: int | None = 500
    threshold: float | None = 0.5
    prefix_padding_ms: int | None = 300
    flush_interval_ms: int | None = None
    max_buffer_bytes: int | None = None
    commit_silence_ms: int | None = None
    min_flush_gap_ms: int | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if self.strategy not in (SERVER_VAD, CLIENT_COMMIT, MANUAL):
            raise ValueError(f"unknown strategy {self.strategy!r} (server_vad, client_commit, manual)")
        if self.strategy == SERVER_VAD and self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], not {self.threshold}")
        for f in ("silence_ms", "prefix_padding_ms", "flush_interval_ms", "max_buffer_bytes",
                  "commit_silence_ms", "min_flush_gap_ms"):
            v = getattr(self, f)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"{f} must be a non-negative integer or None, not {v!r}")

    @property
    def name(self) -> str:
        """A short label, e.g. ``vad s500 t0.5 p300``, ``commit every1000ms``, ``manual``."""
        if self.label:
            return self.label
        if self.strategy == SERVER_VAD:
            return f"vad s{self.silence_ms} t{self.threshold:g} p{self.prefix_padding_ms}"
        if self.strategy == MANUAL:
            return "manual"
        parts = []
        if self.flush_interval_ms is not None:
            parts.append(f"every{self.flush_interval_ms}ms")
        if self.max_buffer_bytes is not None:
            parts.append(f"max{self.max_buffer_bytes}B")
        if self.commit_silence_ms is not None:
            parts.append(f"sil{self.commit_silence_ms}ms")
        if self.min_flush_gap_ms is not None:
            parts.append(f"gap{self.min_flush_gap_ms}ms")
        return "commit " + " ".join(parts or ["never"])

    def segmentation(self) -> dict[str, Any]:
        """The SET_AUTOFLUSH object (strategy form) for this configuration."""
        if self.strategy == SERVER_VAD:
            vad: dict[str, Any] = {"silence_ms": 500 if self.silence_ms is None else self.silence_ms}
            if self.threshold is not None:
                vad["threshold"] = self.threshold
            if self.prefix_padding_ms is not None:
                vad["prefix_padding_ms"] = self.prefix_padding_ms
            return {"strategy": SERVER_VAD, "vad": vad}
        if self.strategy == MANUAL:
            return {"strategy": MANUAL}
        cc: dict[str, Any] = {}
        for key, value in (("flush_interval_ms", self.flush_interval_ms),
                           ("max_buffer_bytes", self.max_buffer_bytes),
                           ("silence_ms", self.commit_silence_ms),
                           ("min_flush_gap_ms", self.min_flush_gap_ms)):
            if value is not None:
                cc[key] = value
        return {"strategy": CLIENT_COMMIT, "client_commit": cc}

    def effective_vad(self) -> tuple[float, float]:
        """``(prefix_padding_ms, silence_ms)`` the server applies (defaults 300 / 500 ms);
        (0, 0) for the commit strategies."""
        if self.strategy != SERVER_VAD:
            return 0.0, 0.0
        return (300.0 if self.prefix_padding_ms is None else float(self.prefix_padding_ms),
                500.0 if self.silence_ms is None else float(self.silence_ms))

    def needs_realtime(self) -> bool:
        """True for client commit: its triggers depend on wall time and on the transport's
        progress (see the module docstring), so only a real-time replay is faithful."""
        return self.strategy == CLIENT_COMMIT

    def params(self) -> dict[str, Any]:
        """Flat columns for a results table: ``config``, ``strategy`` and the parameters
        that apply to the strategy (others None)."""
        out: dict[str, Any] = {"config": self.name, "strategy": self.strategy}
        vad = self.strategy == SERVER_VAD
        cc = self.strategy == CLIENT_COMMIT
        out["silence_ms"] = self.silence_ms if vad else None
        out["threshold"] = self.threshold if vad else None
        out["prefix_padding_ms"] = self.prefix_padding_ms if vad else None
        out["flush_interval_ms"] = self.flush_interval_ms if cc else None
        out["max_buffer_bytes"] = self.max_buffer_bytes if cc else None
        out["commit_silence_ms"] = self.commit_silence_ms if cc else None
        out["min_flush_gap_ms"] = self.min_flush_gap_ms if cc else None
        return out

    def key(self) -> str:
        """Canonical JSON of what changes the replay (the label does not)."""
        return json.dumps({"segmentation": self.segmentation()}, sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> "SegConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in names})


def server_vad(silence_ms: int = 500, threshold: float = 0.5, prefix_padding_ms: int = 300,
               label: str | None = None) -> SegConfig:
    """A server-VAD configuration."""
    return SegConfig(SERVER_VAD, silence_ms, threshold, prefix_padding_ms, label=label)


def client_commit(*, flush_interval_ms: int | None = None, max_buffer_bytes: int | None = None,
                  silence_ms: int | None = None, min_flush_gap_ms: int | None = None,
                  label: str | None = None) -> SegConfig:
    """A client-commit configuration (``silence_ms`` here is the host's silence trigger)."""
    return SegConfig(CLIENT_COMMIT, None, None, None, flush_interval_ms, max_buffer_bytes,
                     silence_ms, min_flush_gap_ms, label)


def manual(label: str | None = None) -> SegConfig:
    """Manual segmentation: one commit when the recording ends."""
    return SegConfig(MANUAL, None, None, None, label=label)


def grid(base: SegConfig | None = None, **axes: Any) -> list[SegConfig]:
    """The cartesian product of ``axes`` (field name → value or list of values) applied to
    ``base`` (default: server VAD 500 ms / 0.5 / 300 ms).  The last axis varies fastest.
    Raises TypeError for an unknown field."""
    base = base or SegConfig()
    names = {f.name for f in fields(SegConfig)}
    for k in axes:
        if k not in names:
            raise TypeError(f"grid: unknown parameter {k!r} (one of {', '.join(sorted(names))})")
    keys = list(axes)
    values: list[Sequence[Any]] = [v if isinstance(v, (list, tuple, range)) else [v] for v in axes.values()]
    return [replace(base, **dict(zip(keys, combo))) for combo in itertools.product(*values)]


def as_configs(configs: SegConfig | dict | Iterable[SegConfig | dict]) -> list[SegConfig]:
    """Normalise one config, a dict of SegConfig fields, or a list of either."""
    if isinstance(configs, (SegConfig, dict)):
        configs = [configs]
    out = []
    for c in configs:
        out.append(c if isinstance(c, SegConfig) else SegConfig.from_dict(c))
    return out
