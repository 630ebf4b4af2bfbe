"""Probe: hostcalls made through the real wasm glue, with their length cells visible.

The Python methods of :class:`~spear_lab.runtime.Host` take capacities and return bytes, so
the *length cell* of the ABI (§1.4 of docs/abi.md: capacity in, length out, the needed
length written back with ``-ENOSPC``) is invisible from them.  A :class:`Probe`
instantiates a tiny real guest — the built-in ``link_all`` WAT module, which imports every
hostcall and exports ``call_<name>`` forwarding to it, plus its ``memory`` — and calls the
imports through wasmtime with pointers into that memory.  The pointer checks, cell reads
and write-backs are the linker's own (``spear_lab/runtime/linker.py``); the probe only
writes the arguments into memory before the call and reads the cell back after it.

``Probe(memory=False)`` uses the built-in ``nomem`` guest instead, which exports no memory:
every pointer-taking call then answers ``-EFAULT``.

Errors: ValueError for a range outside the probe's memory, LookupError for a hostcall the
probe's guest does not forward.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Self

from ..abi import errno_name, mask_names
from ..host import Host
from .guest import Instance, new_engine
from .loading import load_guest

#: address of the length cell the probe uses for every call
CELL = 8
#: address of the in/out buffer (a ctl input, a read's output, the wait's records)
BUF = 1024
#: bytes available at :data:`BUF` (the probe's memory is one 64 KiB page)
BUF_SIZE = 65536 - BUF


def guest_interface(source) -> dict[str, list[str]]:
    """What a guest module declares, read by wasmtime without running it:
    ``{"spear": [import names], "wasi_snapshot_preview1": [...], ..., "exports": [names]}``.

    ``source`` is anything :func:`~spear_lab.runtime.load_guest` accepts (a built-in name,
    a path, WAT text, wasm bytes); FileNotFoundError / ValueError as there."""
    import wasmtime

    module = wasmtime.Module(new_engine(), load_guest(source).wasm)
    out: dict[str, list[str]] = {}
    for imp in module.imports:
        out.setdefault(imp.module, []).append(imp.name or "")
    out["exports"] = [e.name for e in module.exports]
    return out


@dataclass
class CellCall:
    """One hostcall made by a :class:`Probe`: its arguments, result and the length cell.

    ``cell_in`` is what the cell held before the call (a capacity, or an input length),
    ``cell_out`` what it held after; ``data`` the bytes the call produced at the buffer
    (empty unless it succeeded; for a wait, the raw 8-byte records), ``records`` the
    ``(fd, events)`` pairs of a wait.
    """

    call: str
    args: tuple
    rc: int
    cell_in: int | None = None
    cell_out: int | None = None
    data: bytes = b""
    records: list[tuple[int, int]] = field(default_factory=list)

    @property
    def errno(self) -> str:
        """``"-ENOSPC"`` … for a negative result, ``""`` otherwise."""
        return errno_name(self.rc) if self.rc < 0 else ""

    def __repr__(self) -> str:
        args = ", ".join(str(a) for a in self.args)
        text = f"{self.call}({args}) -> {self.rc}"
        if self.rc < 0:
            text += f" ({self.errno})"
        if self.cell_in is not None:
            text += f"; cell {self.cell_in} -> {self.cell_out}"
        if self.records:
            text += "; records " + ", ".join(
                f"(fd {fd}, {'|'.join(mask_names(ev)) or '0'})" for fd, ev in self.records)
        elif self.data:
            text += f"; data {self.data!r}"
        return text


class Probe:
    """A real guest instance whose memory Python fills and reads around each hostcall.

    ``host`` is shared, not forked: fds created with ``probe.host`` from Python and by the
    probe's calls live in the same table.  Use as a context manager or call
    :meth:`close` (it closes every fd of the table).
    """

    #: the probe's default cell and buffer addresses, and its memory size in bytes
    CELL, BUF, MEMORY_BYTES = CELL, BUF, 65536

    def __init__(self, host: Host | None = None, memory: bool = True, *,
                 owns_host: bool | None = None) -> None:
        self.host = host if host is not None else Host()
        self._own_host = host is None if owns_host is None else owns_host
        self.has_memory = memory
        self._inst = Instance(load_guest("link_all" if memory else "nomem"), self.host)

    # -- raw access ---------------------------------------------------------------------
    def call(self, name: str, *args: int) -> int:
        """Call import ``name`` with raw i32 ``args`` through the guest; its result."""
        try:
            self._inst.func(f"call_{name}")
        except LookupError:
            raise LookupError(f"the probe's guest does not forward {name!r}") from None
        return self._inst.call(f"call_{name}", *args)

    def write(self, ptr: int, data: bytes) -> None:
        """Write ``data`` into the probe's memory at ``ptr`` (ValueError out of range)."""
        self._inst.write(ptr, data)

    def read(self, ptr: int, length: int) -> bytes:
        """``length`` bytes of the probe's memory at ``ptr`` (ValueError out of range)."""
        return self._inst.read(ptr, length)

    def set_cell(self, value: int, ptr: int = CELL) -> None:
        """Store ``value`` as the u32 length cell at ``ptr``."""
        self._inst.write_u32(ptr, value & 0xFFFFFFFF)

    def cell(self, ptr: int = CELL) -> int:
        """The u32 length cell at ``ptr``."""
        return self._inst.read_u32(ptr)

    # -- the calls that use a cell ------------------------------------------------------
    def _with_cell(self, name: str, shown: tuple, args: tuple, cell_in: int) -> CellCall:
        mem = self.has_memory
        if mem:
            self.set_cell(cell_in)
        rc = self.call(name, *args)
        out = self.cell() if mem else None
        data = self.read(BUF, rc) if mem and rc > 0 and name != "spear_epoll_wait" else b""
        return CellCall(name, shown, rc, cell_in if mem else None, out, data)

    def epoll_wait(self, epfd: int, capacity: int, timeout_ms: int = 0) -> CellCall:
        """``spear_epoll_wait`` with a cell holding ``capacity`` bytes; records parsed."""
        res = self._with_cell("spear_epoll_wait", (epfd, f"buf[{capacity}]", timeout_ms),
                              (epfd, BUF, CELL, timeout_ms), capacity)
        if res.rc > 0 and self.has_memory:
            res.data = self.read(BUF, 8 * res.rc)
            res.records = [struct.unpack_from("<iI", res.data, 8 * i) for i in range(res.rc)]
        return res

    def _ctl(self, name: str, fd: int, cmd: int, payload: bytes | None, capacity: int) -> CellCall:
        if payload is not None:
            if len(payload) > BUF_SIZE:
                raise ValueError(f"payload of {len(payload)} bytes exceeds the probe's {BUF_SIZE}")
            if self.has_memory:
                self.write(BUF, payload)
            shown = (fd, cmd, repr(payload))
            cell_in = len(payload)
        else:
            shown = (fd, cmd, f"buf[{capacity}]")
            cell_in = capacity
        return self._with_cell(name, shown, (fd, cmd, BUF, CELL), cell_in)

    def fd_ctl(self, fd: int, cmd: int, payload: bytes | None = None, capacity: int = 256) -> CellCall:
        """``spear_fd_ctl``: ``payload`` as input (cell = its length), else a GET with
        ``capacity`` bytes of room."""
        return self._ctl("spear_fd_ctl", fd, cmd, payload, capacity)

    def rtasr_ctl(self, fd: int, cmd: int, payload: bytes | None = None, capacity: int = 4096) -> CellCall:
        """``rtasr_ctl`` with the one in/out buffer of §1.5."""
        return self._ctl("rtasr_ctl", fd, cmd, payload, capacity)

    def mic_ctl(self, fd: int, cmd: int, payload: bytes | None = None, capacity: int = 4096) -> CellCall:
        """``mic_ctl`` with the one in/out buffer of §1.5."""
        return self._ctl("mic_ctl", fd, cmd, payload, capacity)

    def rtasr_read(self, fd: int, capacity: int) -> CellCall:
        """``rtasr_read`` into ``capacity`` bytes."""
        return self._with_cell("rtasr_read", (fd, f"buf[{capacity}]"), (fd, BUF, CELL), capacity)

    def mic_read(self, fd: int, capacity: int) -> CellCall:
        """``mic_read`` into ``capacity`` bytes."""
        return self._with_cell("mic_read", (fd, f"buf[{capacity}]"), (fd, BUF, CELL), capacity)

    # -- pointer + length calls -----------------------------------------------------------
    def log(self, level: int, msg: bytes = b"", ptr: int | None = None, length: int | None = None) -> CellCall:
        """``log(level, ptr, length)``: ``msg`` written at the buffer, or a raw range."""
        if ptr is None:
            if self.has_memory:
                self.write(BUF, msg)
            ptr, length, shown = BUF, len(msg), (level, repr(msg))
        else:
            shown = (level, f"ptr={ptr}", f"len={length if length is not None else 0}")
        return CellCall("log", shown, self.call("log", level, ptr, length or 0))

    def rtasr_write(self, fd: int, data: bytes = b"", ptr: int | None = None,
                    length: int | None = None) -> CellCall:
        """``rtasr_write(fd, ptr, length)``: ``data`` written at the buffer, or a raw range."""
        if ptr is None:
            if self.has_memory:
                self.write(BUF, data)
            ptr, length, shown = BUF, len(data), (fd, repr(data))
        else:
            shown = (fd, f"ptr={ptr}", f"len={length if length is not None else 0}")
        return CellCall("rtasr_write", shown, self.call("rtasr_write", fd, ptr, length or 0))

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the table's fds, release the instance (and the host if the probe made it)."""
        if self._inst is not None:
            self._inst.close()
            self._inst = None  # type: ignore[assignment]
        if self._own_host:
            self.host.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        guest = "link_all" if self.has_memory else "nomem (no memory export)"
        return f"Probe(guest={guest}, cell at {CELL}, buffer at {BUF})"
