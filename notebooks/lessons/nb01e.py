"""Lesson 01e_fd_ctl_log_and_memory: spear_fd_ctl, log, guest pointers, host JSON
(R3–R6, R27–R30, R66)."""

from __future__ import annotations

from .common import SETUP_ABI, code, md

STORED = True

CELLS = [
    md('''
# 1e · fd_ctl, log, guest pointers and the host's JSON

Three things every guest uses without thinking about them: `spear_fd_ctl`, which
describes any fd; `log`, the guest's voice; and the rules for **pointers** into guest
memory, where a mistake gives `-EFAULT`. Plus one promise the host makes about every JSON
document it writes: compact, keys sorted.

The calls go through a `Probe` — a tiny real wasm guest whose memory Python fills before
each call and reads after it — so the length cell is visible, exactly as a C guest sees it.
'''),
    code(SETUP_ABI),
    code('''
import json

from spear_lab import MicCtl, Probe

probe = Probe()
host = probe.host
ep, asr, mic = host.spear_epoll_create(), host.rtasr_create(), host.mic_create()
ep, asr, mic'''),
    md('''
## `spear_fd_ctl`: kinds and metrics (R29)

`spear_fd_ctl(fd, cmd, arg_ptr, arg_len_ptr)` works on an fd of **any** kind, open or
closed. `GET_KIND` names the kind; `GET_METRICS` answers `{}` for the three kinds spear_lab
creates (the command exists for the SPEAR reference's chat fds, which have counters).
'''),
    code('''
for fd in (ep, asr, mic):
    print(probe.fd_ctl(fd, FdCtl.GET_KIND))
for fd in (ep, asr, mic):
    print(probe.fd_ctl(fd, FdCtl.GET_METRICS))''',
         rules={"R29": "data b'{\"kind\":\"Epoll\"}'"}),
    md('''
The same, as the JSON a guest parses — one line per kind:
'''),
    code('''
for fd in (asr, mic, ep):
    print(host.spear_fd_ctl(fd, FdCtl.GET_KIND).decode(), host.spear_fd_ctl(fd, FdCtl.GET_METRICS).decode())''',
         rules={"R29": '{"kind":"RtAsr"} {}\n{"kind":"Mic"} {}\n{"kind":"Epoll"} {}'}),
    md('''
## Flags: stored, reported, no effect (R28)

There is one flag, `O_NONBLOCK`. It can be set, cleared and read back, but it changes
nothing: every read and write of this ABI is non-blocking anyway. `SET_FLAGS` reads
exactly as many bytes as the cell says; `set` is applied before `clear`, so naming the
flag in both leaves it **cleared**; an empty payload is not JSON, so `-EINVAL`.
'''),
    code('''
print(probe.fd_ctl(asr, FdCtl.SET_FLAGS, b'{"set":["O_NONBLOCK"]}'))
print(probe.fd_ctl(asr, FdCtl.GET_FLAGS))
print(probe.fd_ctl(asr, FdCtl.SET_FLAGS, b'{"set":["O_NONBLOCK"],"clear":["O_NONBLOCK"]}'))
print(probe.fd_ctl(asr, FdCtl.GET_FLAGS))
print(probe.fd_ctl(asr, FdCtl.SET_FLAGS, b""))''',
         rules={"R28": "-> 0; cell 22 -> 22\nspear_fd_ctl(1001, 2, buf[256]) -> 24; cell 256 -> 24; "
                       "data b'{\"flags\":[\"O_NONBLOCK\"]}'"}),
    md('''
The last two lines, for the record: after set-then-clear the flags are empty, and the
empty payload is refused.
'''),
    code('''
print(host.spear_fd_ctl(asr, FdCtl.GET_FLAGS).decode())
rc = host.spear_fd_ctl(asr, FdCtl.SET_FLAGS, b"")
print(rc, errno_name(rc))''', rules={"R28": '{"flags":[]}\n-22 -EINVAL'}),
    md('''
## An unknown command touches nothing (R27)

`spear_fd_ctl` rejects an unknown command (anything but 1–5) **before** it looks at
memory at all. The proof: pointers far outside memory, which any memory access would
answer with `-EFAULT`, still give `-EINVAL` for commands 0, 6 and 99 — and a valid cell
keeps its value.
'''),
    code('''
for cmd in (0, 6, 99):
    show(f"spear_fd_ctl({asr}, {cmd}, ptr=70000, cell=70000)", probe.call("spear_fd_ctl", asr, cmd, 70000, 70000))
probe.set_cell(1234)
show(f"spear_fd_ctl({asr}, 99, BUF, CELL)", probe.call("spear_fd_ctl", asr, 99, probe.BUF, probe.CELL))
print("cell afterwards:", probe.cell())''',
         rules={"R27": "spear_fd_ctl(1001, 6, ptr=70000, cell=70000)   -> -22 (-EINVAL)"}),
    md('''
## -ENOSPC and the needed length (R30)

Every GET writes its JSON with the length-cell protocol (§1.4): the cell holds the
capacity on entry; if the answer is longer, the host writes the **needed length** into
the cell and returns `-ENOSPC`. Nothing is lost: call again with a buffer that big.
This is the contract the Python methods hide (`Host.spear_fd_ctl` just returns the bytes);
the cell view shows it.
'''),
    code('''
short = probe.fd_ctl(asr, FdCtl.GET_STATUS, capacity=10)
print(short)
print(probe.fd_ctl(asr, FdCtl.GET_STATUS, capacity=short.cell_out))''',
         rules={"R30": "spear_fd_ctl(1001, 4, buf[10]) -> -28 (-ENOSPC); cell 10 -> 67"}),
    md('''
## `log`: the guest's voice (R3, R4)

`log(level, msg_ptr, msg_len)` records `msg_len` bytes as one message (levels 0 TRACE … 4
ERROR). The host keeps it in `Host.logs` (and a Session's trace); it returns 0. Errors,
in order: a length below 0 or above 16384 is `-EINVAL` — checked first, even for a bad
pointer — then a range outside memory is `-EFAULT`.
'''),
    code('''
print(probe.log(2, b"hello"))
level, text = host.logs[-1][1:]
print(f"the host kept: level {level}, {text!r}")''',
         rules={"R3": "log(2, b'hello') -> 0\nthe host kept: level 2, 'hello'"}),
    code('''
print(probe.log(2, ptr=probe.BUF, length=16385))
print(probe.log(2, ptr=probe.BUF, length=16384))
print(probe.log(2, ptr=65530, length=10))
print(probe.log(2, ptr=-4, length=16385))''',
         rules={"R4": "log(2, ptr=1024, len=16385) -> -22 (-EINVAL)\n"
                      "log(2, ptr=1024, len=16384) -> 0\nlog(2, ptr=65530, len=10) -> -14 (-EFAULT)"}),
    md('''
## Guest pointers: -EFAULT (R5)

A pointer is an offset into the guest's exported `memory`. Pointers and lengths are read
as **signed** 32-bit numbers: a negative one is `-EFAULT`; so is a range that ends past
the current size of memory. Address 0 is valid (there is no NULL in wasm), and so is an
empty range right at the end.
'''),
    code('''
show("rtasr_write(asr, ptr=-1, len=4)", probe.rtasr_write(asr, ptr=-1, length=4).rc)
show("rtasr_write(asr, ptr=0, len=-1)", probe.rtasr_write(asr, ptr=0, length=-1).rc)
show("rtasr_write(asr, ptr=65533, len=4)  # past end", probe.rtasr_write(asr, ptr=65533, length=4).rc)
show("rtasr_write(asr, ptr=0, len=4)  # address 0", probe.rtasr_write(asr, ptr=0, length=4).rc)
show("rtasr_write(asr, ptr=65536, len=0)  # empty", probe.rtasr_write(asr, ptr=65536, length=0).rc)''',
         rules={"R5": "rtasr_write(asr, ptr=65533, len=4)  # past end -> -14 (-EFAULT)"}),
    md('''
A guest that exports **no** memory still links (the built-in `nomem` guest), but every
call that takes a pointer answers `-EFAULT`: there is nothing to point into.
'''),
    code('''
with Probe(memory=False) as bare:
    bep, basr, bmic = bare.host.spear_epoll_create(), bare.host.rtasr_create(), bare.host.mic_create()
    print(bare)
    print(bare.epoll_wait(bep, 64))
    print(bare.fd_ctl(basr, FdCtl.SET_FLAGS, b'{"set":[]}'))
    print(bare.rtasr_ctl(basr, RtasrCtl.GET_STATUS))
    print(bare.mic_ctl(bmic, MicCtl.GET_STATUS))
    print(bare.rtasr_write(basr, b"abc"))
    print(bare.log(2, b"hello"))''',
         rules={"R5": "Probe(guest=nomem (no memory export), cell at 8, buffer at 1024)\n"
                      "spear_epoll_wait(1000, buf[64], 0) -> -14 (-EFAULT)"}),
    md('''
## Memory is checked first (R6)

`rtasr_write` checks its buffer **before** the fd: a bad buffer *and* a bad fd give
`-EFAULT`, not `-EBADF`. (And a good buffer with a bad fd is `-EBADF`.) Why this order?
It is the SPEAR reference's, and a guest's first bug is usually its pointer.
'''),
    code('''
show("rtasr_write(999, ptr=-1, len=4)  # both bad", probe.rtasr_write(999, ptr=-1, length=4).rc)
show("rtasr_write(999, b'abcd')  # bad fd only", probe.rtasr_write(999, b"abcd").rc)''',
         rules={"R6": "rtasr_write(999, ptr=-1, len=4)  # both bad    -> -14 (-EFAULT)"}),
    md('''
## The host's JSON is compact (R66)

Every JSON document the host writes — statuses, segmentation read-backs, fd-ctl answers,
stub events — has no space after `:` or `,` and its keys in alphabetical order, so a
small guest can find `"type":"` with `strstr`. Each document below is compared with its
own re-encoding in that form.
'''),
    code('''
live = host.rtasr_create()
host.rtasr_ctl(live, RtasrCtl.SET_PARAM, b'{"key":"stub_event_interval_ms","value":10}')
host.rtasr_ctl(live, RtasrCtl.CONNECT)
wep = host.spear_epoll_create()
host.spear_epoll_ctl(wep, EpollOp.ADD, live, EPOLLIN)
host.spear_epoll_wait(wep, 8, 2000)
host.mic_ctl(mic, MicCtl.SET_PARAM, b'{"source":"stub"}')
docs = {
    "rtasr GET_STATUS": host.rtasr_ctl(asr, RtasrCtl.GET_STATUS),
    "rtasr GET_AUTOFLUSH": host.rtasr_ctl(asr, RtasrCtl.GET_AUTOFLUSH),
    "mic GET_STATUS": host.mic_ctl(mic, MicCtl.GET_STATUS),
    "fd_ctl GET_STATUS": host.spear_fd_ctl(asr, FdCtl.GET_STATUS),
    "fd_ctl GET_FLAGS": host.spear_fd_ctl(asr, FdCtl.GET_FLAGS),
    "a stub event": host.rtasr_read(live),
}
for name, raw in docs.items():
    text = raw.decode()
    canon = json.dumps(json.loads(text), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    print(f"{name:20} compact and sorted: {text == canon}  ({len(text)} bytes)")
print(docs["rtasr GET_AUTOFLUSH"].decode())''',
         rules={"R66": "rtasr GET_STATUS     compact and sorted: True"}),
    md('''
## Check
'''),
    code('''
assert host.spear_fd_ctl(ep, FdCtl.GET_KIND) == b'{"kind":"Epoll"}'
assert all(host.spear_fd_ctl(fd, FdCtl.GET_METRICS) == b"{}" for fd in (ep, asr, mic))
assert probe.call("spear_fd_ctl", asr, 99, 70000, 70000) == -Errno.EINVAL
short = probe.fd_ctl(asr, FdCtl.GET_STATUS, capacity=10)
assert short.rc == -Errno.ENOSPC and short.cell_out == len(host.spear_fd_ctl(asr, FdCtl.GET_STATUS))
assert probe.log(2, ptr=0, length=16385).rc == -Errno.EINVAL
assert probe.rtasr_write(999, ptr=-1, length=4).rc == -Errno.EFAULT
assert all(b": " not in raw and b", " not in raw for name, raw in docs.items() if name != "a stub event")
probe.close()
print("all claims hold")''', check=True),
]
