"""What recording a Trace costs a guest's hostcalls.

A WAT guest calls one hostcall N times in a tight loop, in three set-ups measured in the
same run: no trace (``context.trace is None``), a trace attached but ``recording = False``,
and a recording trace.  Two hostcalls: ``spear_fd_ctl`` with an unknown command (the
cheapest call: -EINVAL at once) and ``spear_epoll_wait`` with timeout 0 on an epoll with
one ready fd (a typical call).  Prints µs per call (best of --repeat) and the ratio to
"no trace".  The trace's rings are large enough to hold every call of one repeat.

    PYTHONPATH=. python bench/bench_trace.py [--calls 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

from spear_lab import Host
from spear_lab.runtime import run_guest
from spear_lab.trace import Trace, TraceCaps

WAT = """
(module
  (import "spear" "spear_fd_ctl" (func $fd_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_create" (func $ep_create (result i32)))
  (import "spear" "spear_epoll_ctl" (func $ep_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_wait" (func $ep_wait (param i32 i32 i32 i32) (result i32)))
  (import "spear" "rtasr_create" (func $rtasr_create (result i32)))
  (memory (export "memory") 1)
  ;; n calls of spear_fd_ctl(1000, 99, 0, 0): unknown command -> -EINVAL
  (func (export "fd_ctl") (param $n i32)
    (loop $l
      (drop (call $fd_ctl (i32.const 1000) (i32.const 99) (i32.const 0) (i32.const 0)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0)))))
  ;; n calls of spear_epoll_wait(ep, 16, 8, 0) with one writable rtasr fd watched
  (func (export "epoll_wait") (param $n i32) (local $ep i32) (local $fd i32)
    (local.set $ep (call $ep_create))
    (local.set $fd (call $rtasr_create))
    (drop (call $ep_ctl (local.get $ep) (i32.const 1) (local.get $fd) (i32.const 4)))
    (loop $l
      (i32.store (i32.const 8) (i32.const 64))
      (drop (call $ep_wait (local.get $ep) (i32.const 16) (i32.const 8) (i32.const 0)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0)))))
)
"""


def per_call_us(host: Host, entry: str, calls: int, repeat: int) -> float:
    """Best wall time per call over ``repeat`` runs (µs), guest start-up excluded by
    subtracting a 1-call run."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = run_guest(host, WAT, entry=entry, call_args=(calls,))
        t1 = time.perf_counter()
        res1 = run_guest(host, WAT, entry=entry, call_args=(1,))
        t2 = time.perf_counter()
        assert res.trap is None and res1.trap is None, (res.trap, res1.trap)
        best = min(best, ((t1 - t0) - (t2 - t1)) / max(calls - 1, 1))
        trace = host.context.trace
        if trace is not None:
            trace.clear()
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    caps = TraceCaps(hostcalls=args.calls + 16)
    print(f"{args.calls} calls per run, best of {args.repeat}")
    print(f"{'hostcall':<18}{'set-up':<16}{'µs/call':>10}{'ratio':>8}")
    for entry in ("fd_ctl", "epoll_wait"):
        host = Host()
        try:
            results = []
            host.context.trace = None
            results.append(("no trace", per_call_us(host, entry, args.calls, args.repeat)))
            trace = Trace(caps, recording=False)
            host.context.trace = trace
            results.append(("recording off", per_call_us(host, entry, args.calls, args.repeat)))
            trace.recording = True
            results.append(("recording on", per_call_us(host, entry, args.calls, args.repeat)))
            base = results[0][1]
            for label, us in results:
                print(f"{entry:<18}{label:<16}{us:>10.2f}{us / base:>8.2f}")
        finally:
            host.context.trace = None
            host.shutdown()
    # the record itself, without wasm: Trace.hostcall from Python
    tr = Trace(TraceCaps(hostcalls=args.calls + 16))
    t = time.perf_counter()
    for i in range(args.calls):
        tr.hostcall("bench", "spear_fd_ctl", (1000, 99, 0, 0), -22, t, t)
    dt = (time.perf_counter() - t) / args.calls * 1e6
    print(f"Trace.hostcall alone (Python call): {dt:.2f} µs")


if __name__ == "__main__":
    main()
