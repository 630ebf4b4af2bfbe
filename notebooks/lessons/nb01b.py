"""Lesson 01b_fd_table: numbers, kinds, closing, tombstones (rules R7–R12)."""

from __future__ import annotations

from .common import SETUP_ABI, code, md

STORED = True

CELLS = [
    md('''
# 1b · The fd table

Every resource a guest uses — an epoll, a realtime-transcription stream, a microphone — is
an **fd**: a number in the guest's own table. This lesson drives the table from Python
through `Host`, whose methods are the hostcalls themselves (same names, same results as
the wasm imports; [docs/abi.md](../docs/abi.md) §2). No guest, no network: every output
below is the same on every run, so it is stored in the notebook.

Each cell prints `call -> result`; a negative result is a negated Linux errno, shown with
its name.
'''),
    code(SETUP_ABI),
    md('''
## Numbers start at 1000 and are never reused (R7)

`*_create` returns the next number, whatever the kind. A closed fd keeps its number as a
*tombstone* until the instance ends, so a later create gets a fresh one: an old number
held by a guest can never name someone else's resource.
'''),
    code('''
host = Host()
ep = host.spear_epoll_create()
asr = host.rtasr_create()
mic = host.mic_create()
show("spear_epoll_create()", ep)
show("rtasr_create()", asr)
show("mic_create()", mic)
show(f"rtasr_close({asr})", host.rtasr_close(asr))
show("rtasr_create()  # 1001 is closed, not free", host.rtasr_create())''',
         rules={"R7": "rtasr_create()  # 1001 is closed, not free     -> 1003"}),
    md('''
## Closing: -EBADF only for what never existed (R8)

Closing an fd that was never created is a real mistake: `-EBADF`. Closing one that is
already closed is **not** an error — close is idempotent, so cleanup code may close
twice without checking.
'''),
    code('''
show("rtasr_close(999)", host.rtasr_close(999))
show(f"mic_close({mic})", host.mic_close(mic))
show(f"mic_close({mic})  # again", host.mic_close(mic))''',
         rules={"R8": "mic_close(1002)  # again                       -> 0"}),
    md('''
The first line is the `-EBADF` half of R8:
'''),
    code('''
rc = host.rtasr_close(999)
print(rc, errno_name(rc))''', rules={"R8": "-9 -EBADF"}),
    md('''
## Any close closes any kind (R9)

`spear_epoll_close`, `rtasr_close` and `mic_close` are one operation under three names
(the SPEAR reference host has it so). `rtasr_close` of an *epoll* fd closes the epoll; a
wait on it afterwards is `-EBADF`, because a closed fd answers nothing but another close,
`spear_fd_ctl` and being a *target* of `spear_epoll_ctl`.
'''),
    code('''
ep2 = host.spear_epoll_create()
show(f"rtasr_close({ep2})  # an epoll fd", host.rtasr_close(ep2))
show(f"spear_epoll_wait({ep2}, 8, 0)", host.spear_epoll_wait(ep2, 8, 0))''',
         rules={"R9": "spear_epoll_wait(1004, 8, 0)                   -> -9 (-EBADF)"}),
    md('''
## The effective mask of a closed fd (R10) and its status (R12)

Each entry carries a readiness mask. Closing adds `EPOLLHUP` and recomputes **nothing**:
a fresh rtasr fd is writable (`EPOLLOUT`), so once closed it reads `EPOLLOUT|EPOLLHUP`.
A mic fd never has `EPOLLOUT`, so a closed mic reads `EPOLLHUP` alone.

`spear_fd_ctl(fd, GET_STATUS)` still answers for a tombstone — with `"closed":true` — so a
guest (or a teacher) can always ask what a number was.
'''),
    code('''
out = host.rtasr_create()
show(f"fd_ctl({out}, GET_STATUS)  # open", host.spear_fd_ctl(out, FdCtl.GET_STATUS))
show(f"rtasr_close({out})", host.rtasr_close(out))
show(f"fd_ctl({out}, GET_STATUS)  # closed", host.spear_fd_ctl(out, FdCtl.GET_STATUS))
show(f"fd_ctl({mic}, GET_STATUS)  # closed mic", host.spear_fd_ctl(mic, FdCtl.GET_STATUS))''',
         rules={"R10": '"poll_mask":["EPOLLOUT","EPOLLHUP"]',
                "R12": '{"closed":true,"flags":[],"kind":"Mic","poll_mask":["EPOLLHUP"]}'}),
    md('''
## Closing an epoll unhooks it from what it watched (R11)

Each fd keeps a list of the epolls watching it, so a readiness change wakes exactly
those. When an epoll closes, it takes itself off those lists: a closed epoll must not be
woken (nor kept alive) by fds it no longer serves. The fds themselves are not touched.
'''),
    code('''
ep3 = host.spear_epoll_create()
watched = host.rtasr_create()
show(f"spear_epoll_ctl({ep3}, ADD, {watched}, IN|OUT)",
     host.spear_epoll_ctl(ep3, EpollOp.ADD, watched, EPOLLIN | EPOLLOUT))
print(f"epolls watching fd {watched}: {sorted(host.table.get(watched).watchers)}")
show(f"spear_epoll_close({ep3})", host.spear_epoll_close(ep3))
print(f"epolls watching fd {watched}: {sorted(host.table.get(watched).watchers)}")
show(f"fd_ctl({watched}, GET_STATUS)  # still open", host.spear_fd_ctl(watched, FdCtl.GET_STATUS))''',
         rules={"R11": "epolls watching fd 1007: []"}),
    md('''
## The whole table

`spear_lab.views.FdTableView` shows every entry, open and closed, as the ABI's own
`GET_STATUS` commands report it: the numbers only grow, the tombstones stay.
'''),
    code('''
from spear_lab.views import FdTableView

FdTableView(host)'''),
    md('''
## Check

The claims of this lesson, as assertions:
'''),
    code('''
assert (ep, asr, mic) == (1000, 1001, 1002)
assert host.rtasr_close(999) == -Errno.EBADF and host.mic_close(mic) == 0
assert host.spear_epoll_wait(ep2, 8, 0) == -Errno.EBADF
assert b'"poll_mask":["EPOLLOUT","EPOLLHUP"]' in host.spear_fd_ctl(out, FdCtl.GET_STATUS)
assert host.table.get(watched).watchers == set()
host.shutdown()
print("all claims hold")''', check=True),
]
