"""A small Pythonic face for notebooks over the :class:`~spear_lab.host.host.Host` hostcalls.

Hostcalls return ``-errno``; these wrappers raise :class:`~spear_lab.abi.SpearError`
instead, naming the errno and the reason (``EAGAIN: send queue full: 1048576 of 1048576
bytes``).  The one expected "nothing now" result, ``-EAGAIN`` on a read, becomes ``None``.

- :class:`Rtasr` — one realtime-ASR fd (``rtasr_*``): params, connect, write audio, read
  events as dicts, flush/clear, segmentation, status.
- :class:`Epoll` — one epoll fd: add/modify/remove fds (or wrapper objects), wait.
- :class:`Mic` — one microphone fd (``mic_*``): configure, read frames, status.

Each wrapper closes its fd on leaving a ``with`` block, and when its constructor's SET_PARAM
calls fail (the fd never leaks).  ``status()`` returns GET_STATUS as a frozen dataclass
(:class:`RtasrStatus`, :class:`MicStatus`); ``status_dict()`` returns the raw dict.

Example (the default stub transport; 960 bytes = 20 ms of 24 kHz pcm16):

>>> from spear_lab import Host
>>> from spear_lab.api import Rtasr
>>> host = Host()
>>> asr = Rtasr(host, stub_event_interval_ms=20)
>>> asr.status().state
'Configured'
>>> asr.connect()
>>> asr.write(bytes(960))
960
>>> event = asr.read(timeout_ms=2000)
>>> event["type"], event["seq"]
('transcription.delta', 1)
>>> asr.segmentation["strategy"]
'server_vad'
>>> asr.close()
>>> host.shutdown()
"""

from __future__ import annotations

import abc
import json
import math
import time
from typing import TYPE_CHECKING, Any, Iterable, Self

from .abi.constants import EpollEvent, EpollOp, Errno, MicCtl, RtasrCtl, SpearError, errno_name
from .abi.jsonfmt import dumpb as _dumpb
from .fds.status import MicStatus, RtasrStatus

if TYPE_CHECKING:
    from .host import Host

__all__ = ["Epoll", "Mic", "MicStatus", "Rtasr", "RtasrStatus", "SpearError"]

_EAGAIN = -Errno.EAGAIN
#: Python callers have no buffer limit: read events of any size.
_NO_CAP = 1 << 62


def dumpb(obj: Any) -> bytes:
    """Compact JSON for a ctl payload; SpearError(EINVAL) when ``obj`` is not JSON."""
    try:
        return _dumpb(obj)
    except (TypeError, ValueError) as exc:
        raise SpearError(Errno.EINVAL, f"payload is not JSON: {exc}") from None


def _number(name: str, value: Any, *, minimum: float | None = None,
            integer: bool = False) -> Any:
    """``value`` checked as a finite real number (an int when ``integer``), at least
    ``minimum``; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, not {value!r}")
    if integer and not isinstance(value, int):
        if value != int(value):
            raise ValueError(f"{name} must be a whole number, not {value!r}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value!r}")
    return value


def _timeout_ms(name: str, value: Any) -> int:
    """A hostcall timeout in ms: a finite number, negative = forever (-1); ValueError."""
    value = _number(name, value)
    return -1 if value < 0 else int(math.ceil(value))


def _fd_of(obj: "int | Any") -> int:
    """An fd number from an int or any object with an ``fd`` attribute."""
    fd = getattr(obj, "fd", obj)
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"expected an fd number or an object with .fd, got {type(obj).__name__}")
    return fd


class _Wrapper(abc.ABC):
    """What the fd wrappers share: ``with`` closes the fd; the repr names it."""

    fd: int

    @abc.abstractmethod
    def close(self) -> None:
        """Close the fd (idempotent)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self.fd}>"


class Rtasr(_Wrapper):
    """One realtime-ASR fd on ``host``; keyword arguments become SET_PARAM calls.

    Every method raises :class:`SpearError` on a hostcall error, except that :meth:`read`
    returns None when nothing is queued.
    """

    def __init__(self, host: "Host", **params: Any) -> None:
        self.host = host
        self.fd: int = host.rtasr_create()
        self._epfd: int | None = None
        self._closed = False
        try:
            for key, value in params.items():
                self.set_param(key, value)
        except BaseException:
            self.close()
            raise

    # -- errors -------------------------------------------------------------------------

    def _raise(self, rc: int, what: str, extra: str = "") -> None:
        """Raise SpearError for ``rc`` with a reason saying why (never includes secrets):
        the rule the fd recorded when it refused the call (``RtasrFd.last_refusal``)."""
        errno = -rc
        refusal = getattr(self.host.table.get(self.fd), "last_refusal", None)
        rule = refusal.rule if refusal is not None and refusal.errno == errno else None
        if errno == Errno.EBADF:
            reason = f"fd {self.fd} is closed or not an rtasr fd"
        elif errno == Errno.EIO and rule is not None:
            reason = f"fd {self.fd} is {rule}"
        elif errno == Errno.EPIPE:
            reason = f"fd {self.fd}: the peer closed the connection"
        elif errno == Errno.EAGAIN and rule is not None and extra:
            reason = f"{rule} ({extra})"
        elif errno == Errno.EINVAL:
            reason = f"{what} rejected: invalid argument{': ' + extra if extra else ''}"
        else:
            reason = f"{what} failed ({errno_name(rc)})"
        raise SpearError(errno, reason)

    def _ctl(self, cmd: RtasrCtl, payload: bytes | None = None, what: str = "", extra: str = "") -> int | bytes:
        rc = self.host.rtasr_ctl(self.fd, cmd, payload)
        if isinstance(rc, int) and rc < 0:
            self._raise(rc, what or cmd.name, extra)
        return rc

    def _json(self, cmd: RtasrCtl) -> Any:
        """The JSON output of a GET command, decoded."""
        out = self._ctl(cmd)
        assert isinstance(out, bytes)
        return json.loads(out)

    # -- control plane --------------------------------------------------------------------

    def set_param(self, key: str, value: Any) -> None:
        """SET_PARAM ``{"key": key, "value": value}`` (docs/abi.md §5.2)."""
        self._ctl(RtasrCtl.SET_PARAM, dumpb({"key": key, "value": value}), f"SET_PARAM {key!r}",
                  "key must be a non-empty string" if not (isinstance(key, str) and key) else "")

    def connect(self) -> None:
        """CONNECT: start the transport (returns at once; failures show in :meth:`status`)."""
        self._ctl(RtasrCtl.CONNECT, what="CONNECT")

    def status(self) -> RtasrStatus:
        """GET_STATUS as a :class:`RtasrStatus`."""
        return RtasrStatus.from_json(self.status_dict())

    def status_dict(self) -> dict[str, Any]:
        """GET_STATUS as the raw dict."""
        return self._json(RtasrCtl.GET_STATUS)

    def send_event(self, event: Any) -> None:
        """SEND_EVENT: queue a client event (any JSON value) for the transport."""
        self._ctl(RtasrCtl.SEND_EVENT, dumpb(event), "SEND_EVENT", "control text")

    def flush(self) -> None:
        """FLUSH: queue ``input_audio_buffer.commit``."""
        self._ctl(RtasrCtl.FLUSH, what="FLUSH", extra="commit")

    def clear(self) -> None:
        """CLEAR: queue ``input_audio_buffer.clear`` (local queued audio stays)."""
        self._ctl(RtasrCtl.CLEAR, what="CLEAR", extra="clear")

    @property
    def segmentation(self) -> dict[str, Any]:
        """GET_AUTOFLUSH as a dict; assigning a dict runs SET_AUTOFLUSH (docs/abi.md §6.2)."""
        return self._json(RtasrCtl.GET_AUTOFLUSH)

    @segmentation.setter
    def segmentation(self, config: dict[str, Any]) -> None:
        self._ctl(RtasrCtl.SET_AUTOFLUSH, dumpb(config), "SET_AUTOFLUSH", "not a valid segmentation (docs/abi.md §6.2)")

    # -- data plane -----------------------------------------------------------------------

    def write(self, data: bytes) -> int:
        """Queue one audio chunk (all or nothing); raises EAGAIN when it does not fit."""
        rc = self.host.rtasr_write(self.fd, bytes(data))
        if rc < 0:
            self._raise(rc, "write", f"{len(data)}-byte write")
        return rc

    def write_all(self, data: bytes, chunk_bytes: int = 4800, timeout_s: float | None = None) -> int:
        """Write ``data`` in chunks, waiting for EPOLLOUT when the queue is full.

        Returns the bytes written; raises TimeoutError (with the count in the message)
        when ``timeout_s`` passes first, ValueError for a ``chunk_bytes`` below 1 or a
        ``timeout_s`` that is not a finite non-negative number.
        """
        chunk_bytes = _number("chunk_bytes", chunk_bytes, minimum=1, integer=True)
        if timeout_s is not None:
            timeout_s = _number("timeout_s", timeout_s, minimum=0)
        view = memoryview(bytes(data))
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        done = 0
        while done < len(view):
            chunk = view[done:done + chunk_bytes]
            rc = self.host.rtasr_write(self.fd, bytes(chunk))
            if rc == _EAGAIN:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"rtasr fd {self.fd}: wrote {done} of {len(view)} bytes")
                self._wait(EpollEvent.OUT | EpollEvent.ERR | EpollEvent.HUP,
                           100 if remaining is None else max(1, min(100, int(remaining * 1000))))
                continue
            if rc < 0:
                self._raise(rc, "write", f"{len(chunk)}-byte write")
            done += rc
        return done

    def read(self, timeout_ms: int = 0) -> dict[str, Any] | None:
        """The next event as a dict, or None when none arrives within ``timeout_ms``.

        Events that are not JSON objects come back as ``{"type": None, "raw": text}``.
        """
        got = self.read_bytes(timeout_ms)
        if got is None:
            return None
        try:
            obj = json.loads(got)
        except ValueError:
            return {"type": None, "raw": got.decode("utf-8", errors="replace")}
        return obj if isinstance(obj, dict) else {"type": None, "raw": obj}

    def read_bytes(self, timeout_ms: int = 0) -> bytes | None:
        """The next event's raw bytes, or None (see :meth:`read`).  ``timeout_ms``: 0
        polls, negative waits without limit; ValueError when it is not a finite number."""
        timeout_ms = _timeout_ms("timeout_ms", timeout_ms)
        out = self.host.rtasr_read(self.fd, _NO_CAP)
        if out == _EAGAIN and timeout_ms != 0:
            self._wait(EpollEvent.IN | EpollEvent.ERR | EpollEvent.HUP, timeout_ms)
            out = self.host.rtasr_read(self.fd, _NO_CAP)
        if out == _EAGAIN:
            return None
        if isinstance(out, int):
            self._raise(out, "read")
        return out  # type: ignore[return-value]

    def read_all(self) -> list[dict[str, Any]]:
        """Every event queued now (possibly none)."""
        return list(iter(self.read, None))

    def events(self, duration_s: float, poll_ms: int = 50) -> Iterable[dict[str, Any]]:
        """Yield events as they arrive for ``duration_s`` seconds (ValueError unless both
        arguments are finite and non-negative, ``poll_ms`` at least 1)."""
        duration_s = _number("duration_s", duration_s, minimum=0)
        poll_ms = _number("poll_ms", poll_ms, minimum=1)
        end = time.monotonic() + duration_s
        while (left := end - time.monotonic()) > 0:
            event = self.read(timeout_ms=max(1, min(poll_ms, int(left * 1000))))
            if event is not None:
                yield event

    def _wait(self, events: int, timeout_ms: int) -> None:
        """Wait up to ``timeout_ms`` for ``events`` on this fd (private epoll)."""
        host = self.host
        if self._epfd is None:
            self._epfd = host.spear_epoll_create()
            host.spear_epoll_ctl(self._epfd, EpollOp.ADD, self.fd, int(events))
        else:
            host.spear_epoll_ctl(self._epfd, EpollOp.MOD, self.fd, int(events))
        host.spear_epoll_wait(self._epfd, 1, timeout_ms)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the fd (idempotent); its transport stops."""
        if self._epfd is not None:
            self.host.spear_epoll_close(self._epfd)
            self._epfd = None
        self.host.rtasr_close(self.fd)
        self._closed = True

    def __repr__(self) -> str:
        if self._closed:
            return f"<Rtasr fd={self.fd} closed>"
        out = self.host.rtasr_ctl(self.fd, RtasrCtl.GET_STATUS)
        st = json.loads(out) if isinstance(out, bytes) else {}
        return (f"<Rtasr fd={self.fd} {st.get('state')} transport={st.get('transport')} "
                f"send={st.get('send_queue_bytes')} recv={st.get('recv_queue_bytes')}>")


class Epoll(_Wrapper):
    """One epoll fd on ``host``: watch fds (ints or objects with ``.fd``) and wait."""

    def __init__(self, host: "Host") -> None:
        self.host = host
        self.fd: int = host.spear_epoll_create()

    def _ctl(self, op: EpollOp, target: Any, events: int) -> None:
        fd = _fd_of(target)
        rc = self.host.spear_epoll_ctl(self.fd, op, fd, int(events))
        if rc < 0:
            if rc == -Errno.EBADF:
                reason = f"epoll {self.fd} or fd {fd} is unknown or closed"
            elif rc == -Errno.EINVAL:
                reason = f"epoll {self.fd} cannot watch fd {fd} (itself or another epoll)"
            elif rc == -Errno.ENOMEM:
                reason = f"epoll {self.fd} watches too many fds"
            else:
                reason = f"epoll_ctl {op.name} failed ({errno_name(rc)})"
            raise SpearError(-rc, reason)

    def add(self, target: Any, events: int = EpollEvent.IN | EpollEvent.ERR | EpollEvent.HUP) -> None:
        """Watch ``target`` for ``events`` (ERR/HUP are reported only when asked for)."""
        self._ctl(EpollOp.ADD, target, events)

    def modify(self, target: Any, events: int) -> None:
        """Replace the interest mask of ``target``."""
        self._ctl(EpollOp.MOD, target, events)

    def remove(self, target: Any) -> None:
        """Stop watching ``target`` (no error when it was not watched)."""
        self._ctl(EpollOp.DEL, target, 0)

    def wait(self, timeout_ms: int = -1, max_events: int = 64) -> list[tuple[int, EpollEvent]]:
        """Ready ``(fd, EpollEvent)`` pairs, lowest fd first; ``[]`` on timeout.

        ``timeout_ms < 0`` waits without limit, 0 polls.  ValueError for a timeout that is
        not a finite number or ``max_events`` below 1.
        """
        timeout_ms = _timeout_ms("timeout_ms", timeout_ms)
        max_events = _number("max_events", max_events, minimum=1, integer=True)
        out = self.host.spear_epoll_wait(self.fd, max_events, timeout_ms)
        if isinstance(out, int):
            reason = (f"epoll {self.fd} is closed" if out == -Errno.EBADF
                      else f"epoll_wait failed ({errno_name(out)})")
            raise SpearError(-out, reason)
        return [(fd, EpollEvent(ev)) for fd, ev in out]

    def close(self) -> None:
        """Close the epoll (idempotent)."""
        self.host.spear_epoll_close(self.fd)


class Mic(_Wrapper):
    """One microphone fd on ``host``; keyword arguments become the SET_PARAM config.

    Thin: the semantics live in :mod:`spear_lab.fds.mic`.  Every method raises
    :class:`SpearError` on a hostcall error, except that :meth:`read` returns None when
    no frame is queued.
    """

    def __init__(self, host: "Host", **params: Any) -> None:
        self.host = host
        self.fd: int = host.mic_create()
        try:
            if params:
                self.configure(**params)
        except BaseException:
            self.close()
            raise

    def _check(self, rc: Any, what: str) -> Any:
        """``rc`` itself, or SpearError naming why: the rule a refused SET_PARAM broke
        (``MicFd.last_refusal``) or the source's ``last_error``."""
        if not isinstance(rc, int) or rc >= 0:
            return rc
        if rc == -Errno.EBADF:
            raise SpearError(Errno.EBADF, f"fd {self.fd} is closed or not a mic fd")
        entry = self.host.table.get(self.fd)
        refusal, last_error = getattr(entry, "last_refusal", None), getattr(entry, "last_error", None)
        if rc == -Errno.EINVAL and refusal:
            raise SpearError(Errno.EINVAL, f"{what} rejected: {refusal}")
        if last_error:
            raise SpearError(-rc, f"{what} failed: {last_error}")
        raise SpearError(-rc, f"{what} failed ({errno_name(rc)})")

    def configure(self, **params: Any) -> None:
        """SET_PARAM with ``params`` as the config object (e.g. ``source="stub"``)."""
        self._check(self.host.mic_ctl(self.fd, MicCtl.SET_PARAM, dumpb(params)), "mic SET_PARAM")

    def read(self) -> bytes | None:
        """One captured frame (pcm16 bytes), or None when none is queued."""
        out = self.host.mic_read(self.fd, _NO_CAP)
        if out == _EAGAIN:
            return None
        return self._check(out, "mic_read")

    def status(self) -> MicStatus:
        """GET_STATUS as a :class:`MicStatus`."""
        return MicStatus.from_json(self.status_dict())

    def status_dict(self) -> dict[str, Any]:
        """GET_STATUS as the raw dict (with the source's [EXT] keys)."""
        out = self._check(self.host.mic_ctl(self.fd, MicCtl.GET_STATUS), "mic GET_STATUS")
        return json.loads(out)

    def close(self) -> None:
        """Close the fd (idempotent); capture stops."""
        self.host.mic_close(self.fd)
