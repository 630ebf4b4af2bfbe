"""The one hostcall recorder: guests (through the wasm glue) and Python callers alike.

:func:`recorder` wraps a hostcall so that, while the host context's trace records, each
call is recorded with its arguments, result and duration (``time.perf_counter``
seconds).  The wasm glue records the raw i32 arguments; Python callers
(``session.abi``) record short summaries of their values (:func:`arg_summary`) and of
what came back (:func:`out_summary`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..abi.constants import mask_names

if TYPE_CHECKING:
    from .host import Host

__all__ = ["HostcallSink", "arg_summary", "out_summary", "recorder"]


class HostcallSink(Protocol):
    """Where hostcalls are recorded (a :class:`spear_lab.trace.Trace`)."""

    recording: bool

    def hostcall(self, instance: str, name: str, args: tuple, rc: Any, t0: float, t1: float,
                 out: str | None = None) -> None: ...


def arg_summary(value: Any) -> Any:
    """What a trace keeps of one Python argument: ints as they are, short payloads
    (≤ 96 bytes of UTF-8) as text, longer ones as their length."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if len(data) <= 96:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return f"<{len(data)} bytes>"
    if isinstance(value, (int, str)) or value is None:
        return value
    return repr(value)[:96]


def out_summary(rc: Any) -> str | None:
    """What a trace keeps of a Python hostcall's non-integer result: the ready pairs of
    ``spear_epoll_wait`` (``"1001:IN|OUT"``), or a payload as :func:`arg_summary`."""
    if isinstance(rc, list):
        return " ".join(f"{fd}:{'|'.join(n[5:] for n in mask_names(ev))}" for fd, ev in rc) or "[]"
    if isinstance(rc, (bytes, bytearray)):
        return str(arg_summary(rc))
    return None


def recorder(host: "Host", name: str, fn: Callable[..., Any], *,
             python: bool = False) -> Callable[..., Any]:
    """``fn`` — hostcall ``name`` of ``host`` — recorded in ``host.context.trace`` while
    it records (looked up at each call, so a trace attached later is used); ``python``:
    summarise Python values instead of keeping raw integer arguments."""
    context, instance, perf = host.context, host.name, time.perf_counter

    def call(*args: Any) -> Any:
        trace = context.trace
        if trace is None or not trace.recording:
            return fn(*args)
        t0 = perf()
        rc = fn(*args)
        t1 = perf()
        if python:
            trace.hostcall(instance, name, tuple(arg_summary(a) for a in args), rc, t0, t1,
                           out_summary(rc))
        else:
            trace.hostcall(instance, name, args, rc, t0, t1)
        return rc

    call.__name__ = name
    call.__doc__ = fn.__doc__
    return call
