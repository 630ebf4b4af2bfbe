"""Per-call cost of hostcalls from a real wasm guest, as ratios to a bare no-op import.

Measured in one run, each call made N times from a WAT loop (so the wasm→Python crossing
is included, as a guest pays it):

- bare: a no-op host import (module ``bench``), the floor of any hostcall;
- spear_epoll_wait(timeout 0) with one ready fd, writing one record back;
- spear_fd_ctl(GET_KIND), writing 16 bytes of JSON back through the output protocol;
- rtasr_write of 960 bytes (20 ms of 24 kHz pcm16) copied out of guest memory;
- spear_epoll_wait again while a Trace records every call, and with a trace present but
  recording off (the cost of the trace hook).

Goal (issue 2): spear_epoll_wait(0) within 1.5x of the bare import.
Run: ``python bench/bench_hostcalls.py [N]``.
"""

from __future__ import annotations

import sys
import time

import wasmtime

from spear_lab import Host
from spear_lab.runtime import fastcall
from spear_lab.runtime.guest import Instance, RunOptions, load_guest

WAT = """(module
  (import "bench" "noop" (func $noop (result i32)))
  (import "bench" "noop_fast" (func $noopf (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_wait" (func $wait (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_fd_ctl" (func $ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "rtasr_write" (func $write (param i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "bare") (param $n i32)
    (loop $l (drop (call $noop)) (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "bare_fast") (param $n i32)
    (loop $l (drop (call $noopf (i32.const 1) (i32.const 2) (i32.const 3) (i32.const 4)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "wait") (param $ep i32) (param $n i32)
    (loop $l
      (i32.store (i32.const 0) (i32.const 512))
      (drop (call $wait (local.get $ep) (i32.const 64) (i32.const 0) (i32.const 0)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "kind") (param $fd i32) (param $n i32)
    (loop $l
      (i32.store (i32.const 0) (i32.const 512))
      (drop (call $ctl (local.get $fd) (i32.const 3) (i32.const 1024) (i32.const 0)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "write") (param $fd i32) (param $n i32)
    (loop $l
      (drop (call $write (local.get $fd) (i32.const 4096) (i32.const 960)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))"""


def noop_import(linker: wasmtime.Linker) -> None:
    """The baselines: Python no-ops imported as ``bench.noop`` (wasmtime-py's own
    ``Linker.define_func``, the usual way to define an import) and ``bench.noop_fast``
    (the same lean trampoline the spear imports use)."""
    i32 = wasmtime.ValType.i32()
    linker.define_func("bench", "noop", wasmtime.FuncType([], [i32]), lambda: 0)
    fastcall.define(linker, "bench", "noop_fast", [i32] * 4, [i32], lambda a, b, c, d: 0)


def per_call(inst: Instance, name: str, *args: int, n: int) -> float:
    """Seconds per call of export ``name`` looping ``n`` times (best of 3)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        inst.call(name, *args, n)
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def main(n: int = 50_000) -> None:
    from spear_lab.trace import Trace

    root = Host()
    host = root.fork("bench")
    inst = Instance(load_guest(WAT, "bench"), host, RunOptions(), extra_imports=noop_import)
    ep = host.spear_epoll_create()
    r = host.rtasr_create()
    host.spear_epoll_ctl(ep, 1, r, 0x1D)
    host.rtasr_ctl(r, 1, b'{"key":"max_send_queue_bytes","value":1000000000}')
    rows = []
    bare = per_call(inst, "bare", n=n)
    rows.append(("bare no-op import (Linker.define_func)", bare))
    rows.append(("no-op, 4 i32 args, lean trampoline", per_call(inst, "bare_fast", n=n)))
    rows.append(("spear_epoll_wait(0), 1 ready fd", per_call(inst, "wait", ep, n=n)))
    rows.append(("spear_fd_ctl(GET_KIND)", per_call(inst, "kind", r, n=n)))
    fd = host.table.get(r)
    writes = per_call(inst, "write", r, n=min(n, 20_000))
    fd.send_queue.clear()
    fd.send_queue_bytes = 0
    rows.append(("rtasr_write(960 bytes)", writes))
    trace = Trace()
    root.context.trace = trace
    trace.recording = False
    rows.append(("spear_epoll_wait(0), trace off", per_call(inst, "wait", ep, n=n)))
    trace.recording = True
    rows.append(("spear_epoll_wait(0), trace recording", per_call(inst, "wait", ep, n=n)))
    root.context.trace = None
    print(f"{'call':40s} {'us/call':>9s} {'x bare':>8s}")
    for name, t in rows:
        print(f"{name:40s} {t * 1e6:9.2f} {t / bare:8.2f}")
    ratio = rows[2][1] / bare
    print(f"goal: spear_epoll_wait(0) <= 1.5x bare: {'met' if ratio <= 1.5 else 'NOT met'} ({ratio:.2f}x)")
    inst.close()
    root.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
