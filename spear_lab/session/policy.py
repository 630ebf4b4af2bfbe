"""Host policy from user words: one place for what Session, ``spear-lab run`` and the
explorer accept.

- :func:`mic_policy`: ``device[:NAME] | stub | file:PATH | demo | browser`` (or a
  browser microphone widget) → ``HostConfig`` microphone fields;
- :func:`guest_env`, :func:`backend_env`, :func:`segmentation_env`: the environment the
  built-in guests read (``SPEAR_BACKEND``, ``SPEAR_TRANSPORT``, ``SPEAR_SEGMENTATION``,
  ``SPEAR_MODEL``);
- :func:`backend_registry`, :func:`parse_routes`: the backends a host offers and the
  guest-name → backend routes;
- :func:`parse_summary`: the ``summary: k=v …`` line the built-in guests print last.

Every function raises ValueError with a message that names the problem.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

from ..abi.jsonfmt import dumps
from ..fds.segmentation import Segmentation
from ..host import HostConfig
from ..transports.backends import ENV_BACKENDS_FILE, BackendRegistry

__all__ = [
    "ENV_BACKEND", "ENV_MODEL", "ENV_SEGMENTATION", "ENV_TRANSPORT", "backend_env", "backend_registry",
    "guest_env", "mic_policy", "parse_routes", "parse_summary", "segmentation_env",
]

#: Environment variables the built-in guests read for their backend, segmentation, model.
ENV_BACKEND, ENV_TRANSPORT, ENV_SEGMENTATION = "SPEAR_BACKEND", "SPEAR_TRANSPORT", "SPEAR_SEGMENTATION"
ENV_MODEL = "SPEAR_MODEL"
_SUMMARY_FIELD = re.compile(r"(\w+)=(-?\d+)")


def mic_policy(config: HostConfig, mic: str) -> None:
    """Point a guest's microphone requests at ``mic``: ``"device"`` (the default input),
    ``"device:NAME"`` (the input device whose name contains NAME, or index NAME),
    ``"stub"`` (generated frames), ``"file:PATH"`` (a WAV, also used for ``source:"file"``)
    or ``"demo"`` (the bundled demo recording, :func:`spear_lab.data.demo_path`), or
    ``"browser"`` (the browser's microphone through the most recently created
    :class:`spear_lab.views.BrowserMic`; pass the widget itself to choose one).

    Raises ValueError naming the problem for anything else or a missing file.
    """
    if hasattr(mic, "feed") or type(mic).__name__ == "BrowserFeed":
        from ..audio.browser import feed_of

        try:
            config.browser_mic = feed_of(mic)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        config.mic_device = "browser"
        return
    if not isinstance(mic, str):
        raise ValueError(f"mic must be a string, not {type(mic).__name__}")
    if mic == "browser":
        config.browser_mic = None
        config.mic_device = mic
        return
    if mic in ("device", "stub"):
        config.mic_device = mic
        return
    if mic.startswith("device:"):
        if not mic[7:].strip():
            raise ValueError("mic 'device:NAME' needs a device name after the colon")
        config.mic_device = mic
        return
    if mic == "demo":
        from ..data import demo_path

        mic = f"file:{demo_path()}"
    if mic.startswith("file:"):
        path = os.path.abspath(os.path.expanduser(mic[5:]))
        if not os.path.isfile(path):
            raise ValueError(f"mic file not found: {path} (relative paths are read from "
                             f"{os.getcwd()}; mic='demo' is the bundled recording)")
        config.mic_device = f"file:{path}"
        config.mic_file = path
        return
    raise ValueError(f"mic must be 'device', 'device:NAME', 'stub', 'demo', 'browser' or 'file:PATH', "
                     f"not {mic!r}")


def backend_env(backend: str) -> dict[str, str]:
    """The environment that makes a built-in guest use ``backend``: ``"stub"`` selects the
    stub transport, any other name (``"local"``, ``"openai"``…) the WebSocket transport
    routed to that backend."""
    if not backend:
        raise ValueError("backend must be a non-empty name")
    if backend == "stub":
        return {ENV_TRANSPORT: "stub", ENV_BACKEND: "stub"}
    return {ENV_TRANSPORT: "websocket", ENV_BACKEND: backend}


def segmentation_env(segmentation: Any) -> dict[str, str]:
    """The environment carrying a segmentation setting (a dict, JSON text or
    :class:`Segmentation`) to a built-in guest, as compact JSON.  ValueError when the ABI
    would refuse it."""
    if isinstance(segmentation, Segmentation):
        return {ENV_SEGMENTATION: dumps(segmentation.to_json())}
    obj = segmentation
    if isinstance(segmentation, (str, bytes)):
        try:
            obj = json.loads(segmentation)
        except ValueError:
            raise ValueError(f"invalid JSON: {segmentation!r}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"invalid JSON object: a segmentation setting is an object, not {obj!r}")
    if Segmentation.parse(obj) is None:
        raise ValueError(f"invalid segmentation setting: {obj!r} (docs/abi.md §6)")
    return {ENV_SEGMENTATION: dumps(obj)}


def guest_env(backend: str | None = None, segmentation: Any = None,
              model: str | None = None) -> dict[str, str]:
    """The whole environment for a built-in guest: :func:`backend_env`,
    :func:`segmentation_env` and ``SPEAR_MODEL``; None leaves a setting to the guest."""
    env: dict[str, str] = {}
    if backend is not None:
        env.update(backend_env(backend))
    if segmentation is not None:
        env.update(segmentation_env(segmentation))
    if model:
        env[ENV_MODEL] = model
    return env


def backend_registry(path: str | os.PathLike[str] | None = None) -> BackendRegistry:
    """The backends a host offers: the defaults, ``$SPEAR_LAB_BACKENDS`` and the TOML
    file at ``path`` (:meth:`BackendRegistry.from_toml`).  ValueError names the bad file."""
    try:
        registry = BackendRegistry.from_env()
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"${ENV_BACKENDS_FILE}: cannot load the backend table: {exc}") from None
    if path is None:
        return registry
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        return registry.merged(BackendRegistry.from_toml(file))
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def parse_routes(specs: Sequence[str], registry: BackendRegistry) -> dict[str, str]:
    """``NAME=BACKEND`` texts as ``HostConfig.routes``; ValueError for a malformed one or a
    BACKEND the registry does not have."""
    routes: dict[str, str] = {}
    for spec in specs:
        name, sep, target = spec.partition("=")
        name, target = name.strip(), target.strip()
        if not sep or not name or not target:
            raise ValueError(f"{spec!r}: expected NAME=BACKEND")
        if target not in registry:
            raise ValueError(f"{spec}: unknown backend {target!r} (known: {', '.join(registry.names())})")
        routes[name] = target
    return routes


def parse_summary(stdout: str) -> dict[str, int]:
    """The fields of the last ``summary: key=N …`` line of a built-in guest's stdout
    (``{}`` when it printed none)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("summary:"):
            return {k: int(v) for k, v in _SUMMARY_FIELD.findall(line)}
    return {}
