"""Lesson 01_epoll_tour: its cells."""

from __future__ import annotations

from .common import SETUP, code, md  # noqa: F401

# ---------------------------------------------------------------------------------------
# 01 — the epoll tour
# ---------------------------------------------------------------------------------------

TOUR_WAT = r'''
TOUR_WAT = r"""
(module
  (import "spear" "spear_epoll_create" (func $ep_create (result i32)))
  (import "spear" "spear_epoll_ctl" (func $ep_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_wait" (func $ep_wait (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_close" (func $ep_close (param i32) (result i32)))
  (import "spear" "rtasr_create" (func $asr_create (result i32)))
  (import "spear" "rtasr_ctl" (func $asr_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "rtasr_write" (func $asr_write (param i32 i32 i32) (result i32)))
  (import "spear" "rtasr_close" (func $asr_close (param i32) (result i32)))
  (memory (export "memory") 1)
  ;; memory map:   8 length cell of the wait buffer   64 SET_PARAM JSON (41 bytes)
  ;;             128 its length cell                 256 16 bytes of "audio"
  ;;             512 the wait buffer (records of 8 bytes: i32 fd, i32 events)
  (data (i32.const 64) "{\"key\":\"max_send_queue_bytes\",\"value\":16}")
  (data (i32.const 128) "\29\00\00\00")
  (func $wait (param $ep i32) (param $room i32) (result i32)
    (i32.store (i32.const 8) (local.get $room))     ;; bytes of room for records
    (call $ep_wait (local.get $ep) (i32.const 512) (i32.const 8) (i32.const 0)))
  (func (export "_start") (local $ep i32) (local $asr i32)
    (local.set $ep (call $ep_create))                                   ;; 1000
    (local.set $asr (call $asr_create))                                 ;; 1001
    (drop (call $ep_ctl (local.get $ep) (i32.const 1) (local.get $asr)  ;; ADD, IN|OUT|HUP
                (i32.const 0x15)))
    (drop (call $wait (local.get $ep) (i32.const 64)))                  ;; 1 record: OUT
    (drop (call $asr_ctl (local.get $asr) (i32.const 1)                 ;; SET_PARAM
                (i32.const 64) (i32.const 128)))
    (drop (call $asr_write (local.get $asr) (i32.const 256) (i32.const 16)))  ;; 16
    (drop (call $asr_write (local.get $asr) (i32.const 256) (i32.const 1)))   ;; -EAGAIN
    (drop (call $wait (local.get $ep) (i32.const 64)))                  ;; 0: nothing ready
    (drop (call $wait (local.get $ep) (i32.const 4)))                   ;; -ENOSPC
    (drop (call $asr_close (local.get $asr)))                           ;; 0
    (drop (call $wait (local.get $ep) (i32.const 64)))                  ;; 1 record: HUP
    (drop (call $ep_close (local.get $ep))))
)
"""
'''

CELLS = [
    md('''
# 1 · The epoll tour

spear_lab guests talk to the host through a small, syscall-like ABI: every resource is an
**fd** (a number from 1000 up), and one **epoll** tells a guest which fds are ready. This
notebook walks through the rules one hostcall at a time:

1. fds and **interest** — an epoll reports only the bits you asked for;
2. **level-triggered** readiness — a ready fd stays reported until its state changes;
3. **-EAGAIN** — a full send queue refuses a write, and `EPOLLOUT` goes away;
4. **-ENOSPC** — a wait with no room for a single record;
5. **EPOLLHUP** — what a closed fd reports.

First from Python (every hostcall is a method), then from a WebAssembly guest written by
hand in WAT, with a timeline of what happened.
'''),
    code(SETUP),
    md('''
## A session and its ABI

A `Session` owns one host: its fd table, its I/O loop (a background thread) and a
**Trace**, a timestamped record of every hostcall, readiness change and queue level.
`session.abi` has one method per hostcall; each call is recorded under the name `python`.
'''),
    code('''
from spear_lab.abi import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EpollOp, FdCtl, RtasrCtl, errno_name

session = Session()
abi = session.abi
session'''),
    md('''
## fds

`spear_epoll_create` and `rtasr_create` never fail; they return the next fd number. An
rtasr fd is a realtime-transcription stream: audio goes in with `rtasr_write`, events come
out with `rtasr_read`.
'''),
    code('''
ep = abi.spear_epoll_create()
asr = abi.rtasr_create()
ep, asr'''),
    md('''
## Interest and readiness

`spear_epoll_ctl(ep, ADD, fd, mask)` says which bits of `fd` this epoll should report.
`spear_epoll_wait(ep, max_records, timeout_ms)` returns `(fd, bits)` pairs. A fresh rtasr
fd has room in its send queue, so it is **writable**: `EPOLLOUT` (4).
'''),
    code('''
abi.spear_epoll_ctl(ep, EpollOp.ADD, asr, EPOLLIN | EPOLLOUT | EPOLLHUP)
first = abi.spear_epoll_wait(ep, 8, 0)
first'''),
    md('''
## Level-triggered

Nothing is consumed by a wait: ask again and the answer is the same, as long as the fd's
state has not changed. (That is why a guest must drop `EPOLLOUT` from its interest when it
has nothing to write — or every wait returns at once.)
'''),
    code('''
again = abi.spear_epoll_wait(ep, 8, 0)
again == first'''),
    md('''
Interest filters what is reported. With only `EPOLLIN` in the mask the writable fd is not
reported at all — the wait times out (`timeout_ms=0`: it just polls) with an empty list.
'''),
    code('''
abi.spear_epoll_ctl(ep, EpollOp.MOD, asr, EPOLLIN | EPOLLHUP)
filtered = abi.spear_epoll_wait(ep, 8, 0)
abi.spear_epoll_ctl(ep, EpollOp.MOD, asr, EPOLLIN | EPOLLOUT | EPOLLHUP)
filtered'''),
    md('''
## -EAGAIN: a full send queue

Writes are all-or-nothing. With a send queue of 16 bytes, 16 bytes fit; one more byte is
refused with `-EAGAIN` (-11) and nothing is queued. `EPOLLOUT` means *strictly below* the
limit, so it disappears as soon as the queue is full. (No transport is connected here, so
nothing drains the queue.)
'''),
    code('''
abi.rtasr_ctl(asr, RtasrCtl.SET_PARAM, b'{"key":"max_send_queue_bytes","value":16}')
wrote = abi.rtasr_write(asr, bytes(16))
refused = abi.rtasr_write(asr, b"x")
after_full = abi.spear_epoll_wait(ep, 8, 0)
wrote, refused, errno_name(refused), after_full'''),
    md('''
## -ENOSPC: no room for one record

A wait needs room for at least one 8-byte record (i32 fd, i32 events). A guest that passes
a smaller buffer gets `-ENOSPC` (-28), and the host writes the length it needs (8) back into
the guest's length cell. From Python, `max_records=0` is the same mistake.
'''),
    code('''
no_room = abi.spear_epoll_wait(ep, 0, 0)
no_room, errno_name(no_room)'''),
    md('''
## EPOLLHUP: a closed fd

Closing an fd wakes every epoll watching it; the fd then reports `EPOLLHUP` (0x10) when
HUP is in the interest mask. The number is never reused, and `GET_STATUS` still answers.
'''),
    code('''
abi.rtasr_close(asr)
after_close = abi.spear_epoll_wait(ep, 8, 0)
status = abi.spear_fd_ctl(asr, FdCtl.GET_STATUS)
after_close, status'''),
    md('''
The fd table of the Python host, as the ABI's own `GET_STATUS` commands report it:
'''),
    code('''
session.fds'''),
    md('''
## The picture

The readiness timeline has one lane per fd and bit, and a lane of `spear_epoll_wait`
calls: a dot where a wait returned records, a cross for an empty answer, a red square for
an error. `axis="step"` spaces the recorded moments evenly (these Python calls are
microseconds apart).
'''),
    code('''
from spear_lab.views import HostcallLog, timeline_figure

timeline_figure(session.trace, "python", axis="step")'''),
    md('''
Every call, its arguments, its result and the errno name — filterable by guest, hostcall
and result:
'''),
    code('''
HostcallLog(session.trace, live=False)'''),
    md('''
## The same tour from a guest

Below is a WebAssembly guest written by hand in WAT. It makes the same calls: its
`spear_epoll_wait` takes a pointer to a record buffer and a pointer to a *length cell*
holding the room in bytes (64 = 8 records; 4 = not even one). A Session accepts WAT text
directly; the guest runs in its own thread, on its own fd table (numbered from 1000 again).
'''),
    code(TOUR_WAT),
    code('''
result = session.run(TOUR_WAT, name="tour")
result.ok, result.duration_s < 5'''),
    md('''
The guest printed nothing — the Trace saw every call:
'''),
    code('''
guest_calls = [(r["name"], r["rc"], r["errno"]) for r in session.trace.hostcalls("tour")]
for name, rc, err in guest_calls:
    print(f"{name:20} {rc:6}  {err}")'''),
    code('''
timeline_figure(session.trace, "tour", axis="step")'''),
    md('''
## The C version: every rule, checked

The built-in `epoll_tour` guest (C, `guests/c/epoll_tour.c`) walks 45 steps — including
`-EBADF` for unknown fds, `EPOLLERR`, mic fds and closing the epoll itself — and compares
every result with the ABI reference:
'''),
    code('''
c_tour = session.run("epoll_tour", timeout=60)
print(c_tour.stdout.splitlines()[-1])'''),
    md('''
## Check

The claims of this notebook: a fresh rtasr fd is writable; waits are level-triggered;
interest filters; a full queue gives `-EAGAIN` and no `EPOLLOUT`; a wait with no room gives
`-ENOSPC`; a closed fd reports `EPOLLHUP` — and a guest sees exactly the same results as
Python.
'''),
    code('''
assert (ep, asr) == (1000, 1001)
assert first == [(asr, EPOLLOUT)] and again == first
assert filtered == []
assert (wrote, refused, after_full) == (16, -11, [])
assert no_room == -28
assert after_close == [(asr, EPOLLHUP)] and b'"closed":true' in status

expected = [("spear_epoll_create", 1000), ("rtasr_create", 1001), ("spear_epoll_ctl", 0),
            ("spear_epoll_wait", 1), ("rtasr_ctl", 0), ("rtasr_write", 16), ("rtasr_write", -11),
            ("spear_epoll_wait", 0), ("spear_epoll_wait", -28), ("rtasr_close", 0),
            ("spear_epoll_wait", 1), ("spear_epoll_close", 0)]
assert [(n, rc) for n, rc, _ in guest_calls] == expected
tour_lanes = {lane.label for lane in timeline_figure(session.trace, "tour").lanes}
assert {"tour: fd 1001 rtasr OUT", "tour: fd 1001 rtasr HUP"} <= tour_lanes
assert c_tour.exit_code == 0 and "mismatches=0" in c_tour.stdout
session.close()
print("all claims hold")'''),
]
