"""Lesson 01c_epoll_basics: interest, records, level triggering, waking (R13–R17, R19, R22, R23)."""

from __future__ import annotations

from .common import SETUP_ABI, code, md

STORED = True

CELLS = [
    md('''
# 1c · epoll: interest, records and level triggering

An epoll fd tells a guest which of its fds are ready, so it can sleep in one place. A
guest says what it cares about with `spear_epoll_ctl(epfd, op, fd, interest)` and asks
with `spear_epoll_wait(epfd, out_ptr, out_len_ptr, timeout_ms)`, which writes one 8-byte
record per ready fd ([docs/abi.md](../docs/abi.md) §3).

From Python, `Host.spear_epoll_wait(epfd, max_records, timeout_ms)` returns the records as
`(fd, events)` pairs. To see the *bytes* and the *length cell* a guest sees, this lesson
also uses a `Probe`: a tiny real wasm guest (`link_all`) whose memory Python fills before
each hostcall and reads after it — the pointer checks and the write-back are the real
wasm glue's. `probe.host` is an ordinary `Host`, sharing one fd table with the probe.
'''),
    code(SETUP_ABI),
    code('''
from spear_lab import Probe

probe = Probe()
host = probe.host
probe'''),
    md('''
## Interest bits outside 0x01D are dropped (R13)

Only four bits mean something: `EPOLLIN` 0x1, `EPOLLOUT` 0x4, `EPOLLERR` 0x8, `EPOLLHUP`
0x10. Everything else — Linux's `EPOLLET`, `EPOLLONESHOT`, `EPOLLRDHUP` … — is silently
dropped, so an all-ones mask is stored as 0x01D. There is no edge-triggered mode to ask for.
'''),
    code('''
ep = host.spear_epoll_create()
a = host.rtasr_create()
show(f"spear_epoll_ctl({ep}, ADD, {a}, 0xFFFFFFFF)", host.spear_epoll_ctl(ep, EpollOp.ADD, a, 0xFFFFFFFF))
stored = host.table.get(ep).watches[a]
print(f"interest stored for fd {a}: {stored:#05x} = {'|'.join(mask_names(stored))}")''',
         rules={"R13": "interest stored for fd 1001: 0x01d = EPOLLIN|EPOLLOUT|EPOLLERR|EPOLLHUP"}),
    md('''
## Records: 8 bytes, fd then events, lowest fd first (R14, R23)

Two fresh rtasr fds are both writable. Added highest first, they still come back **lowest
fd first**, one record each (all of an fd's ready bits OR-ed into one record). The result
is the record count, and the cell — which held the buffer's capacity in bytes — now holds
`8 × count`. The raw bytes are little-endian: fd as `int32`, then the bits as `uint32`
(`e9030000` is 1001).
'''),
    code('''
ep = host.spear_epoll_create()
low, high = host.rtasr_create(), host.rtasr_create()
show(f"spear_epoll_ctl({ep}, ADD, {high}, IN|OUT)", host.spear_epoll_ctl(ep, EpollOp.ADD, high, EPOLLIN | EPOLLOUT))
show(f"spear_epoll_ctl({ep}, ADD, {low}, IN|OUT)", host.spear_epoll_ctl(ep, EpollOp.ADD, low, EPOLLIN | EPOLLOUT))
two = probe.epoll_wait(ep, capacity=64)
print(two)
print("record bytes:", two.data.hex(" ", 4))''',
         rules={"R14": "records (fd 1003, EPOLLOUT), (fd 1004, EPOLLOUT)",
                "R23": "-> 2; cell 64 -> 16"}),
    md('''
## Room for one record, two ready fds (R19)

Give the wait room for one record (a cell of 8). It returns the **lower** fd. Ask again:
the **same lower fd** again. Nothing was consumed — the lower fd is still writable, and a
level-triggered wait reports what *is*, not what changed. The higher fd is not "next in
line"; it shows up only when the buffer is bigger or the lower fd stops being ready.
'''),
    code('''
print(probe.epoll_wait(ep, capacity=8))
print(probe.epoll_wait(ep, capacity=8))''',
         rules={"R19": "spear_epoll_wait(1002, buf[8], 0) -> 1; cell 8 -> 8; records (fd 1003, EPOLLOUT)\n"
                         "spear_epoll_wait(1002, buf[8], 0) -> 1; cell 8 -> 8; records (fd 1003, EPOLLOUT)"}),
    md('''
So after a wakeup a guest either **consumes the condition** (reads until `-EAGAIN`,
writes until `-EAGAIN`) or **takes the bit out** of its interest with `EPOLL_CTL_MOD`.
Here the guest has nothing to write, so it drops `EPOLLOUT` for the lower fd and the
higher fd gets its turn:
'''),
    code('''
show(f"spear_epoll_ctl({ep}, MOD, {low}, IN)", host.spear_epoll_ctl(ep, EpollOp.MOD, low, EPOLLIN))
print(probe.epoll_wait(ep, capacity=8))''', check=True),
    md('''
## A timeout with nothing ready (R15)

A 5 ms wait on an fd that never becomes ready returns 0 records and stores 0 in the cell —
a timeout is not an error (there is no `-ETIMEDOUT`).
'''),
    code('''
quiet = host.spear_epoll_create()
idle = host.rtasr_create()
show(f"spear_epoll_ctl({quiet}, ADD, {idle}, IN)", host.spear_epoll_ctl(quiet, EpollOp.ADD, idle, EPOLLIN))
print(probe.epoll_wait(quiet, capacity=64, timeout_ms=5))''',
         rules={"R15": "spear_epoll_wait(1005, buf[64], 5) -> 0; cell 64 -> 0"}),
    md('''
## Another thread makes the fd readable (R16)

A blocked wait sleeps on a condition and is woken by any readiness change of a watched
fd. Here the other thread is the host's I/O loop: the **stub transport** of an rtasr fd,
told to emit a fake transcription event every 10 ms. The wait below is allowed 200 ms;
it comes back with `EPOLLIN` as soon as the first event is queued, long before its
timeout.
'''),
    code('''
import time

live = host.rtasr_create()
host.rtasr_ctl(live, RtasrCtl.SET_PARAM, b'{"key":"stub_event_interval_ms","value":10}')
show(f"spear_epoll_ctl({quiet}, ADD, {live}, IN)", host.spear_epoll_ctl(quiet, EpollOp.ADD, live, EPOLLIN))
show(f"rtasr_ctl({live}, CONNECT)", host.rtasr_ctl(live, RtasrCtl.CONNECT))
t0 = time.monotonic()
woke = host.spear_epoll_wait(quiet, 8, 200)
waited_ms = (time.monotonic() - t0) * 1000
show(f"spear_epoll_wait({quiet}, 8, 200)", woke)
print("woke before the 200 ms timeout:", waited_ms < 150)''',
         rules={"R16": "-> [(fd 1007, EPOLLIN)]\nwoke before the 200 ms timeout: True"}),
    md('''
## Level triggering, seen on input

The event is still queued, so every wait reports it again — at once, whatever the
timeout. Reading until `-EAGAIN` empties the queue (the stub keeps producing, so we stop
it by closing the fd and drop it from the set):
'''),
    code('''
print("again:", host.spear_epoll_wait(quiet, 8, 0) == woke)
event = host.rtasr_read(live)
print("first event:", event[:40].decode(), "…")
show(f"rtasr_close({live})", host.rtasr_close(live))
show(f"spear_epoll_ctl({quiet}, DEL, {live}, 0)", host.spear_epoll_ctl(quiet, EpollOp.DEL, live, 0))''',
         check=True),
    md('''
## HUP after a close — when asked for (R17) — and never when not (R22)

A close wakes every epoll watching the fd, and the fd **stays in the set** (see 1d for
how Linux differs). A wait reports `effective mask & interest` and nothing else, so:

- watched with `EPOLLHUP` in the interest: reported with `EPOLLHUP`;
- watched for `EPOLLIN` only: **never reported again** — the guest would sleep through
  the close. Linux always reports ERR and HUP; the SPEAR ABI filters them by the mask,
  which is why every sample registers `EPOLLIN|EPOLLERR|EPOLLHUP`.
'''),
    code('''
hup_ep = host.spear_epoll_create()
asked, not_asked = host.rtasr_create(), host.rtasr_create()
host.spear_epoll_ctl(hup_ep, EpollOp.ADD, asked, EPOLLIN | EPOLLHUP)
host.spear_epoll_ctl(hup_ep, EpollOp.ADD, not_asked, EPOLLIN)
host.rtasr_close(asked)
host.rtasr_close(not_asked)
show(f"spear_epoll_wait({hup_ep}, 8, 0)  # both closed", host.spear_epoll_wait(hup_ep, 8, 0))''',
         rules={"R17": "# both closed    -> [(fd 1009, EPOLLHUP)]", "R22": "# both closed    -> [(fd 1009, EPOLLHUP)]"}),
    md('''
The same filter hides `EPOLLERR`. A mic fd told to use a capture device, with the stub
fallback turned off, fails when the host cannot open that device: `-EIO`, and the fd is in
error (`last_error` set, `EPOLLERR` in its mask). This lesson's host names a device that
exists on no machine (`device:no-such-card`), so the result is the same everywhere. Watched for `EPOLLIN` only, the failed
fd is not reported; with `EPOLLERR` asked for, it is.
'''),
    code('''
host.config.mic_device = "device:no-such-card"  # the host's microphone policy
err_ep = host.spear_epoll_create()
m = host.mic_create()
show(f"mic_ctl({m}, SET_PARAM, device, no fallback)",
     host.mic_ctl(m, 1, b'{"source":"device","fallback":{"to_stub":false}}'))
show(f"fd_ctl({m}, GET_STATUS)", host.spear_fd_ctl(m, FdCtl.GET_STATUS))
host.spear_epoll_ctl(err_ep, EpollOp.ADD, m, EPOLLIN)
show(f"spear_epoll_wait({err_ep}, 8, 0)  # IN only", host.spear_epoll_wait(err_ep, 8, 0))
host.spear_epoll_ctl(err_ep, EpollOp.MOD, m, EPOLLIN | EPOLLERR | EPOLLHUP)
show(f"spear_epoll_wait({err_ep}, 8, 0)  # IN|ERR|HUP", host.spear_epoll_wait(err_ep, 8, 0))''',
         rules={"R22": "# IN only        -> []\nspear_epoll_wait(1011, 8, 0)  # IN|ERR|HUP     -> [(fd 1012, EPOLLERR)]"}),
    md('''
## Check
'''),
    code('''
assert stored == 0x1D
assert two.rc == 2 and two.cell_out == 16 and [fd for fd, _ in two.records] == [low, high]
assert two.data[:8] == low.to_bytes(4, "little") + EPOLLOUT.to_bytes(4, "little")
one = probe.epoll_wait(ep, capacity=8)
assert one.rc == 1 and one.cell_out == 8
assert probe.epoll_wait(quiet, capacity=64, timeout_ms=5).cell_out == 0
assert woke == [(live, EPOLLIN)]
assert host.spear_epoll_wait(hup_ep, 8, 0) == [(asked, EPOLLHUP)]
assert host.spear_epoll_wait(err_ep, 8, 0) == [(m, EPOLLERR)]
probe.close()
print("all claims hold")''', check=True),
]
