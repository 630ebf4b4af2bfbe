"""spear_lab: a Jupyter toolkit for realtime speech segmentation and a syscall-style
WebAssembly host ABI (fd table, level-triggered epoll, realtime-ASR and microphone fds).

``spear_lab.Session``, ``spear_lab.GuestHandle`` and ``spear_lab.Trace`` are imported on
first use, so ``import spear_lab`` stays light.
"""

from typing import Any

from .abi import EpollEvent, EpollOp, Errno, SpearError

__version__ = "0.1.0"

__all__ = ["EpollEvent", "EpollOp", "Errno", "GuestHandle", "Session", "SpearError", "Trace",
           "__version__"]

_LAZY = {"Session": "session", "GuestHandle": "session", "Trace": "trace"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'spear_lab' has no attribute {name!r}")
