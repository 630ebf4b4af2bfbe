"""Bounds-checked access to a guest's linear memory (docs/abi.md §1.3).

Pointers and lengths arrive as signed i32: a negative one, or a range past the end of the
exported ``memory``, is invalid (the glue answers -EFAULT).  Address 0 is valid.

The memory view is cached.  Engines are made with ``memory_may_move = False``, so the
base address never changes and growth only adds room: a range past the cached end makes
the view be re-derived once before it is refused.
"""

from __future__ import annotations

import ctypes
import struct

_U32 = struct.Struct("<I")


class GuestMemory:
    """The ``memory`` export of one instance, or nothing (every access then fails)."""

    __slots__ = ("_memory", "_store", "_len", "_view")

    def __init__(self, memory=None, store=None) -> None:
        self._memory = memory
        self._store = store
        self._len = -1
        self._view: memoryview | None = None

    def bind(self, memory, store) -> None:
        """Attach the instance's exported memory (None when it exports none)."""
        self._memory, self._store = memory, store
        self._len, self._view = -1, None

    def _refresh(self) -> bool:
        """Re-derive the view after growth; False when there is no memory."""
        memory = self._memory
        if memory is None:
            return False
        n = memory.data_len(self._store)
        if n != self._len:
            addr = ctypes.addressof(memory.data_ptr(self._store).contents)
            self._view = memoryview((ctypes.c_ubyte * n).from_address(addr)).cast("B")
            self._len = n
        return True

    def valid(self, ptr: int, length: int) -> bool:
        """True when ``[ptr, ptr+length)`` lies inside memory."""
        if ptr < 0 or length < 0:
            return False
        end = ptr + length
        return end <= self._len or (self._refresh() and end <= self._len)

    def read(self, ptr: int, length: int) -> bytes | None:
        """``length`` bytes at ``ptr``, or None when the range is invalid."""
        if not self.valid(ptr, length):
            return None
        return bytes(self._view[ptr:ptr + length])  # type: ignore[index]

    def write(self, ptr: int, data: bytes) -> bool:
        """Copy ``data`` to ``ptr``; False (nothing written) when the range is invalid."""
        n = len(data)
        if not self.valid(ptr, n):
            return False
        self._view[ptr:ptr + n] = data  # type: ignore[index]
        return True

    def read_u32(self, ptr: int) -> int | None:
        """The little-endian u32 at ``ptr`` (any alignment), or None."""
        if not self.valid(ptr, 4):
            return None
        return _U32.unpack_from(self._view, ptr)[0]  # type: ignore[arg-type]

    def write_u32(self, ptr: int, value: int) -> bool:
        """Store a little-endian u32 at ``ptr``; False when the range is invalid."""
        if not self.valid(ptr, 4):
            return False
        _U32.pack_into(self._view, ptr, value & 0xFFFFFFFF)  # type: ignore[arg-type]
        return True

    def release(self) -> None:
        """Drop the view (before the store goes away)."""
        self._view = None
        self._memory = self._store = None
        self._len = -1
