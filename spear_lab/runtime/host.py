"""The Host: every hostcall as a Python method over one fd table.

A Host is one guest instance's view of the ABI.  Its methods take Python values (ints,
bytes) and return what the hostcall returns (an int, or the output bytes of a read or a
GET), so notebooks and tests drive the ABI without any guest; the wasm glue in
:mod:`spear_lab.runtime.linker` adds only the guest-memory side of docs/abi.md §1.

Hosts made with :meth:`Host.fork` share one :class:`HostContext` (configuration, I/O loop,
trace, transports) but each has its own fd table, numbered from 1000.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..abi import epoll as _epoll
from ..abi.constants import LOG_MAX_BYTES, Errno, LogLevel, MicCtl, RtasrCtl
from ..abi.fdctl import fd_ctl as _fd_ctl
from ..abi.fdtable import FdTable
from ..abi.jsonfmt import loads
from ..fds.rtasr import RtAsrFd
from ..fds.segmentation import Segmentation
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
#: Default host ceiling on every guest-settable queue limit: 16 MiB (the reference default
#: is 1 MiB; 16 MiB holds about 5.8 minutes of 24 kHz pcm16).
HOST_QUEUE_CEILING = 16 * 1024 * 1024
#: Default ceiling on the SET_PARAM values one rtasr fd holds: 1 MiB.
HOST_PARAM_CEILING = 1024 * 1024
#: Default silence after a file microphone's audio in ``spear-lab run``, in ms.  A server VAD closes a turn
#: after ``silence_ms`` of quiet (the local server's default is 200 ms, the OpenAI
#: default 500 ms, guests ask for up to ~1000 ms) and the recogniser then needs time to
#: answer before the guest sees EPOLLHUP: 1000 ms of silence + up to 1500 ms of
#: recognition and delivery.
DEFAULT_MIC_TAIL_MS = 2500


@dataclass
class HostConfig:
    """Host-side policy.  Nothing here is ever visible to a guest.

    - ``backends``: a :class:`spear_lab.transports.backends.BackendRegistry` (None = the
      default registry: ``local`` embedded server, ``stub``, ``openai``).
    - ``routes``: guest backend name → host backend name (``{"openai-realtime-asr":
      "local"}``), applied before the registry lookup (``spear-lab run --route``).
    - ``stub_fallback``: a ``transport=websocket`` CONNECT that cannot be routed falls back
      to the stub (reference behaviour, docs/abi.md §5.4; one WARNING per context) instead of failing
      with -EIO.  Off by default: a guest can still ask with ``fallback={"to_stub":true}``.
    - ``allow_guest_ws_url``: ``"loopback"`` (default), ``True`` or ``False``: which
      guest-supplied ``ws_url`` values are honoured; credentials never go to them.
    - ``mic_device``: what a guest's ``source: "device"`` opens: ``"device"`` (the real
      default input), ``"device:NAME"`` (the input device the host names), ``"stub"``,
      ``"file:PATH"``, or ``"browser"`` (the browser's microphone: the feed in
      ``extra["browser_mic"]``, else the newest ``spear_lab.views.BrowserMic``)
      (docs/abi.md §7.3).
    - ``mic_file``: the WAV a guest's ``source: "file"`` reads (chosen by the host only).
    - ``mic_file_realtime``: pace file sources in real time (False: as fast as the guest
      reads, nothing dropped); ``mic_file_loop``: restart at the end instead of EPOLLHUP;
      ``mic_file_tail_ms``: silence (ms) played after the file, in real time even when
      the file is not, before EPOLLHUP, so a server VAD can close the last utterance and
      its transcript can arrive (0 here; ``spear-lab run`` uses
      :data:`DEFAULT_MIC_TAIL_MS`).
    - ``mic_device_rate``: rate (Hz) to open input devices at; None = the device's default.
    - ``max_send_queue_bytes`` / ``max_recv_queue_bytes`` / ``max_mic_queue_bytes``: host
      ceilings (bytes) on the queue limits a guest may set; ``max_param_bytes``: total
      bytes of SET_PARAM values one rtasr fd may hold (more → -ENOMEM).  None = no
      ceiling.  Defaults: :data:`HOST_QUEUE_CEILING` and :data:`HOST_PARAM_CEILING`.
    - ``local_server``: options of the embedded server the ``local`` backend starts
      (fields of ``spear_lab.server.ServerOptions``), e.g. ``{"engine": "pocketsphinx"}``,
      ``{"whisper_model": "base.en"}`` or ``{"vad": "statistical"}``.
    """

    backends: Any = None
    routes: dict[str, str] = field(default_factory=dict)
    stub_fallback: bool = False
    allow_guest_ws_url: Any = "loopback"
    mic_device: str = "device"
    mic_file: str | None = None
    mic_file_realtime: bool = True
    mic_file_loop: bool = False
    mic_file_tail_ms: int = 0
    mic_device_rate: int | None = None
    max_send_queue_bytes: int | None = HOST_QUEUE_CEILING
    max_recv_queue_bytes: int | None = HOST_QUEUE_CEILING
    max_mic_queue_bytes: int | None = HOST_QUEUE_CEILING
    max_param_bytes: int | None = HOST_PARAM_CEILING
    local_server: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class HostContext:
    """What forks of one Host share: config, I/O loop, trace, transport and audio hooks."""

    def __init__(self, config: HostConfig | None = None, io: IoLoop | None = None,
                 trace: Any = None) -> None:
        self.config = config or HostConfig()
        self._own_io = io is None
        self.io = io or IoLoop()
        self.trace = trace
        self._services: dict[str, Any] = {}
        self._lock = threading.Lock()
        #: Called with every new Host made by :meth:`Host.fork` (e.g. to attach a Trace).
        self.fork_listeners: list[Callable[["Host"], None]] = []
        #: Host warnings already given, by key (see :meth:`warn_once`).
        self.warnings: dict[str, str] = {}
        #: Called as ``listener(key, message)`` for each first warning of a key.
        self.warning_listeners: list[Callable[[str, str], None]] = []

    def warn_once(self, key: str, message: str) -> bool:
        """Log ``message`` at WARNING the first time ``key`` is seen in this context (the
        CLI prints it); later ones at DEBUG.  True when it was the first."""
        with self._lock:
            first = key not in self.warnings
            if first:
                self.warnings[key] = message
        if not first:
            log.debug("%s", message)
            return False
        listeners = list(self.warning_listeners)
        if listeners:
            for listener in listeners:
                listener(key, message)
        else:
            log.warning("%s", message)
        return True

    def service(self, name: str, factory: Callable[[], Any]) -> Any:
        """A shared helper object (e.g. the embedded server), made on first use."""
        with self._lock:
            if name not in self._services:
                self._services[name] = factory()
            return self._services[name]

    def close(self) -> None:
        """Stop shared services and, when owned, the I/O loop."""
        with self._lock:
            services, self._services = list(self._services.values()), {}
        for svc in services:
            close = getattr(svc, "close", None) or getattr(svc, "stop", None)
            if close is not None:
                try:
                    close()
                except Exception:  # pragma: no cover - best effort teardown
                    log.exception("closing %r failed", svc)
        if self._own_io:
            self.io.close()


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
        child = Host(context=self.context, name=name)
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
            RtAsrFd, connector=self._connect_rtasr,
            max_send_cap=cfg.max_send_queue_bytes, max_recv_cap=cfg.max_recv_queue_bytes,
            max_param_bytes=cfg.max_param_bytes,
        ).fd

    def _connect_rtasr(self, fd: RtAsrFd):
        from ..transports.factory import open_transport

        return open_transport(fd, self.context)

    def rtasr_ctl(self, fd: int, cmd: int, payload: bytes | None = None) -> int | bytes:
        """0, output JSON bytes, or -EBADF / -EINVAL / -EIO / -EAGAIN / -EPIPE (docs/abi.md §5.6)."""
        with self.table.lock:
            if self.table.get(fd) is None:
                return -Errno.EBADF
            if cmd not in RtasrCtl._value2member_map_:
                return -Errno.EINVAL
            if not _rtasr_payload_ok(cmd, payload):
                return -Errno.EINVAL
            entry = self.table.lookup(fd, RtAsrFd)
            if isinstance(entry, int):
                return entry
            return entry.ctl(cmd, payload)

    def rtasr_write(self, fd: int, data: bytes) -> int:
        """Bytes queued, or -EBADF / -EIO / -EPIPE / -EAGAIN (docs/abi.md §5.7)."""
        with self.table.lock:
            entry = self.table.lookup(fd, RtAsrFd)
            return entry if isinstance(entry, int) else entry.write(data)

    def rtasr_write_from(self, fd: int, length: int, fetch: Callable[[], bytes | None]) -> int:
        """``rtasr_write`` of ``length`` bytes that ``fetch()`` copies from the guest only
        after the fd, its kind, its state and the queue's room accepted them (so a write
        to a bad fd or a full queue copies nothing).  -EFAULT when ``fetch`` fails."""
        with self.table.lock:
            entry = self.table.lookup(fd, RtAsrFd)
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
            entry = self.table.lookup(fd, RtAsrFd)
            return entry if isinstance(entry, int) else entry.read(deliver)

    def rtasr_close(self, fd: int) -> int:
        """Generic close (any kind)."""
        return self.table.close(fd)

    # -- mic ------------------------------------------------------------------------------

    def mic_create(self) -> int:
        """New microphone fd; nothing is captured until SET_PARAM."""
        from ..fds.mic import MicFd
        from ..audio.sources import SourceFactory

        factory = self.context.service("mic_sources", lambda: SourceFactory(self.context))
        return self.table.alloc(MicFd, sources=factory,
                                max_queue_cap=self.config.max_mic_queue_bytes).fd

    def mic_ctl(self, fd: int, cmd: int, payload: bytes | None = None) -> int | bytes:
        """0, output JSON bytes, or -EBADF / -EINVAL / -EIO (docs/abi.md §7.6)."""
        from ..fds.mic import MicFd

        with self.table.lock:
            if self.table.get(fd) is None:
                return -Errno.EBADF
            if cmd not in MicCtl._value2member_map_:
                return -Errno.EINVAL
            if cmd == MicCtl.SET_PARAM and not loads(payload)[0]:
                return -Errno.EINVAL
            entry = self.table.lookup(fd, MicFd)
            if isinstance(entry, int):
                return entry
            return entry.ctl(cmd, payload)

    def mic_read(self, fd: int, cap: int = 1 << 20) -> bytes | int:
        """One frame, or -EBADF / -EAGAIN / -ENOSPC (frame kept when ``cap`` is too small)."""
        return _read_py(self.mic_read_into, fd, cap)

    def mic_read_into(self, fd: int, deliver: Callable[[bytes], int]) -> Any:
        """``mic_read`` with a custom ``deliver(payload) -> rc``."""
        from ..fds.mic import MicFd

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

    def _repr_html_(self) -> str:
        """The fd table as an HTML table (for notebooks)."""
        from ..views.html import fd_table_html

        return fd_table_html(self)


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


def _rtasr_payload_ok(cmd: int, payload: bytes | None) -> bool:
    """JSON checks that precede the fd-kind check (docs/abi.md §5.6)."""
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
