"""Defining host imports with a lean trampoline (wasmtime's "unchecked" C API).

wasmtime-py's generic trampoline converts every argument and result through ``Val``
objects and type comparisons, which costs several microseconds per call.  Our imports
take and return only i32/i64, so this module registers them with
``wasmtime_linker_define_func_unchecked``: arguments are read straight from the raw
value array and the result is written back in place.  A Python exception raised by the
function (e.g. :class:`GuestStopped`) becomes a trap and re-raises out of the wasm call,
exactly as with ``Linker.define_func``.

Falls back to ``Linker.define_func`` when the installed wasmtime lacks the C symbols.
"""

from __future__ import annotations

import ctypes
import itertools
from typing import Any, Callable, Sequence

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import _func as _wfunc

_FUNCS: dict[int, tuple[Callable[..., Any], int, str | None]] = {}
_ids = itertools.count(1)
_AVAILABLE = hasattr(ffi, "wasmtime_linker_define_func_unchecked") and hasattr(
    ffi, "wasmtime_func_unchecked_callback_t")


def _kind(ty: wasmtime.ValType) -> str:
    text = str(ty)
    if text not in ("i32", "i64"):
        raise TypeError(f"fastcall supports i32/i64 only, not {text}")
    return text


if _AVAILABLE:
    @ffi.wasmtime_func_unchecked_callback_t
    def _trampoline(data, caller, args, nargs):  # type: ignore[no-untyped-def]
        fn, nparams, result = _FUNCS[data or 0]
        try:
            if nparams == 0:
                rc = fn()
            elif nparams == 1:
                rc = fn(args[0].i32)
            elif nparams == 2:
                rc = fn(args[0].i32, args[1].i32)
            elif nparams == 3:
                rc = fn(args[0].i32, args[1].i32, args[2].i32)
            elif nparams == 4:
                rc = fn(args[0].i32, args[1].i32, args[2].i32, args[3].i32)
            else:
                rc = fn(*[args[i].i32 for i in range(nparams)])
            if result == "i32":
                args[0].i32 = rc
            elif result == "i64":
                args[0].i64 = rc
            return 0
        except BaseException as exc:  # becomes a trap; enter_wasm re-raises it
            _wfunc.LAST_EXCEPTION = exc  # type: ignore[assignment]
            trap = wasmtime.Trap("python exception")._consume()
            return ctypes.cast(trap, ctypes.c_void_p).value

    @ctypes.CFUNCTYPE(None, ctypes.c_void_p)
    def _finalize(data):  # type: ignore[no-untyped-def]
        _FUNCS.pop(data or 0, None)


def define(linker: wasmtime.Linker, module: str, name: str, params: Sequence[wasmtime.ValType],
           results: Sequence[wasmtime.ValType], fn: Callable[..., Any]) -> None:
    """Define import ``module.name`` (i32 parameters; at most one i32/i64 result)."""
    for p in params:
        if _kind(p) != "i32":
            raise TypeError("fastcall parameters must be i32")
    if len(results) > 1:
        raise TypeError("fastcall supports at most one result")
    ty = wasmtime.FuncType(list(params), list(results))
    if not _AVAILABLE:
        linker.define_func(module, name, ty, fn)
        return
    idx = next(_ids)
    _FUNCS[idx] = (fn, len(params), _kind(results[0]) if results else None)
    mod_b, name_b = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(), ctypes.create_string_buffer(mod_b), len(mod_b),
        ctypes.create_string_buffer(name_b), len(name_b), ty.ptr(), _trampoline, idx, _finalize)
    if error:
        _FUNCS.pop(idx, None)
        raise wasmtime.WasmtimeError._from_ptr(error)
