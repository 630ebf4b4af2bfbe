"""The wasm glue: every import of docs/abi.md §1.1 under module ``spear``.

Each glue function turns guest pointers into bytes with :class:`GuestMemory`, applies the
error precedence of docs/abi.md §10, calls the :class:`Host` method and writes results back with the
output protocol of docs/abi.md §1.4.  Before anything else it traps when a stop was requested (§1.7).
Legacy ``cchat_*`` and ``user_stream_*`` imports link and return -ENOSYS.
"""

from __future__ import annotations

import logging
import struct
from typing import Any, Callable, NoReturn

import wasmtime

from ..abi.constants import EPOLL_RECORD_SIZE, Errno, FdCtl
from ..abi.epoll import epoll_wait
from ..abi.fdctl import fd_ctl_known
from ..host import Host
from ..host.recording import recorder
from . import fastcall
from .memory import GuestMemory

I32, I64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()

EFAULT, ENOSPC, EINVAL, ENOSYS, EIO = -Errno.EFAULT, -Errno.ENOSPC, -Errno.EINVAL, -Errno.ENOSYS, -Errno.EIO
log = logging.getLogger(__name__)


class GuestStopped(Exception):
    """Raised inside a hostcall to trap a guest whose stop was requested.

    wasmtime-py turns it into a trap and re-raises it, as is, out of the wasm call
    (:mod:`.fastcall` keeps that contract); :attr:`Glue.stop_raised` records it too.
    """


#: name -> (parameter types, result types) for every import of docs/abi.md §1.1.
SIGNATURES: dict[str, tuple[tuple[wasmtime.ValType, ...], tuple[wasmtime.ValType, ...]]] = {
    "spear_epoll_create": ((), (I32,)),
    "spear_epoll_ctl": ((I32,) * 4, (I32,)),
    "spear_epoll_wait": ((I32,) * 4, (I32,)),
    "spear_epoll_close": ((I32,), (I32,)),
    "spear_fd_ctl": ((I32,) * 4, (I32,)),
    "rtasr_create": ((), (I32,)),
    "rtasr_ctl": ((I32,) * 4, (I32,)),
    "rtasr_write": ((I32,) * 3, (I32,)),
    "rtasr_read": ((I32,) * 3, (I32,)),
    "rtasr_close": ((I32,), (I32,)),
    "mic_create": ((), (I32,)),
    "mic_ctl": ((I32,) * 4, (I32,)),
    "mic_read": ((I32,) * 3, (I32,)),
    "mic_close": ((I32,), (I32,)),
    "log": ((I32,) * 3, (I32,)),
    "time_now_ms": ((), (I64,)),
    "wall_time_s": ((), (I64,)),
    "random_i64": ((), (I64,)),
    "sleep_ms": ((I32,), ()),
    "cchat_create": ((), (I32,)),
    "cchat_write_msg": ((I32,) * 5, (I32,)),
    "cchat_write_fn": ((I32,) * 4, (I32,)),
    "cchat_ctl": ((I32,) * 4, (I32,)),
    "cchat_send": ((I32,) * 2, (I32,)),
    "cchat_recv": ((I32,) * 3, (I32,)),
    "cchat_close": ((I32,), (I32,)),
    "user_stream_open": ((I32,) * 2, (I32,)),
    "user_stream_read": ((I32,) * 3, (I32,)),
    "user_stream_write": ((I32,) * 3, (I32,)),
    "user_stream_close": ((I32,), (I32,)),
    "user_stream_ctl_open": ((), (I32,)),
    "user_stream_ctl_read": ((I32,) * 3, (I32,)),
}

#: Imports that link but are out of scope (legacy families).
LEGACY = tuple(n for n in SIGNATURES if n.startswith(("cchat_", "user_stream_")))
_RECORD = struct.Struct("<ii")


def output(mem: GuestMemory, out_ptr: int, len_ptr: int, payload: bytes) -> int:
    """The output protocol of docs/abi.md §1.4: copy ``payload``, store its length, return it."""
    cap = mem.read_u32(len_ptr)
    if cap is None:
        return EFAULT
    need = len(payload)
    if cap < need:
        mem.write_u32(len_ptr, need)  # best effort
        return ENOSPC
    if not mem.write(out_ptr, payload) or not mem.write_u32(len_ptr, need):
        return EFAULT
    return need


#: Largest ctl input payload copied from a guest (16 MiB: a mic SET_PARAM with a 10 MiB
#: base64 stub pattern fits); a larger one is refused as invalid JSON (-EINVAL).
MAX_CTL_INPUT = 16 * 1024 * 1024
#: ctl commands that read an input payload, per family (the others ignore it: no copy).
RTASR_INPUT_CMDS = frozenset({1, 4, 7})  # SET_PARAM, SEND_EVENT, SET_AUTOFLUSH
MIC_INPUT_CMDS = frozenset({1})  # SET_PARAM
#: What an ``admit`` hook of :func:`ctl_input` returns for a command that takes no input.
NO_INPUT = 1


def ctl_input(mem: GuestMemory, arg_ptr: int, len_ptr: int,
              admit: Callable[[], int] | None = None) -> bytes | None | int:
    """The input half of docs/abi.md §1.5: the payload, None when absent, or -errno.

    Order: length cell (-EFAULT), input range (-EFAULT, nothing copied yet), then
    ``admit()`` (the fd lookup: a non-zero result is returned before any copy), then the
    copy itself, refused above :data:`MAX_CTL_INPUT` with -EINVAL.  ``admit`` returning
    :data:`NO_INPUT` means "the command takes no input": nothing is copied, None is
    returned.
    """
    n = mem.read_u32(len_ptr)
    if n is None:
        return EFAULT
    if n >= 0x80000000 or n == 0:  # zero or negative as i32: no payload
        rc = admit() if admit is not None else 0
        return rc if rc < 0 else None
    if not mem.valid(arg_ptr, n):
        return EFAULT
    if admit is not None:
        rc = admit()
        if rc == NO_INPUT:
            return None
        if rc:
            return rc
    if n > MAX_CTL_INPUT:
        return EINVAL
    data = mem.read(arg_ptr, n)
    return EFAULT if data is None else data


class Glue:
    """The import functions bound to one Host and one guest memory."""

    def __init__(self, host: Host, mem: GuestMemory) -> None:
        self.host = host
        self.table = host.table
        self.mem = mem
        #: True once a hostcall raised :class:`GuestStopped`: the run ended by its stop.
        self.stop_raised = False

    def stop_guest(self) -> NoReturn:
        """Trap the guest for its stop request: record it, raise :class:`GuestStopped`."""
        self.stop_raised = True
        raise GuestStopped("stop requested")

    # Each method below is one import; names match docs/abi.md §1.1.

    def spear_epoll_create(self) -> int:
        return self.host.spear_epoll_create()

    def spear_epoll_ctl(self, epfd: int, op: int, fd: int, events: int) -> int:
        return self.host.spear_epoll_ctl(epfd, op, fd, events)

    def spear_epoll_wait(self, epfd: int, out_ptr: int, len_ptr: int, timeout_ms: int) -> int:
        mem = self.mem
        cap = mem.read_u32(len_ptr)
        if cap is None:
            return EFAULT
        max_records = cap // EPOLL_RECORD_SIZE
        if max_records == 0:
            mem.write_u32(len_ptr, EPOLL_RECORD_SIZE)
            return ENOSPC
        ready = epoll_wait(self.table, epfd, max_records, timeout_ms)
        if isinstance(ready, int):
            return ready
        if self.table.stopping:
            self.stop_guest()
        n = len(ready)
        if n == 1:
            data = _RECORD.pack(*ready[0])
        else:
            data = b"".join(_RECORD.pack(fd, ev) for fd, ev in ready)
        if n and not mem.write(out_ptr, data):
            return EFAULT
        mem.write_u32(len_ptr, n * EPOLL_RECORD_SIZE)
        return n

    def spear_epoll_close(self, fd: int) -> int:
        return self.host.spear_epoll_close(fd)

    def spear_fd_ctl(self, fd: int, cmd: int, arg_ptr: int, len_ptr: int) -> int:
        if not fd_ctl_known(cmd):
            return EINVAL
        payload = None
        if cmd == FdCtl.SET_FLAGS:
            n = self.mem.read_u32(len_ptr)
            if n is None:
                return EFAULT
            n = n if n < 0x80000000 else -1
            if not self.mem.valid(arg_ptr, n):
                return EFAULT
            if self.table.get(fd) is None:  # before copying anything
                return -Errno.EBADF
            if n > MAX_CTL_INPUT:
                return EINVAL
            payload = self.mem.read(arg_ptr, n)
            if payload is None:
                return EFAULT
        return self._ctl_result(self.host.spear_fd_ctl(fd, cmd, payload), arg_ptr, len_ptr)

    def _ctl_result(self, result: int | bytes, arg_ptr: int, len_ptr: int) -> int:
        if isinstance(result, int):
            return result
        return output(self.mem, arg_ptr, len_ptr, result)

    def _ctl(self, call: Callable[[int, int, bytes | None], int | bytes],
             fd: int, cmd: int, arg_ptr: int, len_ptr: int, inputs: frozenset[int]) -> int:
        table = self.table

        def admit() -> int:
            # fd lookup before any copy (an unknown fd costs nothing); input only for the
            # commands that read one
            if table.get(fd) is None:
                return -Errno.EBADF
            return 0 if cmd in inputs else NO_INPUT

        payload = ctl_input(self.mem, arg_ptr, len_ptr, admit)
        if isinstance(payload, int):
            return payload
        return self._ctl_result(call(fd, cmd, payload), arg_ptr, len_ptr)

    def rtasr_create(self) -> int:
        return self.host.rtasr_create()

    def rtasr_ctl(self, fd: int, cmd: int, arg_ptr: int, len_ptr: int) -> int:
        return self._ctl(self.host.rtasr_ctl, fd, cmd, arg_ptr, len_ptr, RTASR_INPUT_CMDS)

    def rtasr_write(self, fd: int, buf_ptr: int, buf_len: int) -> int:
        # range check (-EFAULT first, docs/abi.md §10) without copying; the copy happens only once
        # the fd, its state and the queue's room have accepted the write
        mem = self.mem
        if not mem.valid(buf_ptr, buf_len):
            return EFAULT
        return self.host.rtasr_write_from(fd, buf_len, lambda: mem.read(buf_ptr, buf_len))

    def _deliver(self, out_ptr: int, len_ptr: int) -> Callable[[bytes], int]:
        mem = self.mem
        return lambda payload: output(mem, out_ptr, len_ptr, payload)

    def rtasr_read(self, fd: int, out_ptr: int, len_ptr: int) -> int:
        return self.host.rtasr_read_into(fd, self._deliver(out_ptr, len_ptr))

    def rtasr_close(self, fd: int) -> int:
        return self.host.rtasr_close(fd)

    def mic_create(self) -> int:
        return self.host.mic_create()

    def mic_ctl(self, fd: int, cmd: int, arg_ptr: int, len_ptr: int) -> int:
        return self._ctl(self.host.mic_ctl, fd, cmd, arg_ptr, len_ptr, MIC_INPUT_CMDS)

    def mic_read(self, fd: int, out_ptr: int, len_ptr: int) -> int:
        return self.host.mic_read_into(fd, self._deliver(out_ptr, len_ptr))

    def mic_close(self, fd: int) -> int:
        return self.host.mic_close(fd)

    def log(self, level: int, msg_ptr: int, msg_len: int) -> int:
        if msg_len < 0 or msg_len > 16384:
            return EINVAL
        data = self.mem.read(msg_ptr, msg_len)
        if data is None:
            return EFAULT
        return self.host.log(level, data)

    def time_now_ms(self) -> int:
        return self.host.time_now_ms()

    def wall_time_s(self) -> int:
        return self.host.wall_time_s()

    def random_i64(self) -> int:
        return self.host.random_i64()

    def sleep_ms(self, ms: int) -> None:
        self.host.sleep_ms(ms)
        if self.host.table.stopping:
            self.stop_guest()

    def legacy(self, *args: int) -> int:
        return ENOSYS


#: Imports that check for a stop request first (docs/abi.md §1.7); the clock calls do not.
_CANCELLABLE = frozenset(n for n in SIGNATURES if n not in ("time_now_ms", "wall_time_s", "random_i64"))


def _wrap(name: str, fn: Callable[..., Any], glue: Glue) -> Callable[..., Any]:
    """``fn`` with the stop check and the -EIO guard, recorded while a trace records
    (:func:`spear_lab.host.recording.recorder`, the same recorder as for Python callers;
    without a recording trace ``fn`` is called directly, one frame less)."""
    host = glue.host
    table = host.table
    context = host.context
    stop_guest = glue.stop_guest
    cancellable = name in _CANCELLABLE
    recorded = recorder(host, name, fn)
    failed = None if name == "sleep_ms" else 0 if name in ("time_now_ms", "wall_time_s", "random_i64") else EIO

    def call(*args: int) -> Any:
        if cancellable and table.stopping:
            stop_guest()
        try:
            trace = context.trace
            if trace is None or not trace.recording:
                return fn(*args)
            return recorded(*args)
        except GuestStopped:
            raise
        except Exception:
            # A host bug must not crash the guest or the kernel: log it, count it, -EIO.
            host.internal_errors += 1
            log.exception("hostcall %s%r failed inside the host", name, args)
            return failed

    return call


def define_spear(linker: wasmtime.Linker, host: Host, mem: GuestMemory) -> Glue:
    """Define every ``spear`` import on ``linker`` bound to ``host`` and ``mem``; returns
    the :class:`Glue` (its :attr:`~Glue.stop_raised` tells whether a stop trapped the guest)."""
    glue = Glue(host, mem)
    for name, (params, results) in SIGNATURES.items():
        fn = glue.legacy if name in LEGACY else getattr(glue, name)
        fastcall.define(linker, "spear", name, params, results, _wrap(name, fn, glue))
    return glue
