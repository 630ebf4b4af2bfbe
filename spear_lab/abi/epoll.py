"""epoll (docs/abi.md §3): interest sets and level-triggered, ascending-fd waits.

``spear_epoll_wait`` scans and blocks under the table lock, so a readiness change that
lands between the scan and the wait is never missed (a fix, docs/abi.md §12).  Closing an epoll wakes
its waiters, which return ``-EBADF`` (a fix, docs/abi.md §12).
"""

from __future__ import annotations

import threading
import time

from .constants import EPOLL_MAX_WATCHES, EPOLL_VALID_BITS, EpollOp, Errno, FdKind
from .fdtable import FdEntry, FdTable


class EpollFd(FdEntry):
    """An epoll instance: ``watches`` maps watched fd → interest mask."""

    kind = FdKind.EPOLL

    def __init__(self, table: FdTable, fd: int) -> None:
        super().__init__(table, fd)
        self.watches: dict[int, int] = {}
        self.changes = 0
        self.cond = threading.Condition(table.lock)

    def wake(self) -> None:
        """Bump the change counter and wake every waiter.  Caller holds the lock."""
        self.changes += 1
        self.cond.notify_all()

    def on_close(self) -> None:
        for fd in self.watches:
            entry = self.table.get(fd)
            if entry is not None:
                entry.watchers.discard(self.fd)
        self.wake()

    def ready(self) -> list[tuple[int, int]]:
        """``(fd, revents)`` of every watched fd with a wanted bit set, lowest fd first."""
        get = self.table.get
        out = []
        for fd, interest in self.watches.items():
            entry = get(fd)
            if entry is not None:
                revents = entry.effective_mask & interest
                if revents:
                    out.append((fd, revents))
        if len(out) > 1:
            out.sort()
        return out


def epoll_create(table: FdTable) -> int:
    """``spear_epoll_create() -> epfd``.  Never fails."""
    return table.alloc(EpollFd).fd


def epoll_ctl(table: FdTable, epfd: int, op: int, fd: int, events: int) -> int:
    """``spear_epoll_ctl``: 0, or -EINVAL / -EBADF / -ENOMEM in the order of docs/abi.md §10."""
    if epfd == fd:
        return -Errno.EINVAL
    with table.lock:
        ep = table.get(epfd)
        target = table.get(fd)
        if ep is None or target is None:
            return -Errno.EBADF
        if not isinstance(ep, EpollFd) or ep.closed:
            return -Errno.EBADF
        if isinstance(target, EpollFd):
            return -Errno.EINVAL
        if op == EpollOp.ADD or op == EpollOp.MOD:
            if fd not in ep.watches and len(ep.watches) >= EPOLL_MAX_WATCHES:
                return -Errno.ENOMEM
            ep.watches[fd] = events & EPOLL_VALID_BITS
            target.watchers.add(epfd)
        elif op == EpollOp.DEL:
            ep.watches.pop(fd, None)
            target.watchers.discard(epfd)
        else:
            return -Errno.EINVAL
        ep.wake()
        return 0


def epoll_wait(
    table: FdTable, epfd: int, max_records: int, timeout_ms: int
) -> list[tuple[int, int]] | int:
    """``spear_epoll_wait`` after the capacity checks: ready ``(fd, revents)`` pairs.

    Returns at most ``max_records`` pairs (lowest fds first; the rest are reported by the
    next call), ``[]`` on timeout or stop, or ``-EBADF`` when ``epfd`` is not an open
    epoll or is closed while waiting.  ``timeout_ms < 0`` waits without limit.
    """
    with table.lock:
        ep = table.get(epfd)
        if not isinstance(ep, EpollFd) or ep.closed:
            return -Errno.EBADF
        ready = ep.ready()
        if ready or timeout_ms == 0:
            return ready[:max_records]
        deadline = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000.0
        while True:
            if table.stopping:
                return []
            if deadline is None:
                ep.cond.wait()
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                ep.cond.wait(remaining)
            if ep.closed:
                return -Errno.EBADF
            ready = ep.ready()
            if ready:
                return ready[:max_records]
