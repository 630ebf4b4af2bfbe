"""Generic fd control, ``spear_fd_ctl`` (docs/abi.md §4)."""

from __future__ import annotations

from .constants import Errno, FdCtl, FdFlag, FdKind, mask_names
from .fdtable import FdTable
from .jsonfmt import dumpb, loads

_FLAG_NAMES = {"O_NONBLOCK": FdFlag.O_NONBLOCK}
_KIND_JSON = {kind: dumpb({"kind": kind.value}) for kind in FdKind}
_EMPTY = b"{}"


def fd_ctl_known(cmd: int) -> bool:
    """True when ``cmd`` is one of the five commands (others give -EINVAL first)."""
    return cmd in FdCtl._value2member_map_


def flag_names(flags: int) -> list[str]:
    """Names of the flags set in ``flags``."""
    return [name for name, bit in _FLAG_NAMES.items() if flags & bit]


def fd_ctl(table: FdTable, fd: int, cmd: int, payload: bytes | None) -> int | bytes:
    """Run ``spear_fd_ctl`` command ``cmd`` on ``fd`` (open or closed).

    Returns 0 (SET_FLAGS), the output JSON bytes (GET_*), -EINVAL for an unknown command or
    bad SET_FLAGS JSON, -EBADF for an fd that was never allocated.
    """
    if not fd_ctl_known(cmd):
        return -Errno.EINVAL
    with table.lock:
        entry = table.get(fd)
        if entry is None:
            return -Errno.EBADF
        if cmd == FdCtl.SET_FLAGS:
            ok, req = loads(payload if payload is not None else b"")
            if not ok:
                return -Errno.EINVAL
            if isinstance(req, dict):
                for key, apply in (("set", lambda f, b: f | b), ("clear", lambda f, b: f & ~b)):
                    names = req.get(key)
                    if isinstance(names, list):
                        for name in names:
                            bit = _FLAG_NAMES.get(name) if isinstance(name, str) else None
                            if bit is not None:
                                entry.flags = FdFlag(apply(entry.flags, bit))
            return 0
        if cmd == FdCtl.GET_FLAGS:
            return dumpb({"flags": flag_names(entry.flags)})
        if cmd == FdCtl.GET_KIND:
            return _KIND_JSON[entry.kind]
        if cmd == FdCtl.GET_STATUS:
            return dumpb(
                {
                    "closed": entry.closed,
                    "flags": flag_names(entry.flags),
                    "kind": entry.kind.value,
                    "poll_mask": mask_names(entry.effective_mask),
                }
            )
        return _EMPTY  # GET_METRICS
