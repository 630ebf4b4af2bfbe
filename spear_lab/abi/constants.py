"""ABI constants: errno numbers, epoll ops and bits, fd kinds and flags, ctl commands.

Every number here is fixed by the ABI (docs/abi.md §1.2, §2, §3, §4, §5, §7) and is the
same on every host platform.  Hostcalls return ``-errno`` on failure.
"""

from __future__ import annotations

import enum


class Errno(enum.IntEnum):
    """Linux errno numbers used by the ABI (returned negated by hostcalls)."""

    EPERM = 1  #: operation not permitted
    ENOENT = 2  #: no such entry
    EIO = 5  #: I/O error: fd in error state, device failure
    EBADF = 9  #: unknown, closed or wrong-kind fd
    EAGAIN = 11  #: nothing to read, or no room to write (try again)
    ENOMEM = 12  #: out of memory; watch set full ([EXT] cap)
    EACCES = 13  #: permission denied
    EFAULT = 14  #: guest pointer or length outside linear memory
    EINVAL = 22  #: invalid argument, command or JSON
    ENOSPC = 28  #: output buffer too small (the needed length is written back)
    EPIPE = 32  #: peer closed the connection (a spear_lab fix, docs/abi.md §12)
    ENOSYS = 38  #: hostcall not implemented (legacy cchat_* / user_stream_*)
    ECONNRESET = 104  #: connection reset
    ENOTCONN = 107  #: not connected
    ETIMEDOUT = 110  #: timed out


def errno_name(rc: int) -> str:
    """Name of a hostcall result: ``"OK"``, a count as decimal, or ``"-EAGAIN"``-style."""
    if rc >= 0:
        return "OK" if rc == 0 else str(rc)
    try:
        return "-" + Errno(-rc).name
    except ValueError:
        return str(rc)


class SpearError(OSError):
    """A hostcall failed; ``errno`` holds the :class:`Errno`, the message says why."""

    def __init__(self, errno: int, reason: str) -> None:
        name = Errno(errno).name if errno in Errno._value2member_map_ else str(errno)
        super().__init__(errno, f"{name}: {reason}")
        self.reason = reason

    @classmethod
    def check(cls, rc: int, what: str) -> int:
        """Return ``rc`` when non-negative, else raise naming the errno and ``what``."""
        if rc < 0:
            raise cls(-rc, what)
        return rc


class EpollOp(enum.IntEnum):
    """Operations of ``spear_epoll_ctl``."""

    ADD = 1  #: watch fd (or replace its interest mask)
    MOD = 2  #: replace the interest mask (registers the watcher too, a fix, docs/abi.md §12)
    DEL = 3  #: stop watching fd (no error when it was not watched)


class EpollEvent(enum.IntFlag):
    """Readiness bits reported by ``spear_epoll_wait``."""

    NONE = 0
    IN = 0x001  #: data to read
    OUT = 0x004  #: room to write
    ERR = 0x008  #: error state (reported only when in the interest mask)
    HUP = 0x010  #: closed or hung up (reported only when in the interest mask)


# Plain ints for the hot paths (IntFlag arithmetic is slow); same values as EpollEvent.
EPOLLIN = int(EpollEvent.IN)
EPOLLOUT = int(EpollEvent.OUT)
EPOLLERR = int(EpollEvent.ERR)
EPOLLHUP = int(EpollEvent.HUP)
#: Interest bits kept by ``spear_epoll_ctl``; any other bit is discarded.
EPOLL_VALID_BITS = 0x01D
#: Bytes of one ``spear_epoll_wait`` record: i32 fd, i32 revents, little-endian.
EPOLL_RECORD_SIZE = 8
#: [EXT] most fds one epoll may watch; beyond it ``spear_epoll_ctl`` returns -ENOMEM.
EPOLL_MAX_WATCHES = 4096

#: Order and names of bits in JSON ``poll_mask`` lists.
POLL_MASK_NAMES = (
    (EpollEvent.IN, "EPOLLIN"),
    (EpollEvent.OUT, "EPOLLOUT"),
    (EpollEvent.ERR, "EPOLLERR"),
    (EpollEvent.HUP, "EPOLLHUP"),
)


def mask_names(mask: int) -> list[str]:
    """The ``EPOLL*`` names of the bits set in ``mask``, in ABI order."""
    return [name for bit, name in POLL_MASK_NAMES if mask & bit]


class FdKind(enum.Enum):
    """Kinds of fd-table entries, with the names reported by ``GET_KIND``."""

    CHAT_SESSION = "ChatSession"
    CHAT_RESPONSE = "ChatResponse"
    EPOLL = "Epoll"
    RTASR = "RtAsr"
    MIC = "Mic"
    USER_STREAM = "UserStream"
    USER_STREAM_CTL = "UserStreamCtl"


class FdFlag(enum.IntFlag):
    """fd flags; stored and reported only (every call is non-blocking)."""

    NONE = 0
    O_NONBLOCK = 0x1  #: reported by GET_FLAGS; has no behavioural effect


#: First fd number of a fresh table; numbers are never reused.
FIRST_FD = 1000


class FdCtl(enum.IntEnum):
    """Commands of ``spear_fd_ctl``."""

    SET_FLAGS = 1  #: input ``{"set":[...],"clear":[...]}``
    GET_FLAGS = 2  #: output ``{"flags":[...]}``
    GET_KIND = 3  #: output ``{"kind":"..."}``
    GET_STATUS = 4  #: output ``{"closed":..,"flags":..,"kind":..,"poll_mask":..}``
    GET_METRICS = 5  #: output ``{}`` for Epoll, RtAsr and Mic


class RtasrCtl(enum.IntEnum):
    """Commands of ``rtasr_ctl`` (7/8 have two names, docs/abi.md §5.6)."""

    SET_PARAM = 1  #: input ``{"key":..,"value":..}``
    CONNECT = 2  #: start the transport
    GET_STATUS = 3  #: output status JSON
    SEND_EVENT = 4  #: queue a client event (JSON)
    FLUSH = 5  #: queue ``input_audio_buffer.commit``
    CLEAR = 6  #: queue ``input_audio_buffer.clear``
    SET_AUTOFLUSH = 7  #: input segmentation JSON
    GET_AUTOFLUSH = 8  #: output segmentation JSON
    SET_SEGMENTATION = 7  #: alias of SET_AUTOFLUSH
    GET_SEGMENTATION = 8  #: alias of GET_AUTOFLUSH


class MicCtl(enum.IntEnum):
    """Commands of ``mic_ctl``."""

    SET_PARAM = 1  #: input config JSON; (re)starts capture
    GET_STATUS = 2  #: output status JSON
    LIST_DEVICES = 3  #: [EXT] output ``{"devices":[...],"default":...}``


class LogLevel(enum.IntEnum):
    """Levels of the ``log`` hostcall (any other number is INFO)."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


#: Longest message the ``log`` hostcall accepts, in bytes.
LOG_MAX_BYTES = 16384


class RtasrState(enum.Enum):
    """States of an rtasr fd, with their GET_STATUS spelling (docs/abi.md §5.1)."""

    INIT = "Init"
    CONFIGURED = "Configured"
    CONNECTING = "Connecting"
    CONNECTED = "Connected"
    DRAINING = "Draining"
    CLOSED = "Closed"
    ERROR = "Error"
