"""rtasr hostcalls through guest memory: inline WAT guests and the forwarding guest.

Covers the pointer side of items 31, 35, 36, 46, 48, 49 and the memory contract of docs/abi.md §1
for ``rtasr_*`` (-EFAULT, -ENOSPC with the needed length, no loss on a short read).
"""

from __future__ import annotations

import json

from spear_lab.abi import EPOLLIN, EPOLLOUT, EpollOp, Errno, RtasrCtl
from spear_lab.abi.jsonfmt import dumpb
from spear_lab.runtime import start_guest

EAGAIN, EBADF, EFAULT, EINVAL, ENOSPC = (-Errno.EAGAIN, -Errno.EBADF, -Errno.EFAULT, -Errno.EINVAL,
                                         -Errno.ENOSPC)
PAGE = 65536

IMPORTS = """
  (import "spear" "rtasr_create" (func $create (result i32)))
  (import "spear" "rtasr_ctl" (func $ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "rtasr_write" (func $write (param i32 i32 i32) (result i32)))
  (import "spear" "rtasr_read" (func $read (param i32 i32 i32) (result i32)))
  (import "spear" "rtasr_close" (func $close (param i32) (result i32)))
  (import "spear" "spear_epoll_create" (func $ep_create (result i32)))
  (import "spear" "spear_epoll_ctl" (func $ep_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_wait" (func $ep_wait (param i32 i32 i32 i32) (result i32)))
  (import "spear" "log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
"""


def data(offset: int, payload: bytes) -> str:
    """A WAT data segment holding ``payload`` at ``offset`` (every byte escaped)."""
    escaped = "".join("\\%02x" % b for b in payload)
    return f'  (data (i32.const {offset}) "{escaped}")\n'


def param(key: str, value) -> bytes:
    return dumpb({"key": key, "value": value})


def run(host, wat: str, timeout: float = 20.0):
    """Run ``run`` of ``wat`` in a guest thread; (exit value, guest log texts)."""
    guest_run = start_guest(host, wat, entry="run")
    result = guest_run.wait(timeout)
    assert result.trap is None, result.trap
    return result.value, [text for _, _, text in guest_run.host.logs]


# -- whole guests ------------------------------------------------------------------------------

def test_guest_short_read_then_retry_gets_the_same_event(host):
    # item 48 through memory: -ENOSPC stores the needed length; the retry returns that event
    p1 = param("stub_event_interval_ms", 10)
    p2 = param("max_recv_queue_bytes", 100000)
    wat = f"""(module {IMPORTS}
{data(256, p1)}{data(512, p2)}
  (func (export "run") (result i32)
    (local $fd i32) (local $ep i32) (local $rc i32) (local $need i32)
    (local.set $fd (call $create))
    (i32.store (i32.const 0) (i32.const {len(p1)}))
    (if (call $ctl (local.get $fd) (i32.const 1) (i32.const 256) (i32.const 0)) (then (return (i32.const 1))))
    (i32.store (i32.const 0) (i32.const {len(p2)}))
    (if (call $ctl (local.get $fd) (i32.const 1) (i32.const 512) (i32.const 0)) (then (return (i32.const 1))))
    (i32.store (i32.const 0) (i32.const 0))
    (if (call $ctl (local.get $fd) (i32.const 2) (i32.const 0) (i32.const 0)) (then (return (i32.const 2))))
    (local.set $ep (call $ep_create))
    (if (call $ep_ctl (local.get $ep) (i32.const 1) (local.get $fd) (i32.const 1)) (then (return (i32.const 3))))
    (i32.store (i32.const 8) (i32.const 8))
    (if (i32.ne (call $ep_wait (local.get $ep) (i32.const 16) (i32.const 8) (i32.const 5000)) (i32.const 1))
      (then (return (i32.const 4))))
    ;; a buffer of 8 bytes is too small: -28 and the needed length in the cell
    (i32.store (i32.const 4) (i32.const 8))
    (if (i32.ne (call $read (local.get $fd) (i32.const 4096) (i32.const 4)) (i32.const -28))
      (then (return (i32.const 5))))
    (local.set $need (i32.load (i32.const 4)))
    (if (i32.ne (local.get $need) (i32.const 224)) (then (return (i32.const 6))))
    ;; nothing was written to the buffer
    (if (i32.load (i32.const 4096)) (then (return (i32.const 7))))
    ;; retry with exactly the needed length
    (local.set $rc (call $read (local.get $fd) (i32.const 4096) (i32.const 4)))
    (if (i32.ne (local.get $rc) (local.get $need)) (then (return (i32.const 8))))
    (if (i32.ne (i32.load (i32.const 4)) (local.get $need)) (then (return (i32.const 9))))
    (drop (call $log (i32.const 2) (i32.const 4096) (local.get $rc)))
    ;; the next read is the next event
    (i32.store (i32.const 4) (i32.const 1024))
    (if (i32.eq (call $ep_wait (local.get $ep) (i32.const 16) (i32.const 8) (i32.const 5000)) (i32.const 1))
      (then
        (local.set $rc (call $read (local.get $fd) (i32.const 8192) (i32.const 4)))
        (if (i32.le_s (local.get $rc) (i32.const 0)) (then (return (i32.const 10))))
        (drop (call $log (i32.const 2) (i32.const 8192) (local.get $rc)))))
    (i32.const 0))
)"""
    value, logs = run(host, wat)
    assert value == 0
    first, second = (json.loads(t) for t in logs)
    assert first == {"seq": 1, "text": "a" * 176, "type": "transcription.delta"}
    assert second["seq"] == 2


def test_guest_backpressure_and_memory_errors(host):
    # items 31, 49, 6, 46 through memory
    p = param("max_send_queue_bytes", 4800)
    wat = f"""(module {IMPORTS}
{data(256, p)}
  (func (export "run") (result i32)
    (local $fd i32) (local $ep i32) (local $i i32) (local $rc i32)
    (local.set $fd (call $create))
    (local.set $ep (call $ep_create))
    (if (call $ep_ctl (local.get $ep) (i32.const 1) (local.get $fd) (i32.const 4)) (then (return (i32.const 1))))
    (i32.store (i32.const 8) (i32.const 64))
    (if (i32.ne (call $ep_wait (local.get $ep) (i32.const 16) (i32.const 8) (i32.const 0)) (i32.const 1))
      (then (return (i32.const 2))))
    (i32.store (i32.const 0) (i32.const {len(p)}))
    (if (call $ctl (local.get $fd) (i32.const 1) (i32.const 256) (i32.const 0)) (then (return (i32.const 3))))
    ;; five 960-byte frames fill the 4800-byte queue exactly
    (block $done (loop $next
      (br_if $done (i32.eq (local.get $i) (i32.const 5)))
      (if (i32.ne (call $write (local.get $fd) (i32.const 1024) (i32.const 960)) (i32.const 960))
        (then (return (i32.const 4))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (if (i32.ne (call $write (local.get $fd) (i32.const 1024) (i32.const 960)) (i32.const -11))
      (then (return (i32.const 5))))
    (if (i32.ne (call $write (local.get $fd) (i32.const 1024) (i32.const 1)) (i32.const -11))
      (then (return (i32.const 6))))
    ;; no longer writable: the wait reports nothing and stores 0 in the cell
    (i32.store (i32.const 8) (i32.const 64))
    (if (call $ep_wait (local.get $ep) (i32.const 16) (i32.const 8) (i32.const 0)) (then (return (i32.const 7))))
    (if (i32.load (i32.const 8)) (then (return (i32.const 8))))
    ;; a zero-length write is 0 even when full
    (if (call $write (local.get $fd) (i32.const 1024) (i32.const 0)) (then (return (i32.const 9))))
    ;; memory errors come first (item 6)
    (if (i32.ne (call $write (local.get $fd) (i32.const {PAGE - 10}) (i32.const 960)) (i32.const -14))
      (then (return (i32.const 10))))
    (if (i32.ne (call $write (i32.const 99999) (i32.const -1) (i32.const 5)) (i32.const -14))
      (then (return (i32.const 11))))
    (if (i32.ne (call $write (i32.const 99999) (i32.const 1024) (i32.const 5)) (i32.const -9))
      (then (return (i32.const 12))))
    ;; GET_STATUS into memory, then logged
    (i32.store (i32.const 0) (i32.const 600))
    (local.set $rc (call $ctl (local.get $fd) (i32.const 3) (i32.const 2048) (i32.const 0)))
    (if (i32.le_s (local.get $rc) (i32.const 0)) (then (return (i32.const 13))))
    (drop (call $log (i32.const 2) (i32.const 2048) (local.get $rc)))
    (if (call $close (local.get $fd)) (then (return (i32.const 14))))
    (if (call $close (local.get $fd)) (then (return (i32.const 15))))
    (if (i32.ne (call $write (local.get $fd) (i32.const 1024) (i32.const 1)) (i32.const -9))
      (then (return (i32.const 16))))
    (i32.const 0))
)"""
    value, logs = run(host, wat)
    assert value == 0
    st = json.loads(logs[0])
    assert st["send_queue_bytes"] == 4800 and st["max_send_queue_bytes"] == 4800
    assert len(st) == 10 and st["state"] == "Configured"


def test_guest_event_loop_against_the_stub(host):
    # items 35/36 through a guest: an epoll loop writing frames on OUT and reading on IN
    # until it has read a "transcription.completed" event (every 3rd here)
    params = [param("stub_event_interval_ms", 10), param("stub_emit_completed_every", 3)]
    segs = "".join(data(256 + 128 * i, p) for i, p in enumerate(params))
    sets = "".join(f"""
    (i32.store (i32.const 0) (i32.const {len(p)}))
    (if (call $ctl (local.get $fd) (i32.const 1) (i32.const {256 + 128 * i}) (i32.const 0)) (then (return (i32.const -1))))"""
                   for i, p in enumerate(params))
    wat = f"""(module {IMPORTS}
{segs}
  (func (export "run") (result i32)
    (local $fd i32) (local $ep i32) (local $n i32) (local $ev i32) (local $rc i32) (local $reads i32)
    (local $writes i32) (local $left i32)
    (local.set $fd (call $create)) {sets}
    (i32.store (i32.const 0) (i32.const 0))
    (drop (call $ctl (local.get $fd) (i32.const 2) (i32.const 0) (i32.const 0)))
    (local.set $ep (call $ep_create))
    (drop (call $ep_ctl (local.get $ep) (i32.const 1) (local.get $fd) (i32.const 0x1d)))
    (local.set $left (i32.const 1000))
    (loop $again
      (local.set $left (i32.sub (local.get $left) (i32.const 1)))
      (if (i32.eqz (local.get $left)) (then (return (i32.const -2))))
      (i32.store (i32.const 8) (i32.const 64))
      (local.set $n (call $ep_wait (local.get $ep) (i32.const 16) (i32.const 8) (i32.const 100)))
      (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const -3))))
      (if (local.get $n) (then
        (local.set $ev (i32.load (i32.const 20)))
        (if (i32.and (local.get $ev) (i32.const 0x18)) (then (return (i32.const -4))))
        (if (i32.and (local.get $ev) (i32.const 4)) (then
          (if (i32.eq (call $write (local.get $fd) (i32.const 32768) (i32.const 960)) (i32.const 960))
            (then (local.set $writes (i32.add (local.get $writes) (i32.const 1)))))
          ;; after 20 frames stop asking for OUT (it would always be ready)
          (if (i32.eq (local.get $writes) (i32.const 20))
            (then (drop (call $ep_ctl (local.get $ep) (i32.const 2) (local.get $fd) (i32.const 0x19)))))))
        (if (i32.and (local.get $ev) (i32.const 1)) (then
          (i32.store (i32.const 4) (i32.const 4096))
          (local.set $rc (call $read (local.get $fd) (i32.const 8192) (i32.const 4)))
          (if (i32.gt_s (local.get $rc) (i32.const 0)) (then
            (local.set $reads (i32.add (local.get $reads) (i32.const 1)))
            (drop (call $log (i32.const 2) (i32.const 8192) (local.get $rc)))
            ;; '..."transcription.completed"}}': 3 bytes from the end, 'd' (not 'a' of delta)
            (if (i32.eq (i32.load8_u (i32.add (i32.const 8192) (i32.sub (local.get $rc) (i32.const 3))))
                        (i32.const 0x64))
              (then (return (local.get $reads))))))))))
      (br $again))
    (i32.const -5))
)"""
    value, logs = run(host, wat)
    assert value == 3
    events = [json.loads(t) for t in logs]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert [e["type"] for e in events] == ["transcription.delta"] * 2 + ["transcription.completed"]


# -- step by step through the forwarding guest ----------------------------------------------------

def ctl_in(guest, fd, cmd, payload: bytes | None, ptr=1024, cell=16):
    if payload is not None:
        guest.put(ptr, payload)
    guest.cell(cell, len(payload or b""))
    return guest.rtasr_ctl(fd, cmd, ptr if payload is not None else 0, cell)


def test_write_and_read_through_memory(guest):
    fd = guest.rtasr_create()
    assert fd == 1000
    entry = guest.host.table.get(fd)
    guest.put(4096, bytes(range(256)) * 4)
    assert guest.rtasr_write(fd, 4096, 1000) == 1000
    assert entry.send_queue[0].data == (bytes(range(256)) * 4)[:1000]
    entry.push_event(b'{"type":"x","n":12345}')
    guest.cell(16, 100)
    assert guest.rtasr_read(fd, 8192, 16) == 22
    assert guest.get(8192, 22) == b'{"type":"x","n":12345}' and guest.cell(16) == 22
    guest.cell(16, 100)
    assert guest.rtasr_read(fd, 8192, 16) == EAGAIN
    assert guest.cell(16) == 100  # untouched on -EAGAIN


def test_read_memory_errors_keep_the_event(guest):
    fd = guest.rtasr_create()
    entry = guest.host.table.get(fd)
    entry.push_event(b"0123456789")
    guest.cell(16, 0)
    assert guest.rtasr_read(fd, 8192, 16) == ENOSPC and guest.cell(16) == 10
    assert guest.rtasr_read(fd, 8192, PAGE - 2) == EFAULT  # length cell out of range
    guest.cell(16, 10)
    assert guest.rtasr_read(fd, PAGE - 5, 16) == EFAULT  # output range out of memory
    assert guest.rtasr_read(fd, -1, 16) == EFAULT
    assert guest.rtasr_read(fd, 8192, 16) == 10 and guest.get(8192, 10) == b"0123456789"
    # fd check first: an unknown fd is -EBADF whatever the pointers
    assert guest.rtasr_read(4242, -1, -1) == EBADF


def test_ctl_memory_protocol(guest):
    fd = guest.rtasr_create()
    # the length cell is read for every command, also CONNECT
    assert guest.rtasr_ctl(fd, RtasrCtl.CONNECT, 0, PAGE) == EFAULT
    assert guest.rtasr_ctl(fd, RtasrCtl.GET_STATUS, 0, -4) == EFAULT
    # input range checked before the fd
    guest.cell(16, 100)
    assert guest.rtasr_ctl(4242, RtasrCtl.SET_PARAM, PAGE - 50, 16) == EFAULT
    assert guest.rtasr_ctl(4242, RtasrCtl.SET_PARAM, 1024, 16) == EBADF
    # a negative length (as i32) means "no payload"
    guest.cell(16, 0xFFFFFFFF)
    assert guest.rtasr_ctl(fd, RtasrCtl.SET_PARAM, PAGE + 5, 16) == EINVAL
    assert ctl_in(guest, fd, RtasrCtl.SET_PARAM, param("stub_event_interval_ms", 10)) == 0
    assert guest.host.table.get(fd).params == {"stub_event_interval_ms": 10}
    # GET with a too-small cell: -28, needed length stored, nothing written
    guest.put(2048, b"\xaa" * 300)
    guest.cell(16, 10)
    assert guest.rtasr_ctl(fd, RtasrCtl.GET_STATUS, 2048, 16) == ENOSPC
    need = guest.cell(16)
    assert need == len(guest.host.rtasr_ctl(fd, RtasrCtl.GET_STATUS))
    assert guest.get(2048, 300) == b"\xaa" * 300
    assert guest.rtasr_ctl(fd, RtasrCtl.GET_STATUS, 2048, 16) == need
    assert json.loads(guest.get(2048, need))["state"] == "Configured"
    # GET_AUTOFLUSH the same way
    guest.cell(16, 4096)
    n = guest.rtasr_ctl(fd, RtasrCtl.GET_AUTOFLUSH, 2048, 16)
    assert json.loads(guest.get(2048, n))["strategy"] == "server_vad" and guest.cell(16) == n
    # commands without output leave memory and the cell alone
    guest.cell(16, 0)
    assert guest.rtasr_ctl(fd, RtasrCtl.FLUSH, 0, 16) == 0 and guest.cell(16) == 0


def test_epoll_sees_rtasr_readiness_through_memory(guest):
    fd = guest.rtasr_create()
    ep = guest.spear_epoll_create()
    assert guest.spear_epoll_ctl(ep, EpollOp.ADD, fd, EPOLLIN | EPOLLOUT) == 0
    guest.cell(16, 64)
    assert guest.spear_epoll_wait(ep, 32, 16, 0) == 1
    assert guest.get(32, 8) == fd.to_bytes(4, "little") + EPOLLOUT.to_bytes(4, "little")
    guest.host.table.get(fd).push_event(b"{}")
    guest.cell(16, 64)
    assert guest.spear_epoll_wait(ep, 32, 16, 0) == 1
    assert int.from_bytes(guest.get(36, 4), "little") == EPOLLIN | EPOLLOUT
