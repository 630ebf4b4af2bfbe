"""Lesson 01_epoll_tour: the ABI as guests see it, step by step (R1, R2, R5 and a tour
of the rest)."""

from __future__ import annotations

from .common import SETUP_ABI, code, md

STORED = True

# A guest written by a student who knows Linux epoll; the lesson's predictions are hers.
LINUX_MINDED_WAT = r'''
LINUX_MINDED_WAT = """
(module
  (import "spear" "spear_epoll_create" (func $ep_create (result i32)))
  (import "spear" "spear_epoll_ctl" (func $ep_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_wait" (func $ep_wait (param i32 i32 i32 i32) (result i32)))
  (import "spear" "rtasr_create" (func $asr_create (result i32)))
  (import "spear" "rtasr_close" (func $asr_close (param i32) (result i32)))
  (memory (export "memory") 1)
  ;; address 8: the length cell; 64: room for 8 records
  (func (export "_start") (local $ep i32) (local $asr i32) (local $other i32)
    (local.set $ep (call $ep_create))
    (local.set $asr (call $asr_create))
    (local.set $other (call $asr_create))
    (drop (call $ep_ctl (local.get $ep) (i32.const 1) (local.get $asr) (i32.const 0x1)))   ;; ADD IN
    (drop (call $ep_ctl (local.get $ep) (i32.const 1) (local.get $asr) (i32.const 0x5)))   ;; ADD again
    (drop (call $ep_ctl (local.get $ep) (i32.const 3) (local.get $other) (i32.const 0)))  ;; DEL unwatched
    (drop (call $asr_close (local.get $asr)))
    (i32.store (i32.const 8) (i32.const 64))
    (drop (call $ep_wait (local.get $ep) (i32.const 64) (i32.const 8) (i32.const 0))))
)
"""
'''

CELLS = [
    md('''
# 1 · The epoll tour: the ABI as a guest sees it

spear_lab guests talk to the host through a small, syscall-like ABI: every resource is an
**fd** (a number from 1000 up), one **epoll** says which fds are ready, and every call
returns a number — a count, or a negated Linux errno. The rules are listed in
[docs/abi.md](../docs/abi.md) §14 (R1–R66); the lessons 1b–1e take them one by one, with
the reason for each result.

This notebook shows real guests — one in C, several in hand-written WAT — running under
wasmtime, **step by step**: for every hostcall, what the ABI prescribes, what the guest got
and why. Everything runs offline (the stub transport, no server), and every output is the
same on every run, so it is stored in the notebook.
'''),
    code(SETUP_ABI),
    code('''
from spear_lab import Session, guest_interface
from spear_lab.views import step_table, trace_steps

session = Session()'''),
    md('''
## The C tour: 45 steps

The built-in guest `epoll_tour` (`guests/c/epoll_tour.c`, compiled to wasm32-wasi) makes
one hostcall per step and prints `step <name>: rc=<got> expect=<prescribed>` and a `why`
line. `step_table` turns its output into a table: the call's details, the expected and
the actual result with the errno name, and the reason. A step whose result differs from
the ABI would be shown in red.
'''),
    code('''
tour = session.run("epoll_tour", timeout=60)
table = step_table(tour.stdout, "epoll_tour")
table''', check=True),
    md('''
A few steps to read closely:

- **ctl_self / ctl_bad_op / ctl_unknown_fd** — `spear_epoll_ctl` checks its arguments in
  a fixed order (1d shows the whole order);
- **wait0_full, write1** — backpressure: a full send queue is not writable, and a write
  that does not fit is refused whole with `-EAGAIN`;
- **read_small, read_retry** — the length cell: `-ENOSPC` with the needed length written
  back, then the *same* event with a buffer that big;
- **wait_hup_not_in_mask** — `EPOLLHUP` is reported only when it is in the interest mask,
  unlike Linux (1c, 1d).
'''),
    code('''
print(table.summary())
for name in ("read_small", "read_retry", "wait_small_cap", "wait_hup_not_in_mask"):
    s = table[name]
    print(f"{name:22} got {s.got:4}  ({s.call})")''', check=True),
    md('''
## A WAT guest, step by step: `epoll_basics`

`guests/wat/epoll_basics.wat` is the smallest useful epoll guest, written by hand to be
read. It prints nothing; the **Trace** of the session saw every call. `trace_steps` pairs
those calls with the lesson's expectations — the "expected" and "why" columns below are
the teacher's, the "got" column is what the guest really got.
'''),
    code('''
basics = session.run("epoll_basics", name="basics")
trace_steps(session.trace, "basics", [
    ("spear_epoll_create", 1000, "a fresh instance numbers its first fd 1000"),
    ("rtasr_create", 1001, "the next number, whatever the kind"),
    ("spear_epoll_ctl", 0, "ADD with IN|OUT|ERR|HUP (0x1d)"),
    ("spear_epoll_wait", 1, "one record: a fresh rtasr fd is writable (EPOLLOUT)"),
    ("rtasr_close", 0, "closing the rtasr fd"),
    ("spear_epoll_close", 0, "closing the epoll"),
])''', check=True),
    md('''
The same run as a picture: one lane per fd and readiness bit, and a lane of
`spear_epoll_wait` calls (a dot where a wait returned records). `axis="step"` spaces the
recorded moments evenly — the whole guest ran in well under a millisecond.
'''),
    code('''
from spear_lab.views import timeline_figure

timeline_figure(session.trace, "basics", axis="step")'''),
    md('''
## A guest with no memory: `nomem` (R5)

`guests/wat/nomem.wat` exports no `memory` at all. It still links, but every hostcall
that takes a pointer must answer `-EFAULT` (-14): there is nothing to point into. Its
`_start` makes one call of each kind and traps unless all of them gave -14; the run ended
normally, and its steps show why.
'''),
    code('''
nomem = session.run("nomem", name="nomem")
EFAULT = -Errno.EFAULT
why = "no memory export: nothing a pointer could point into"
nomem_steps = trace_steps(session.trace, "nomem", [
    ("spear_epoll_create", 1000, "no pointer: works"),
    ("rtasr_create", 1001, "no pointer: works"),
    ("mic_create", 1002, "no pointer: works"),
    ("spear_epoll_wait", EFAULT, why + " (the cell)"),
    ("spear_fd_ctl", EFAULT, why + " (SET_FLAGS reads its cell)"),
    ("rtasr_ctl", EFAULT, why + " (GET_STATUS)"),
    ("rtasr_ctl", EFAULT, why + " (even CONNECT reads the cell)"),
    ("mic_ctl", EFAULT, why + " (GET_STATUS)"),
    ("rtasr_write", EFAULT, why),
    ("rtasr_write", EFAULT, "memory is checked before the fd: -EFAULT even for fd 999"),
    ("log", EFAULT, why),
])
print("guest ran to the end:", nomem.ok)
nomem_steps''', rules={"R5": "rtasr_write(999, 16, 4)"}),
    md('''
## Every import links: `link_all` (R1)

`guests/wat/link_all.wat` imports **every** hostcall of the manual with its exact
signature — epoll, fd-ctl, rtasr, mic, log, the clocks, random, sleep and the legacy chat
and user-stream families — and links. (A guest may import any subset; one that declares a
wrong signature fails to link.) The legacy imports exist only so that old guests link:
they answer `-ENOSYS`.
'''),
    code('''
iface = guest_interface("link_all")
print(len(iface["spear"]), "spear imports:", ", ".join(iface["spear"]))
linked = session.run("link_all", name="link_all")
print("linked and ran:", linked.ok)''',
         rules={"R1": "32 spear imports: spear_epoll_create, spear_epoll_ctl"}),
    md('''
## The reference sample links: `mic_rtasr` (R2)

`mic_rtasr` is spear_lab's re-write of the SPEAR reference sample (microphone → realtime
transcription). Built with wasi-libc, it needs five WASI functions and fourteen spear
imports, and runs from `_start`. The sample asks for a device with no fallback to the
stub; this session's host names a device that exists on no machine, so after starting it
logs why the mic failed and ends — which shows it did run, the same way everywhere.
'''),
    code('''
iface = guest_interface("mic_rtasr")
print(len(iface["wasi_snapshot_preview1"]), "WASI functions:", ", ".join(iface["wasi_snapshot_preview1"]))
print(len(iface["spear"]), "spear imports:", ", ".join(sorted(iface["spear"])))
print("exports _start:", "_start" in iface["exports"])
sample = session.run("mic_rtasr", name="mic_rtasr", mic="device:no-such-card", timeout=60)
print("ran from _start, its first log line:", sample.logs[0][2].strip() if sample.logs else None)''',
         rules={"R2": "5 WASI functions: fd_close, fd_fdstat_get, fd_seek, fd_write, proc_exit\n14 spear imports"}),
    md('''
## Predict, then run

A student who knows Linux epoll predicts what this guest gets: a second ADD of the same
fd fails with `EEXIST`, DEL of an fd that is not watched fails with `ENOENT`, and a closed
fd simply disappears from the set, so the last wait finds nothing. The table marks each wrong prediction in red —
that is how a mismatch looks — and the "why" column says what the SPEAR ABI does instead.
'''),
    code(LINUX_MINDED_WAT),
    code('''
session.run(LINUX_MINDED_WAT, name="linux_minded")
EEXIST, ENOENT = -17, -2  # Linux's numbers; spear_lab never returns them
predicted = trace_steps(session.trace, "linux_minded", [
    ("spear_epoll_create", 1000, "as on Linux"),
    ("rtasr_create", 1001, "as on Linux"),
    ("rtasr_create", 1002, "as on Linux (never added to the epoll)"),
    ("spear_epoll_ctl", 0, "ADD IN"),
    ("spear_epoll_ctl", EEXIST, "Linux: EEXIST. SPEAR: 0, the second ADD replaces the mask"),
    ("spear_epoll_ctl", ENOENT, "Linux: ENOENT. SPEAR: 0, DEL of an unwatched fd does nothing"),
    ("rtasr_close", 0, "as on Linux"),
    ("spear_epoll_wait", 0, "Linux drops a closed fd: 0 records. SPEAR keeps it, with the bits "
                            "it had (OUT) plus HUP; OUT was asked for: 1 record"),
])
predicted''', check=True),
    md('''
## Check

The claims: the C tour matches the ABI in all 45 steps; the WAT guests got what the
lesson expected; the Linux-minded predictions are wrong exactly three times.
'''),
    code('''
assert tour.exit_code == 0 and table.ok and len(table.steps) == 45
assert basics.ok and nomem.ok and nomem_steps.ok and linked.ok
assert [s.name for s in predicted.mismatches] == ["spear_epoll_ctl", "spear_epoll_ctl", "spear_epoll_wait"]
assert [s.got for s in predicted.mismatches] == [0, 0, 1]
session.close()
print("all claims hold")''', check=True),
]
