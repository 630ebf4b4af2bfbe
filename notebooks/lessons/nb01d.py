"""Lesson 01d_epoll_edge_cases: errors and their order, EFAULT, ENOSPC, the divergences
from Linux, closing under a waiter, the Error state (R18, R20, R21, R24–R26)."""

from __future__ import annotations

from .common import SETUP_ABI, code, md

STORED = True

UNSHOWABLE = {
    "R26": "a lost-wakeup race is a matter of chance, so the rule is a stress test of many "
           "races (tests/test_abi_epoll.py runs 3000); the lesson runs 300 of them live, "
           "shows the count missed and a histogram of the wake-up latencies, whose figure "
           "differs from run to run",
}

CELLS = [
    md('''
# 1d · epoll edge cases: errors, the length cell, Linux, closing under a waiter

The previous lesson showed what a well-behaved guest sees. This one is about everything
else: which error wins when several things are wrong, what happens with bad pointers and
short buffers, where spear_lab deliberately differs from Linux `epoll(7)`, and what a close
does to a thread that is **blocked** in a wait — shown live, with real threads.
'''),
    code(SETUP_ABI),
    code('''
import threading
import time

from spear_lab import Probe
from spear_lab.views import SideBySide

probe = Probe()
host = probe.host
ep = host.spear_epoll_create()
a, b = host.rtasr_create(), host.rtasr_create()
show(f"spear_epoll_ctl({ep}, ADD, {a}, OUT)", host.spear_epoll_ctl(ep, EpollOp.ADD, a, EPOLLOUT))
show(f"spear_epoll_ctl({ep}, ADD, {b}, OUT)", host.spear_epoll_ctl(ep, EpollOp.ADD, b, EPOLLOUT))'''),
    md('''
## -ENOSPC: a buffer too small for one record (R18)

A wait needs room for at least one 8-byte record. With a cell holding less, the host
writes **8** into the cell — "this is what you need" — and returns `-ENOSPC`, the same
contract as every other output of the ABI (§1.4): the needed length goes back in the
cell, nothing is consumed. The `Probe` shows the cell before and after.
'''),
    code('''
for capacity in (0, 4, 7):
    print(probe.epoll_wait(ep, capacity))
print(probe.epoll_wait(ep, 8))''',
         rules={"R18": "spear_epoll_wait(1000, buf[4], 0) -> -28 (-ENOSPC); cell 4 -> 8"}),
    md('''
## -EFAULT: pointers outside memory

A pointer is an offset into the guest's memory (64 KiB here). The cell must lie inside it
— checked first of all — and so must the records. When the records do not fit, the wait
answers `-EFAULT` and leaves the cell alone; nothing is consumed, so the same fds are still
ready for the next, correct call.
'''),
    code('''
show(f"wait({ep}, out=BUF, cell=70000)  # cell outside", probe.call("spear_epoll_wait", ep, probe.BUF, 70000, 0))
show(f"wait({ep}, out=BUF, cell=-4)  # negative", probe.call("spear_epoll_wait", ep, probe.BUF, -4, 0))
probe.set_cell(16)
show(f"wait({ep}, out=65528, cell=16)  # 2 records", probe.call("spear_epoll_wait", ep, 65528, probe.CELL, 0))
print("cell after the -EFAULT:", probe.cell())
print(probe.epoll_wait(ep, 16))''', check=True),
    md('''
## Which error wins

When several things are wrong at once, the **first check in the documented order**
decides (§10). For `spear_epoll_wait`: the cell (`-EFAULT`), then the capacity
(`-ENOSPC`), then the epfd (`-EBADF`). So a too-small buffer gives `-ENOSPC` even for an
epfd that does not exist — a guest learns about its buffer first.
'''),
    code('''
show("wait(999, cell outside memory)", probe.call("spear_epoll_wait", 999, probe.BUF, 70000, 0))
print(probe.epoll_wait(999, 4))
print(probe.epoll_wait(999, 64))''', check=True),
    md('''
## spear_epoll_ctl's errors, in order (R20)

1. `epfd == fd` is `-EINVAL` even when neither exists (an epoll cannot watch itself);
2. an unknown `epfd` or `fd` is `-EBADF`;
3. an `epfd` that is not an epoll, or is closed, is `-EBADF`;
4. an `fd` that is an epoll is `-EINVAL` (no nesting);
5. a full watch set (4096) is `-ENOMEM`;
6. an `op` other than 1, 2, 3 is `-EINVAL` — last, so an unknown fd with a bad op is `-EBADF`.
'''),
    code('''
other = host.spear_epoll_create()
dead = host.spear_epoll_create()
host.spear_epoll_close(dead)
show("ctl(5000, ADD, 5000)  # self, unknown", host.spear_epoll_ctl(5000, EpollOp.ADD, 5000, EPOLLIN))
show(f"ctl({ep}, ADD, {ep})  # self", host.spear_epoll_ctl(ep, EpollOp.ADD, ep, EPOLLIN))
show(f"ctl({ep}, ADD, {other})  # an epoll", host.spear_epoll_ctl(ep, EpollOp.ADD, other, EPOLLIN))
show(f"ctl({ep}, 4, {a})  # op 4", host.spear_epoll_ctl(ep, 4, a, EPOLLIN))
show(f"ctl(999, ADD, {a})  # unknown epfd", host.spear_epoll_ctl(999, EpollOp.ADD, a, EPOLLIN))
show(f"ctl({ep}, ADD, 999)  # unknown fd", host.spear_epoll_ctl(ep, EpollOp.ADD, 999, EPOLLIN))
show(f"ctl({a}, ADD, {b})  # epfd not an epoll", host.spear_epoll_ctl(a, EpollOp.ADD, b, EPOLLIN))
show(f"ctl({dead}, ADD, {a})  # closed epfd", host.spear_epoll_ctl(dead, EpollOp.ADD, a, EPOLLIN))
show(f"ctl({ep}, 4, 999)  # bad op AND unknown fd", host.spear_epoll_ctl(ep, 4, 999, EPOLLIN))''',
         rules={"R20": "ctl(1004, ADD, 1001)  # closed epfd            -> -9 (-EBADF)"}),
    md('''
## No EEXIST, no ENOENT, closed fds welcome (R21)

Linux refuses to ADD an fd twice (`EEXIST`) and to MOD or DEL one it does not watch
(`ENOENT`). The SPEAR ABI accepts all three: a second ADD **replaces** the mask, DEL of an
unwatched fd does nothing, MOD of an unwatched fd acts as ADD. Guests written for SPEAR
ADD again to change a mask; an error would break them. A **closed** fd may be added too:
it still exists as a tombstone and is reported with `EPOLLHUP` at once.
'''),
    code('''
c = host.rtasr_create()
show(f"ctl({ep}, ADD, {c}, IN)", host.spear_epoll_ctl(ep, EpollOp.ADD, c, EPOLLIN))
show(f"ctl({ep}, ADD, {c}, IN|HUP)  # again", host.spear_epoll_ctl(ep, EpollOp.ADD, c, EPOLLIN | EPOLLHUP))
print(f"interest of {c}: {'|'.join(mask_names(host.table.get(ep).watches[c]))}")
show(f"ctl({ep}, DEL, {c})", host.spear_epoll_ctl(ep, EpollOp.DEL, c, 0))
show(f"ctl({ep}, DEL, {c})  # not watched", host.spear_epoll_ctl(ep, EpollOp.DEL, c, 0))
host.rtasr_close(c)
show(f"ctl({ep}, ADD, {c}, HUP)  # closed fd", host.spear_epoll_ctl(ep, EpollOp.ADD, c, EPOLLHUP))
show(f"spear_epoll_wait({ep}, 8, 0)", host.spear_epoll_wait(ep, 8, 0))
show(f"ctl({ep}, DEL, {c})  # a closed fd", host.spear_epoll_ctl(ep, EpollOp.DEL, c, 0))''',
         rules={"R21": "# closed fd         -> 0\n"
                       "spear_epoll_wait(1000, 8, 0)                   -> [(fd 1001, EPOLLOUT), (fd 1002, EPOLLOUT), (fd 1005, EPOLLHUP)]"}),
    md('''
## Linux side by side

Each row below runs **both**: the Linux column calls the real kernel through Python's
`select.epoll` (on pipes), the spear_lab column calls `Host`. Where they differ, the last
column says why spear_lab keeps the SPEAR behaviour (§3.10).
'''),
    code('''
import ctypes
import errno
import os
import select


def linux(fn):
    """Run fn against the real kernel: '0', its result, or '-1, errno NAME'."""
    try:
        out = fn()
    except OSError as exc:
        return f"-1, errno {errno.errorcode[exc.errno]}"
    return "0" if out is None else str(out)


def spear(rc):
    return f"{rc} ({errno_name(rc)})" if isinstance(rc, int) and rc < 0 else str(rc)


def records(result):
    return "[" + ", ".join("|".join(mask_names(ev)) for _, ev in result) + "]"


rows = []
lx, (r, w) = select.epoll(), os.pipe()
sp, s1 = host.spear_epoll_create(), host.rtasr_create()
lx.register(r, select.EPOLLIN)
host.spear_epoll_ctl(sp, EpollOp.ADD, s1, EPOLLIN)
rows.append(["ADD of a watched fd", linux(lambda: lx.register(r, select.EPOLLIN)),
             spear(host.spear_epoll_ctl(sp, EpollOp.ADD, s1, EPOLLIN | EPOLLHUP)) + ", mask replaced",
             "SPEAR guests ADD again to change a mask"])
r2, w2 = os.pipe()
s2 = host.rtasr_create()
rows.append(["MOD of an unwatched fd", linux(lambda: lx.modify(r2, select.EPOLLIN)),
             spear(host.spear_epoll_ctl(sp, EpollOp.MOD, s2, EPOLLIN)) + ", acts as ADD",
             "compatibility; registered fully (a SPEAR host bug fixed, R24)"])
host.spear_epoll_ctl(sp, EpollOp.DEL, s2, 0)
rows.append(["DEL of an unwatched fd", linux(lambda: lx.unregister(r2)),
             spear(host.spear_epoll_ctl(sp, EpollOp.DEL, s2, 0)), "'make sure it is not watched' is harmless"])
os.close(w)  # the pipe's writer hangs up; the reader was registered for IN only
host.rtasr_close(s1)
host.spear_epoll_ctl(sp, EpollOp.MOD, s1, EPOLLIN)  # IN only, like the Linux side
rows.append(["hang-up, HUP not in the mask", records(lx.poll(0)), records(host.spear_epoll_wait(sp, 8, 0)),
             "SPEAR filters by the mask: ask for ERR|HUP"])
r3, w3 = os.pipe()
lx3, sp3, s3 = select.epoll(), host.spear_epoll_create(), host.rtasr_create()
lx3.register(r3, select.EPOLLIN | select.EPOLLHUP)
host.spear_epoll_ctl(sp3, EpollOp.ADD, s3, EPOLLIN | EPOLLHUP)
os.close(r3)
host.rtasr_close(s3)
rows.append(["wait after closing a watched fd", records(lx3.poll(0)), records(host.spear_epoll_wait(sp3, 8, 0)),
             "numbers are never reused: the guest sees the close"])
rows.append(["ADD of a closed fd", linux(lambda: lx3.register(r3, select.EPOLLIN)),
             spear(host.spear_epoll_ctl(sp3, EpollOp.ADD, s3, EPOLLHUP)), "the fd still exists, as a tombstone"])
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.epoll_wait(lx3.fileno(), ctypes.create_string_buffer(64), 0, 0)
rows.append(["wait with room for 0 records", f"{rc}, errno {errno.errorcode[ctypes.get_errno()]}",
             spear(host.spear_epoll_wait(sp3, 0, 0)) + ", 8 in the cell", "the length-cell protocol of the ABI"])
rows.append(["an epoll watching an epoll", linux(lambda: lx3.register(lx.fileno(), select.EPOLLIN)),
             spear(host.spear_epoll_ctl(sp3, EpollOp.ADD, sp, EPOLLIN)), "not in the SPEAR ABI"])
rows.append(["an epoll watching itself", linux(lambda: lx3.register(lx3.fileno(), select.EPOLLIN)),
             spear(host.spear_epoll_ctl(sp3, EpollOp.ADD, sp3, EPOLLIN)), "same"])
r4, w4 = os.pipe()
lx4, sp4, s4 = select.epoll(), host.spear_epoll_create(), host.rtasr_create()
lx4.register(r4, select.EPOLLIN | select.EPOLLET)
host.spear_epoll_ctl(sp4, EpollOp.ADD, s4, EPOLLOUT | select.EPOLLET)
os.write(w4, b"x")
lx4.poll(0)
host.spear_epoll_wait(sp4, 8, 0)
rows.append(["EPOLLET, second wait", records(lx4.poll(0)), records(host.spear_epoll_wait(sp4, 8, 0)),
             "level-triggered only; the ET bit is dropped"])
for fd in (r, r2, w2, w3, r4, w4):
    os.close(fd)
for e in (lx, lx3, lx4):
    e.close()
SideBySide(rows, title="the same calls on Linux and on spear_lab")''',
         rules={"R21": "ADD of a watched fd              -1, errno EEXIST"}),
    md('''
The last divergence needs two threads: on Linux a wait on an epoll that another thread
closes keeps its own reference and sleeps on until its timeout; on spear_lab it comes
back with `-EBADF` at once. That is R25, next.

## Closing under a blocked waiter, live

`blocked_wait` starts `spear_epoll_wait` in a second thread and gives it 50 ms to block.
Then the main thread acts, and we see what the waiter got and roughly when.
'''),
    code('''
def blocked_wait(epfd, timeout_ms):
    """spear_epoll_wait(epfd, 8, timeout_ms) in another thread, after it has blocked."""
    box = {}

    def run():
        t0 = time.monotonic()
        box["result"] = host.spear_epoll_wait(epfd, 8, timeout_ms)
        box["ms"] = (time.monotonic() - t0) * 1000

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.05)
    box["blocked"] = thread.is_alive()
    return thread, box


def report(thread, box, timeout_ms):
    thread.join(5)
    print("waiter was blocked:", box["blocked"])
    show("the waiter's spear_epoll_wait", box["result"])
    print(f"came back long before its {timeout_ms} ms timeout:", box["ms"] < timeout_ms / 2)'''),
    md('''
**A close wakes a blocked waiter.** The waiter watches an fd for `EPOLLHUP`; the main
thread closes that fd. The close marks the entry closed, adds `EPOLLHUP` and wakes every
epoll watching it.
'''),
    code('''
wep, victim = host.spear_epoll_create(), host.rtasr_create()
host.spear_epoll_ctl(wep, EpollOp.ADD, victim, EPOLLIN | EPOLLHUP)
thread, box = blocked_wait(wep, 5000)
show(f"main thread: rtasr_close({victim})", host.rtasr_close(victim))
report(thread, box, 5000)''', check=True),
    md('''
**Closing the epoll itself under a waiter (R25).** The waiter is blocked on an epoll that
the main thread closes. spear_lab wakes it with `-EBADF` at once (the SPEAR reference
spun until the timeout — forever with `-1`; Linux sleeps on, as the table says).
'''),
    code('''
cep = host.spear_epoll_create()
host.spear_epoll_ctl(cep, EpollOp.ADD, host.rtasr_create(), EPOLLIN)
thread, box = blocked_wait(cep, 5000)
show(f"main thread: spear_epoll_close({cep})", host.spear_epoll_close(cep))
report(thread, box, 5000)''',
         rules={"R25": "the waiter's spear_epoll_wait                  -> -9 (-EBADF)\n"
                       "came back long before its 5000 ms timeout: True"}),
    md('''
**MOD of a never-added fd registers it fully (R24).** MOD of an unwatched fd acts as ADD.
The SPEAR reference host half-registered such an fd: it was reported, but its changes did
not wake a blocked wait. Here the main thread MODs an rtasr fd that was never added and
then connects its stub transport; the stub's first event (20 ms later) wakes the waiter.
'''),
    code('''
mep, late = host.spear_epoll_create(), host.rtasr_create()
host.rtasr_ctl(late, RtasrCtl.SET_PARAM, b'{"key":"stub_event_interval_ms","value":20}')
show(f"ctl({mep}, MOD, {late}, IN)  # never added", host.spear_epoll_ctl(mep, EpollOp.MOD, late, EPOLLIN))
thread, box = blocked_wait(mep, 5000)
show(f"main thread: rtasr_ctl({late}, CONNECT)", host.rtasr_ctl(late, RtasrCtl.CONNECT))
report(thread, box, 5000)
show(f"rtasr_close({late})", host.rtasr_close(late))''',
         rules={"R24": "the waiter's spear_epoll_wait                  -> [(fd 1018, EPOLLIN)]\n"
                       "came back long before its 5000 ms timeout: True"}),
    md('''
## No lost wake-ups (R26)

The dangerous moment is a readiness change that lands *just as* a wait starts: after the
wait scanned and found nothing, before it went to sleep. spear_lab scans and sleeps under
one lock, so such a change is never lost. A race is a matter of chance, so the rule is
checked by many of them: 300 rounds below, each with a fresh fd that a second thread closes
at the moment the main thread enters a 1-second wait for `EPOLLHUP`. A lost wake-up would
show as a round that waits the whole second and returns nothing.
'''),
    code('''
import matplotlib.pyplot as plt

rounds, missed, latencies = 300, 0, []
race_ep = host.spear_epoll_create()
start = threading.Barrier(2)


def closer(fd):
    start.wait()
    host.rtasr_close(fd)


for _ in range(rounds):
    fd = host.rtasr_create()
    host.spear_epoll_ctl(race_ep, EpollOp.ADD, fd, EPOLLHUP)
    t = threading.Thread(target=closer, args=(fd,))
    t.start()
    start.wait()
    t0 = time.monotonic()
    got = host.spear_epoll_wait(race_ep, 8, 1000)
    latencies.append((time.monotonic() - t0) * 1000)
    missed += got != [(fd, EPOLLHUP)]
    t.join()
    host.spear_epoll_ctl(race_ep, EpollOp.DEL, fd, 0)
print(f"missed {missed} of {rounds} races")
print("slowest wake-up under 500 ms:", max(latencies) < 500)''',
         rules={"R26": "missed 0 of 300 races\nslowest wake-up under 500 ms: True"}),
    md('''
The figure of this run (it differs from run to run; the count above does not): how long
each wait took from the moment both threads were released. Most waits find the fd
already closed; the rest are woken within a fraction of a millisecond. A lost wake-up
would sit at 1000 ms.
'''),
    code('''
fig, ax = plt.subplots(figsize=(7, 2.6))
ax.hist(latencies, bins=40, color="#1565c0")
ax.set_xlabel("wait returned after (ms)")
ax.set_ylabel("races")
ax.set_title(f"{rounds} close-vs-wait races, {missed} missed")
plt.close(fig)
fig'''),
    md('''
## EPOLLERR and the Error state

An rtasr fd whose WebSocket connection fails enters the state `Error`. At that moment
`EPOLLERR` appears and `EPOLLOUT` disappears (a write could only fail), and a blocked wait
that asked for ERR wakes. Here the `ws_url` points at a loopback port that nobody listens
on (we bind one and close it again), so the connection is refused.
'''),
    code('''
import json
import socket

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
bad = host.rtasr_create()
host.rtasr_ctl(bad, RtasrCtl.SET_PARAM, b'{"key":"transport","value":"websocket"}')
host.rtasr_ctl(bad, RtasrCtl.SET_PARAM, json.dumps({"key": "ws_url", "value": f"ws://127.0.0.1:{port}/"}).encode())
eep = host.spear_epoll_create()
host.spear_epoll_ctl(eep, EpollOp.ADD, bad, EPOLLERR | EPOLLHUP)
show(f"rtasr_ctl({bad}, CONNECT)", host.rtasr_ctl(bad, RtasrCtl.CONNECT))
show(f"spear_epoll_wait({eep}, 8, 5000)  # ERR|HUP", host.spear_epoll_wait(eep, 8, 5000))
host.spear_epoll_ctl(eep, EpollOp.MOD, bad, EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP)
show(f"spear_epoll_wait({eep}, 8, 0)  # all four", host.spear_epoll_wait(eep, 8, 0))
status = json.loads(host.rtasr_ctl(bad, RtasrCtl.GET_STATUS))
print("state:", status["state"], "| last_error set:", bool(status["last_error"]))
show(f"rtasr_write({bad}, b'x')", host.rtasr_write(bad, b"x"))''', check=True),
    md('''
## Check
'''),
    code('''
assert probe.epoll_wait(ep, 4).cell_out == 8 and probe.epoll_wait(999, 4).rc == -Errno.ENOSPC
assert host.spear_epoll_ctl(5000, EpollOp.ADD, 5000, EPOLLIN) == -Errno.EINVAL
assert host.spear_epoll_ctl(ep, 4, 999, EPOLLIN) == -Errno.EBADF
assert [row[1] for row in rows[:3]] == ["-1, errno EEXIST", "-1, errno ENOENT", "-1, errno ENOENT"]
assert [row[2].split(",")[0] for row in rows[:3]] == ["0", "0", "0"]
assert missed == 0
assert status["state"] == "Error"
probe.close()
print("all claims hold")''', check=True),
]
