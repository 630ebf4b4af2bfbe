"""The Host: every hostcall as a Python method over one fd table.

A Host is one guest instance's view of the ABI.  Its methods take Python values (ints,
bytes) and return what the hostcall returns (an int, or the output bytes of a read or a
GET), so notebooks and tests drive the ABI without any guest; the wasm glue in
:mod:`spear_lab.runtime.linker` adds only the guest-memory side of docs/abi.md §1.

Hosts made with :meth:`Host.fork` share one :class:`HostContext` (configuration, I/O loop,
trace, the edges' ports) but each has its own fd table, numbered from 1000.  The checks
of each hostcall live in the ABI core (``spear_lab.abi``, ``spear_lab.fds``); a Host adds
the lock, the host's ceilings and its ports.  ``Host()`` is the bare core: no transport
carries rtasr audio and mic fds produce nothing; ``spear_lab.Host()`` is wired to the
real edges (:mod:`spear_lab.session.wiring`).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any, Callable

from ..abi import epoll as _epoll
from ..abi.constants import LOG_MAX_BYTES, Errno, LogLevel
from ..abi.fdctl import fd_ctl as _fd_ctl
from ..abi.fdtable import FdTable
from ..fds import ctl as _ctl
from ..fds.mic import MicFd
from ..fds.rtasr import RtasrFd
from .config import HostConfig
from .context import HostContext
from .ioloop import IoLoop
from .logtext import printable

log = logging.getLogger(__name__)
guest_log = logging.getLogger("spear_lab.guest")

_LOG_LEVELS = {
    LogLevel.TRACE: 5,
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARN: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
}

#: Guest log messages a Host keeps (the oldest half goes beyond either bound).
LOG_KEEP_MESSAGES = 10_000
LOG_KEEP_CHARS = 4 * 1024 * 1024


class Host:
    """One fd table plus the hostcalls of docs/abi.md §1.1 as methods.

    Results follow the ABI: non-negative on success, ``-errno`` on failure.  Read-style
    calls return the payload bytes on success.
    """

    def __init__(self, config: HostConfig | None = None, *, context: HostContext | None = None,
                 name: str = "host") -> None:
        self.context = context or HostContext(config)
        self.name = name
        self.table = FdTable()
        #: Guest log messages ``(wall time s, level, text)``, the newest ones, at most
        #: :data:`LOG_KEEP_MESSAGES` and :data:`LOG_KEEP_CHARS` characters in all.
        self.logs: list[tuple[float, int, str]] = []
        #: Messages logged in all (those no longer in ``logs`` included).
        self.logs_total = 0
        self._log_chars = 0
        self._log_lock = threading.Lock()
        self._sleepers: set[threading.Condition] = set()
        #: Hostcalls that failed with an unexpected Python exception (answered -EIO).
        self.internal_errors = 0

    @property
    def config(self) -> HostConfig:
        return self.context.config

    @property
    def io(self) -> IoLoop:
        return self.context.io

    def fork(self, name: str = "guest") -> "Host":
        """A new Host with a fresh fd table sharing this one's context."""
        child = type(self)(context=self.context, name=name)
        for listener in list(self.context.fork_listeners):
            listener(child)
        return child

    # -- epoll and generic fd control -----------------------------------------------------

    def spear_epoll_create(self) -> int:
        """New epoll fd (never fails)."""
        return _epoll.epoll_create(self.table)

    def spear_epoll_ctl(self, epfd: int, op: int, fd: int, events: int) -> int:
        """0, or -EINVAL / -EBADF / -ENOMEM (docs/abi.md §3.7)."""
        return _epoll.epoll_ctl(self.table, epfd, op, fd, events)

    def spear_epoll_wait(self, epfd: int, max_records: int = 64,
                         timeout_ms: int = 0) -> list[tuple[int, int]] | int:
        """Ready ``(fd, revents)`` pairs (at most ``max_records``), or -EBADF / -ENOSPC."""
        if max_records < 1:
            return -Errno.ENOSPC
        return _epoll.epoll_wait(self.table, epfd, max_records, timeout_ms)

    def spear_epoll_close(self, fd: int) -> int:
        """Generic close (any kind): 0, or -EBADF for an unknown fd."""
        return self.table.close(fd)

    def spear_fd_ctl(self, fd: int, cmd: int, payload: bytes | None = None) -> int | bytes:
        """0, output JSON bytes, or -EINVAL / -EBADF (docs/abi.md §4)."""
        return _fd_ctl(self.table, fd, cmd, payload)

    # -- rtasr ----------------------------------------------------------------------------

    def rtasr_create(self) -> int:
        """New realtime-ASR fd in state ``Init`` (never fails)."""
        cfg = self.config
        return self.table.alloc(
            RtasrFd, connector=self.context.connector,
            max_send_cap=cfg.max_send_queue_bytes, max_recv_cap=cfg.max_recv_queue_bytes,
            max_param_bytes=cfg.max_param_bytes,
        ).fd

    def rtasr_ctl(self, fd: int, cmd: int, payload: bytes | None = None) -> int | bytes:
        """0, output JSON bytes, or -EBADF / -EINVAL / -EIO / -EAGAIN / -EPIPE (docs/abi.md §5.6)."""
        with self.table.lock:
            return _ctl.rtasr_ctl(self.table, fd, cmd, payload)

    def rtasr_write(self, fd: int, data: bytes) -> int:
        """Bytes queued, or -EBADF / -EIO / -EPIPE / -EAGAIN (docs/abi.md §5.7)."""
        with self.table.lock:
            entry = self.table.lookup(fd, RtasrFd)
            return entry if isinstance(entry, int) else entry.write(data)

    def rtasr_write_from(self, fd: int, length: int, fetch: Callable[[], bytes | None]) -> int:
        """``rtasr_write`` of ``length`` bytes that ``fetch()`` copies from the guest only
        after the fd, its kind, its state and the queue's room accepted them (so a write
        to a bad fd or a full queue copies nothing).  -EFAULT when ``fetch`` fails."""
        with self.table.lock:
            entry = self.table.lookup(fd, RtasrFd)
            if isinstance(entry, int):
                return entry
            rc = entry.check_write(length)
            if rc or length == 0:
                return rc
            data = fetch()
            if data is None:
                return -Errno.EFAULT
            return entry.write(data)

    def rtasr_read(self, fd: int, cap: int = 1 << 20) -> bytes | int:
        """One event, or -EBADF / -EAGAIN / -ENOSPC (event kept when ``cap`` is too small)."""
        return _read_py(self.rtasr_read_into, fd, cap)

    def rtasr_read_into(self, fd: int, deliver: Callable[[bytes], int]) -> Any:
        """``rtasr_read`` with a custom ``deliver(payload) -> rc`` (the wasm glue's)."""
        with self.table.lock:
            entry = self.table.lookup(fd, RtasrFd)
            return entry if isinstance(entry, int) else entry.read(deliver)

    def rtasr_close(self, fd: int) -> int:
        """Generic close (any kind)."""
        return self.table.close(fd)

    # -- mic ------------------------------------------------------------------------------

    def mic_create(self) -> int:
        """New microphone fd; nothing is captured until SET_PARAM."""
        return self.table.alloc(MicFd, sources=self.context.sources,
                                max_queue_cap=self.config.max_mic_queue_bytes).fd

    def mic_ctl(self, fd: int, cmd: int, payload: bytes | None = None) -> int | bytes:
        """0, output JSON bytes, or -EBADF / -EINVAL / -EIO (docs/abi.md §7.6)."""
        with self.table.lock:
            return _ctl.mic_ctl(self.table, fd, cmd, payload)

    def mic_read(self, fd: int, cap: int = 1 << 20) -> bytes | int:
        """One frame, or -EBADF / -EAGAIN / -ENOSPC (frame kept when ``cap`` is too small)."""
        return _read_py(self.mic_read_into, fd, cap)

    def mic_read_into(self, fd: int, deliver: Callable[[bytes], int]) -> Any:
        """``mic_read`` with a custom ``deliver(payload) -> rc``."""
        with self.table.lock:
            entry = self.table.lookup(fd, MicFd)
            return entry if isinstance(entry, int) else entry.read(deliver)

    def mic_close(self, fd: int) -> int:
        """Generic close (any kind)."""
        return self.table.close(fd)

    # -- utilities ------------------------------------------------------------------------

    def log(self, level: int, msg: bytes) -> int:
        """Record a guest log line; -EINVAL when longer than 16384 bytes."""
        if len(msg) > LOG_MAX_BYTES:
            return -Errno.EINVAL
        text = msg.decode("utf-8", errors="replace")
        with self._log_lock:
            self.logs.append((time.time(), level, text))
            self.logs_total += 1
            self._log_chars += len(text)
            if len(self.logs) > LOG_KEEP_MESSAGES or self._log_chars > LOG_KEEP_CHARS:
                cut = len(self.logs) // 2 or 1
                self._log_chars -= sum(len(t) for _, _, t in self.logs[:cut])
                del self.logs[:cut]
        trace = self.context.trace
        if trace is not None:
            trace.log(self.name, level, text)
        if guest_log.isEnabledFor(_LOG_LEVELS.get(level, logging.INFO)):
            guest_log.log(_LOG_LEVELS.get(level, logging.INFO), "%s: %s", self.name, printable(text))
        return 0

    def logs_since(self, total: int) -> tuple[list[tuple[float, int, str]], int]:
        """The messages logged after the first ``total`` ones (those still kept), and the
        new total: ``new, total = host.logs_since(total)`` follows the log."""
        with self._log_lock:
            n = min(self.logs_total - total, len(self.logs))
            return (self.logs[-n:] if n > 0 else []), self.logs_total

    @staticmethod
    def time_now_ms() -> int:
        """Wall-clock milliseconds since the Unix epoch."""
        return time.time_ns() // 1_000_000

    @staticmethod
    def wall_time_s() -> int:
        """Wall-clock seconds since the Unix epoch."""
        return time.time_ns() // 1_000_000_000

    @staticmethod
    def random_i64() -> int:
        """A uniformly random signed 64-bit value."""
        return int.from_bytes(secrets.token_bytes(8), "little", signed=True)

    def sleep_ms(self, ms: int) -> None:
        """Block the calling thread ``ms`` milliseconds (negative = 0, a fix, docs/abi.md §12); a stop
        request ends the sleep early."""
        if ms > 0:
            with self.table.lock:
                cond = threading.Condition(self.table.lock)
                self._sleepers.add(cond)
                try:
                    deadline = time.monotonic() + ms / 1000.0
                    while not self.table.stopping:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        cond.wait(remaining)
                finally:
                    self._sleepers.discard(cond)

    # -- lifecycle ------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Wake blocked waits and sleeps; the glue then traps the guest's next hostcall."""
        with self.table.lock:
            self.table.request_stop()
            for cond in list(self._sleepers):
                cond.notify_all()

    @property
    def stopping(self) -> bool:
        return self.table.stopping

    def close(self) -> int:
        """Close every open fd of this table (stops their transports and sources)."""
        return self.table.close_all()

    def shutdown(self) -> None:
        """Close every fd and the shared context (I/O loop, embedded server)."""
        self.close()
        self.context.close()

    def __enter__(self) -> "Host":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<Host {self.name} fds={len(self.table)} open={len(self.table.open_fds())}>"

def _read_py(read_into: Callable[[int, Callable[[bytes], int]], int], fd: int, cap: int) -> bytes | int:
    """Run a read for a Python caller: the payload, or -errno (-ENOSPC above ``cap``)."""
    got: list[bytes] = []

    def deliver(payload: bytes) -> int:
        if len(payload) > cap:
            return -Errno.ENOSPC
        got.append(payload)
        return len(payload)

    rc = read_into(fd, deliver)
    return got[0] if rc >= 0 else rc

