"""The fd table (docs/abi.md §2): numbering, readiness masks, watchers, generic close.

One table per guest instance.  Numbers start at 1000, grow by one across every kind and
are never reused; closed entries stay as tombstones.  All state is guarded by one lock,
``FdTable.lock``; every method documented "caller holds the lock" expects it held.
"""

from __future__ import annotations

import threading
from typing import Callable, ClassVar, Iterator, TypeVar

from .constants import EPOLLHUP, FIRST_FD, Errno, FdFlag, FdKind
from .notes import Note

#: Called as ``observer(fd, old_mask, new_mask)`` after an effective mask changes.
ReadinessObserver = Callable[[int, int, int], None]
#: Called as ``listener(fd, note)`` for queue levels and transport events (:mod:`.notes`).
NoteListener = Callable[[int, Note], None]

E = TypeVar("E", bound="FdEntry")


class FdEntry:
    """One fd: kind, flags, stored readiness ``mask``, watching epolls, ``closed``.

    Subclasses add kind-specific state and override :meth:`on_close`.
    """

    kind: ClassVar[FdKind]
    initial_mask: ClassVar[int] = 0

    def __init__(self, table: "FdTable", fd: int) -> None:
        self.table = table
        self.fd = fd
        self.flags = FdFlag.NONE
        self.mask = self.initial_mask
        self.watchers: set[int] = set()
        self.closed = False

    @property
    def effective_mask(self) -> int:
        """Stored mask, plus HUP once closed."""
        return self.mask | EPOLLHUP if self.closed else self.mask

    def set_mask(self, mask: int) -> None:
        """Store a new readiness mask; wake watchers if it changed.  Caller holds the lock."""
        if mask != self.mask:
            old = self.effective_mask
            self.mask = mask
            self.table.readiness_changed(self, old)

    def on_close(self) -> None:
        """Release kind-specific resources.  Caller holds the lock."""

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} fd={self.fd} {state} mask={self.effective_mask:#x}>"


class FdTable:
    """fd number → entry, with the shared lock and the generic close of docs/abi.md §2.4."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._entries: dict[int, FdEntry] = {}
        self._next = FIRST_FD
        self.observers: list[ReadinessObserver] = []
        self.listeners: list[NoteListener] = []
        #: Set by a stop request: blocked waits return at once.
        self.stopping = False

    def alloc(self, cls: type[E], *args, **kwargs) -> E:
        """Create a new entry of ``cls`` with the next fd number.  Never fails."""
        with self.lock:
            fd = self._next
            self._next += 1
            entry = cls(self, fd, *args, **kwargs)
            self._entries[fd] = entry
            if entry.mask:
                for observer in self.observers:
                    observer(fd, 0, entry.mask)
            return entry

    def get(self, fd: int) -> FdEntry | None:
        """The entry for ``fd`` (open or closed), or None when never allocated."""
        return self._entries.get(fd)

    def lookup(self, fd: int, cls: type[E]) -> E | int:
        """The open entry of kind ``cls``, or ``-EBADF``."""
        entry = self._entries.get(fd)
        if entry is None or entry.closed or not isinstance(entry, cls):
            return -Errno.EBADF
        return entry

    def __iter__(self) -> Iterator[FdEntry]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def open_fds(self) -> list[int]:
        """Numbers of the entries not yet closed."""
        with self.lock:
            return [fd for fd, e in self._entries.items() if not e.closed]

    def readiness_changed(self, entry: FdEntry, old_effective: int) -> None:
        """Wake every epoll watching ``entry`` and tell observers.  Caller holds the lock."""
        for epfd in entry.watchers:
            ep = self._entries.get(epfd)
            if ep is not None:
                ep.wake()  # type: ignore[attr-defined]
        new = entry.effective_mask
        if new != old_effective:
            for observer in self.observers:
                observer(entry.fd, old_effective, new)

    def note(self, fd: int, note: Note) -> None:
        """Tell listeners what happened on ``fd``: a :class:`~.notes.Note` (a queue level,
        an event).  Caller holds the lock."""
        for listener in self.listeners:
            listener(fd, note)

    def close(self, fd: int) -> int:
        """Generic close of any kind: 0, or -EBADF for an unknown fd.  Idempotent."""
        with self.lock:
            entry = self._entries.get(fd)
            if entry is None:
                return -Errno.EBADF
            if entry.closed:
                return 0
            old = entry.effective_mask
            entry.closed = True
            entry.mask |= EPOLLHUP
            entry.on_close()
            self.readiness_changed(entry, old)
            return 0

    def close_all(self) -> int:
        """Close every open entry (instance teardown); returns how many were open."""
        with self.lock:
            fds = [fd for fd, e in self._entries.items() if not e.closed]
            for fd in fds:
                self.close(fd)
            return len(fds)

    def request_stop(self) -> None:
        """Make every blocked ``spear_epoll_wait`` of this table return at once."""
        with self.lock:
            self.stopping = True
            for entry in self._entries.values():
                wake = getattr(entry, "wake", None)
                if wake is not None:
                    wake()
