"""Test helpers: a WAT guest that forwards every hostcall, and memory helpers."""

from __future__ import annotations

from spear_lab import Host
from spear_lab.runtime import SIGNATURES, instantiate
from spear_lab.runtime.guest import Instance


def _t(v) -> str:
    return "i64" if str(v) == "i64" else "i32"


def caller_wat(with_memory: bool = True, pages: int = 1) -> str:
    """WAT importing every ``spear`` hostcall and exporting ``call_<name>`` forwarders."""
    lines = ["(module"]
    for name, (params, results) in SIGNATURES.items():
        p = " ".join(f"(param {_t(x)})" for x in params)
        r = " ".join(f"(result {_t(x)})" for x in results)
        lines.append(f'  (import "spear" "{name}" (func ${name} {p} {r}))')
    if with_memory:
        lines.append(f'  (memory (export "memory") {pages})')
    for name, (params, results) in SIGNATURES.items():
        p = " ".join(f"(param {_t(x)})" for x in params)
        r = " ".join(f"(result {_t(x)})" for x in results)
        gets = " ".join(f"(local.get {i})" for i in range(len(params)))
        lines.append(f'  (func (export "call_{name}") {p} {r} (call ${name} {gets}))')
    lines.append(")")
    return "\n".join(lines)


class Caller:
    """An instantiated forwarding guest: ``c.spear_epoll_wait(...)`` calls the import."""

    def __init__(self, host: Host | None = None, with_memory: bool = True) -> None:
        self.root = host or Host()
        self.inst: Instance = instantiate(self.root, caller_wat(with_memory), )
        self.host = self.inst.host

    def __getattr__(self, name: str):
        if name in SIGNATURES:
            return lambda *a: self.inst.call(f"call_{name}", *a)
        raise AttributeError(name)

    # memory helpers
    def put(self, ptr: int, data: bytes) -> None:
        self.inst.write(ptr, data)

    def get(self, ptr: int, n: int) -> bytes:
        return self.inst.read(ptr, n)

    def cell(self, ptr: int, value: int | None = None) -> int:
        if value is not None:
            self.inst.write_u32(ptr, value)
        return self.inst.read_u32(ptr)

    def close(self) -> None:
        self.inst.close()
        self.root.shutdown()
