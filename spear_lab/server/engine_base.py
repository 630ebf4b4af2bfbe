"""The recognition engine interface: engines, streams, results and errors.

An :class:`Engine` opens one :class:`EngineStream` per utterance. A stream takes
16 kHz mono int16 audio in pieces (:meth:`EngineStream.accept`), can report a
partial hypothesis at any time (:meth:`EngineStream.partial`), and gives the final
:class:`Recognition` on :meth:`EngineStream.finish`. Engine methods block and may
hold the GIL for a long time; the server calls them in a worker process or thread,
never on its event loop. An :class:`EngineSpec` names an engine class as
``module:Class`` plus its constructor arguments, so another process can build it.

Errors: :class:`EngineUnavailable` when an engine cannot be set up (missing
package or model), :class:`RecognitionError` when recognising one utterance fails.
Everything here is importable from :mod:`spear_lab.server.engines` too.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "LOGPROB_FLOOR", "Engine", "EngineSpec", "EngineStream", "EngineUnavailable", "Recognition",
    "RecognitionError", "Word",
]

LOGPROB_FLOOR = -20.0
"""Log probabilities are clipped here (natural log)."""


class EngineUnavailable(RuntimeError):
    """The engine cannot be used here (missing optional package, model or file)."""


class RecognitionError(RuntimeError):
    """Recognising one utterance failed; the engine stays usable."""


@dataclass(frozen=True)
class Word:
    """A recognised word: ``logprob`` is a natural-log confidence (<= 0);
    ``start_ms``/``end_ms`` are relative to the start of the stream's audio."""

    text: str
    logprob: float
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Recognition:
    """Final result of a stream. ``state`` is opaque engine adaptation state
    (e.g. cepstral mean) to pass to the next stream of the same speaker/session."""

    text: str
    words: tuple[Word, ...] = ()
    state: Any = None


class EngineStream(ABC):
    """One utterance being recognised. Not thread-safe; use from one thread at a time."""

    @abstractmethod
    def accept(self, pcm: np.ndarray) -> None:
        """Add 16 kHz mono int16 samples."""

    def partial(self) -> str:
        """Best hypothesis so far ('' if none or unsupported)."""
        return ""

    @abstractmethod
    def finish(self) -> Recognition:
        """End the utterance; raises :class:`RecognitionError` on failure."""

    def close(self) -> None:
        """Release resources; idempotent; safe after or instead of ``finish``."""


class Engine(ABC):
    """A recogniser model; thread-safe factory of streams."""

    sample_rate = 16000

    @classmethod
    def check(cls, **kwargs: Any) -> None:
        """Raise :class:`EngineUnavailable` if the engine cannot work with ``kwargs``,
        cheaply (no model loading)."""

    @abstractmethod
    def open_stream(self, *, language: str | None = None, prompt: str | None = None,
                    state: Any = None, partials: bool = False) -> EngineStream:
        """Start recognising a new utterance; ``partials``: the caller will ask for
        partial hypotheses (engines that need extra work for them do it only then)."""

    def describe(self) -> dict:
        """What is loaded, for logs and the server's info (JSON-able)."""
        return {"engine": type(self).__name__}

    def close(self) -> None:
        """Free the model."""


@dataclass(frozen=True)
class EngineSpec:
    """How to build an engine in another process: ``factory`` is ``module:Class``."""

    factory: str
    kwargs: dict = field(default_factory=dict)

    def resolve(self) -> type[Engine]:
        module, _, name = self.factory.partition(":")
        return getattr(importlib.import_module(module), name)

    def build(self) -> Engine:
        return self.resolve()(**self.kwargs)
