"""``rtasr_ctl`` and ``mic_ctl`` over an fd table, in the ABI's order of checks.

Both hostcalls check, in this order (docs/abi.md §5.6, §7.6): the fd exists (-EBADF);
the command is known and its payload is one the command can take (-EINVAL) — before
the fd's kind is looked at; the fd is of the right kind (-EBADF); then the fd answers
(:meth:`RtasrFd.ctl`, :meth:`MicFd.ctl`), which validates the rest.  The caller holds
``table.lock``.
"""

from __future__ import annotations

from ..abi.constants import Errno, MicCtl, RtasrCtl
from ..abi.fdtable import FdTable
from ..abi.jsonfmt import loads
from .mic import MicFd
from .rtasr import RtasrFd
from .segmentation import Segmentation

__all__ = ["mic_ctl", "rtasr_ctl"]


def rtasr_ctl(table: FdTable, fd: int, cmd: int, payload: bytes | None) -> int | bytes:
    """0, output JSON bytes, or -errno.  Before the kind check, -EINVAL for: an unknown
    ``cmd``; SET_PARAM, SEND_EVENT or SET_AUTOFLUSH with bad JSON; SET_PARAM without a
    non-empty string ``key``; SET_AUTOFLUSH with a segmentation that does not parse."""
    if table.get(fd) is None:
        return -Errno.EBADF
    if cmd not in RtasrCtl._value2member_map_ or not _rtasr_payload_ok(cmd, payload):
        return -Errno.EINVAL
    entry = table.lookup(fd, RtasrFd)
    return entry if isinstance(entry, int) else entry.ctl(cmd, payload)


def mic_ctl(table: FdTable, fd: int, cmd: int, payload: bytes | None) -> int | bytes:
    """0, output JSON bytes, or -errno.  Before the kind check, -EINVAL for an unknown
    ``cmd`` and for SET_PARAM with bad JSON."""
    if table.get(fd) is None:
        return -Errno.EBADF
    if cmd not in MicCtl._value2member_map_:
        return -Errno.EINVAL
    if cmd == MicCtl.SET_PARAM and not loads(payload)[0]:
        return -Errno.EINVAL
    entry = table.lookup(fd, MicFd)
    return entry if isinstance(entry, int) else entry.ctl(cmd, payload)


def _rtasr_payload_ok(cmd: int, payload: bytes | None) -> bool:
    if cmd not in (RtasrCtl.SET_PARAM, RtasrCtl.SEND_EVENT, RtasrCtl.SET_AUTOFLUSH):
        return True
    ok, obj = loads(payload)
    if not ok:
        return False
    if cmd == RtasrCtl.SET_PARAM:
        return isinstance(obj, dict) and isinstance(obj.get("key"), str) and bool(obj["key"])
    if cmd == RtasrCtl.SET_AUTOFLUSH:
        return Segmentation.parse(obj) is not None
    return True
