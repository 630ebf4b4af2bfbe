"""spear_lab: a Jupyter toolkit for realtime speech segmentation and a syscall-style
WebAssembly host ABI (fd table, level-triggered epoll, realtime-ASR and microphone fds)."""

from .abi import EpollEvent, EpollOp, Errno, SpearError

__version__ = "0.1.0"

__all__ = ["EpollEvent", "EpollOp", "Errno", "SpearError", "__version__"]
