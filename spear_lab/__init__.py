"""spear_lab: a Jupyter toolkit for realtime speech segmentation and a syscall-style
WebAssembly host ABI (fd table, level-triggered epoll, realtime-ASR and microphone fds).

The public face, for notebooks and scripts:

- ``Session`` (guests beside the kernel, live views), ``GuestHandle``, ``Trace``;
- ``Host`` (every hostcall as a Python method, no guest needed; wired to the real
  transports and microphone sources — ``spear_lab.host.Host`` is the bare core);
- ``Probe`` (hostcalls through the real wasm glue, length cells visible);
- the ABI's numbers: ``EPOLLIN`` … ``EPOLLHUP``, ``EpollOp``, ``Errno``, ``FdCtl``,
  ``RtasrCtl``, ``MicCtl``, ``RtasrState``, ``errno_name``, ``mask_names``, ``SpearError``;
- ``demo_speech()`` (the bundled recording and its text), ``make_speech`` (espeak-ng test
  speech), ``wer`` (normalised word error rate);
- ``VirtualMic``, ``devices`` (the virtual PulseAudio microphone, the input devices).

Views are in ``spear_lab.views``, the segmentation explorer in ``spear_lab.explore``.
Everything but the ABI's numbers is imported on first use, so ``import spear_lab`` stays light.
In IPython, a Host and a Trace display as HTML tables (:func:`register_html_views`; the
core layers know nothing of views).
"""

from typing import Any

from .abi import (EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EpollEvent, EpollOp, Errno, FdCtl,
                  MicCtl, RtasrCtl, RtasrState, SpearError, errno_name, mask_names)
from .data import demo_speech

__version__ = "0.1.0"

_LAZY = {
    "Session": "session", "GuestHandle": "session", "Trace": "trace", "Host": "session.wiring:make_host",
    "make_speech": "testaudio", "VirtualMic": "audio.virtual_mic",
    "VirtualMicError": "audio.virtual_mic", "devices": "audio.portaudio",
    "AudioUnavailable": "audio.portaudio",
    "Probe": "session.wiring:make_probe", "CellCall": "runtime.probe", "guest_interface": "runtime.probe",
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


def _host_html(host: Any) -> str:
    from .views.html import fd_table_html

    return fd_table_html(host)


def _trace_html(trace: Any) -> str:
    from .views.html import trace_html

    return trace_html(trace)


def register_html_views(ip: Any = None) -> bool:
    """Give :class:`spear_lab.host.Host` and :class:`spear_lab.trace.Trace` their HTML
    views in IPython ``ip`` (default: the running shell); False outside IPython.  Done
    when ``spear_lab`` is imported inside IPython; by class name, so nothing is imported."""
    if ip is None:
        import sys

        ipython = sys.modules.get("IPython")
        ip = ipython.get_ipython() if ipython is not None else None
    if ip is None:
        return False
    html = ip.display_formatter.formatters["text/html"]
    html.for_type_by_name("spear_lab.host.host", "Host", _host_html)
    html.for_type_by_name("spear_lab.trace.core", "Trace", _trace_html)
    return True


register_html_views()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, _, attr = _LAZY[name].partition(":")
        return getattr(importlib.import_module(f".{module}", __name__), attr or name)
    raise AttributeError(f"module 'spear_lab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
