"""spear_lab: a Jupyter toolkit for realtime speech segmentation and a syscall-style
WebAssembly host ABI (fd table, level-triggered epoll, realtime-ASR and microphone fds).

The public face, for notebooks and scripts:

- ``Session`` (guests beside the kernel, live views), ``GuestHandle``, ``Trace``;
- ``Host`` (every hostcall as a Python method, no guest needed);
- ``Probe`` (hostcalls through the real wasm glue, length cells visible);
- the ABI's numbers: ``EPOLLIN`` … ``EPOLLHUP``, ``EpollOp``, ``Errno``, ``FdCtl``,
  ``RtasrCtl``, ``MicCtl``, ``RtasrState``, ``errno_name``, ``mask_names``, ``SpearError``;
- ``demo_speech()`` (the bundled recording and its text), ``make_speech`` (espeak-ng test
  speech), ``wer`` (normalised word error rate);
- ``VirtualMic``, ``devices`` (the virtual PulseAudio microphone, the input devices).

Views are in ``spear_lab.views``, the segmentation explorer in ``spear_lab.explore``.
Everything but the ABI's numbers is imported on first use, so ``import spear_lab`` stays light.
"""

from typing import Any

from .abi import (
    EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EpollEvent, EpollOp, Errno, FdCtl, MicCtl, RtasrCtl,
    RtasrState, SpearError, errno_name, mask_names,
)
from .data import demo_speech

__version__ = "0.1.0"

_LAZY = {
    "Session": "session", "GuestHandle": "session", "Trace": "trace", "Host": "runtime",
    "make_speech": "testaudio", "VirtualMic": "audio.virtual_mic",
    "VirtualMicError": "audio.virtual_mic", "devices": "audio.portaudio",
    "AudioUnavailable": "audio.portaudio",
    "Probe": "runtime.probe", "CellCall": "runtime.probe", "guest_interface": "runtime.probe",
}

__all__ = [
    "AudioUnavailable", "CellCall", "EPOLLERR", "EPOLLHUP", "EPOLLIN", "EPOLLOUT", "EpollEvent",
    "EpollOp", "Errno", "FdCtl", "GuestHandle", "Host", "MicCtl", "Probe", "RtasrCtl",
    "RtasrState", "Session", "SpearError", "Trace", "VirtualMic", "VirtualMicError",
    "__version__", "demo_speech", "devices", "errno_name", "guest_interface", "make_speech",
    "mask_names", "wer",
]


def wer(reference: str, hypothesis: str) -> float:
    """Normalised word error rate of ``hypothesis`` against ``reference`` (0.0 = perfect;
    case, punctuation and number spelling are normalised first)."""
    from .explore.metrics import wer_counts

    return wer_counts(reference, hypothesis)["wer"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'spear_lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
