"""spear_lab.server: a local OpenAI-compatible realtime transcription server.

GA shape by default, beta as a dialect; server VAD with a speech-probability
threshold; pocketsphinx recognition in worker processes. See docs/server.md.

Public API: :class:`EmbeddedServer` (start on loopback on demand),
:class:`RealtimeServer` / :class:`ServerOptions` (asyncio), :func:`cli.main`,
and the engine interface in :mod:`spear_lab.server.engines`. Names are imported
lazily, so the recognition worker processes stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EmbeddedServer", "RealtimeServer", "ServerOptions", "Engine", "EngineSpec",
           "EngineStream", "Recognition", "Word"]

_WHERE = {"EmbeddedServer": "embedded", "RealtimeServer": "app", "ServerOptions": "options",
          "Engine": "engines", "EngineSpec": "engines", "EngineStream": "engines",
          "Recognition": "engines", "Word": "engines"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
