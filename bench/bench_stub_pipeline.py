"""Throughput of the rtasr pipeline against the stub transport, from a WAT guest.

The guest runs the loop every streaming guest runs: ``spear_epoll_wait`` on its rtasr fd
(IN|OUT|ERR|HUP), on OUT ``rtasr_write`` of one 960-byte frame (20 ms of 24 kHz mono
pcm16, cycling through 1 s of tone and 1 s of silence), on IN ``rtasr_read`` until
-EAGAIN.  Results are frames per second and a multiple of real time (50 frames = 1 s).
Beside them, from the same run and the same process: the bare host-call cost, a no-op
host import with ``rtasr_write``'s signature called in a loop from WAT through the same
trampoline as the ``spear`` imports, and the ``rtasr_write``-only loop.

Two pipelines, because the reference stub drains only one send item per 10 ms tick (100
frames/s, i.e. exactly 2x real time: it would measure the stub's clock, not our code):

``write-path``
    reference stub (one event per tick, so reads happen too) with
    ``max_send_queue_bytes`` large enough for every frame: the guest never waits, so this
    is the guest-side cost per frame (epoll_wait + write + its share of reads) with the
    I/O loop thread running beside it.
``end-to-end``
    ``stub_mode: "realistic"`` with the default 1 MiB send queue: the stub drains every
    queued item each tick and runs its energy VAD on it (one speech turn per 2 s of
    audio, seven events per turn), so the guest blocks in ``spear_epoll_wait`` whenever
    the queue is full.  The clock stops when the stub has drained the last frame; this is
    the sustained rate of the whole pipeline.

Goal: >= 300x real time on one core.  Noisy shared machines: compare the ratio to the
bare host call of the same run rather than absolute numbers.

    PYTHONPATH=. python bench/bench_stub_pipeline.py [--frames 16000] [--noop-calls 200000]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import wasmtime

from spear_lab import Host
from spear_lab.abi import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EpollOp, RtasrCtl
from spear_lab.abi.jsonfmt import dumpb
from spear_lab.runtime import fastcall
from spear_lab.runtime.linker import define_spear
from spear_lab.runtime.memory import GuestMemory

FRAME = 960
FRAMES_PER_SECOND = 50
CYCLE_FRAMES = 100  # 1 s tone + 1 s silence
AUDIO_AT = 65536  # guest address of the 2 s audio cycle (96000 bytes)
I32 = wasmtime.ValType.i32()

WAT = f"""(module
  (import "spear" "rtasr_write" (func $write (param i32 i32 i32) (result i32)))
  (import "spear" "rtasr_read" (func $read (param i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_wait" (func $ep_wait (param i32 i32 i32 i32) (result i32)))
  (import "bench" "noop" (func $noop (param i32 i32 i32) (result i32)))
  (memory (export "memory") 4)

  (func (export "noop_loop") (param $n i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $n)))
      (drop (call $noop (local.get $n) (i32.const 0) (i32.const 0)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $next))))

  (func (export "write_loop") (param $fd i32) (param $n i32) (result i32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (if (i32.ne (call $write (local.get $fd)
                    (i32.add (i32.const {AUDIO_AT}) (i32.mul (i32.rem_u (local.get $i) (i32.const {CYCLE_FRAMES}))
                                                          (i32.const {FRAME})))
                    (i32.const {FRAME})) (i32.const {FRAME}))
        (then (return (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $i))

  ;; epoll loop: returns frames written; events read are stored at address 64
  (func (export "pipeline") (param $fd i32) (param $ep i32) (param $n i32) (param $timeout i32) (result i32)
    (local $frames i32) (local $events i32) (local $ev i32) (local $rc i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $frames) (local.get $n)))
      (i32.store (i32.const 8) (i32.const 8))
      (local.set $rc (call $ep_wait (local.get $ep) (i32.const 16) (i32.const 8) (local.get $timeout)))
      (if (i32.lt_s (local.get $rc) (i32.const 0)) (then (return (i32.const -1))))
      (if (local.get $rc) (then
        (local.set $ev (i32.load (i32.const 20)))
        (if (i32.and (local.get $ev) (i32.const 0x18)) (then (return (i32.const -2))))
        (if (i32.and (local.get $ev) (i32.const 1)) (then
          (block $empty (loop $more
            (i32.store (i32.const 4) (i32.const 4096))
            (br_if $empty (i32.le_s (call $read (local.get $fd) (i32.const 1024) (i32.const 4)) (i32.const 0)))
            (local.set $events (i32.add (local.get $events) (i32.const 1)))
            (br $more)))))
        (if (i32.and (local.get $ev) (i32.const 4)) (then
          (if (i32.eq (call $write (local.get $fd)
                        (i32.add (i32.const {AUDIO_AT})
                                 (i32.mul (i32.rem_u (local.get $frames) (i32.const {CYCLE_FRAMES})) (i32.const {FRAME})))
                        (i32.const {FRAME})) (i32.const {FRAME}))
            (then (local.set $frames (i32.add (local.get $frames) (i32.const 1)))))))))
      (br $next)))
    (i32.store (i32.const 64) (local.get $events))
    (local.get $frames))
)"""


def audio_cycle() -> bytes:
    """1 s of a 440 Hz tone then 1 s of silence, 24 kHz mono pcm16."""
    t = np.arange(24000) / 24000
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()
    return tone + bytes(48000)


class Bench:
    """One guest instance on a fork of a Host, plus the no-op import."""

    def __init__(self) -> None:
        self.root = Host()
        self.host = self.root.fork("bench")
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        self.mem = GuestMemory()
        define_spear(linker, self.host, self.mem)
        fastcall.define(linker, "bench", "noop", [I32] * 3, [I32], lambda a, b, c: 0)
        module = wasmtime.Module(engine, wasmtime.wat2wasm(WAT))
        self.instance = linker.instantiate(self.store, module)
        self.exports = self.instance.exports(self.store)
        self.mem.bind(self.exports["memory"], self.store)
        assert self.mem.write(AUDIO_AT, audio_cycle())

    def call(self, name: str, *args: int) -> int:
        return self.exports[name](self.store, *args)

    def rtasr(self, **params) -> tuple[int, int]:
        h = self.host
        fd = h.rtasr_create()
        for key, value in params.items():
            assert h.rtasr_ctl(fd, RtasrCtl.SET_PARAM, dumpb({"key": key, "value": value})) == 0
        assert h.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"server_vad","vad":{"silence_ms":500}}') == 0
        assert h.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
        ep = h.spear_epoll_create()
        assert h.spear_epoll_ctl(ep, EpollOp.ADD, fd, EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP) == 0
        return fd, ep

    def status(self, fd: int) -> dict:
        return json.loads(self.host.rtasr_ctl(fd, RtasrCtl.GET_STATUS))

    def close(self) -> None:
        self.host.close()
        self.mem.release()
        self.root.shutdown()


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=16000)  # 16000 x 960 B fits the 16 MiB send-queue cap
    ap.add_argument("--noop-calls", type=int, default=200000)
    args = ap.parse_args()
    n = args.frames
    b = Bench()
    try:
        b.call("noop_loop", 1000)  # warm up
        _, t_noop = timed(b.call, "noop_loop", args.noop_calls)
        noop_us = t_noop / args.noop_calls * 1e6

        # rtasr_write alone (no transport draining: a queue big enough, not connected)
        fd = b.host.rtasr_create()
        b.host.rtasr_ctl(fd, RtasrCtl.SET_PARAM, dumpb({"key": "max_send_queue_bytes", "value": FRAME * n}))
        done, t_write = timed(b.call, "write_loop", fd, n)
        assert done == n, done
        b.host.rtasr_close(fd)

        # write path: reference stub, queue never full, one event per tick to read
        fd, ep = b.rtasr(max_send_queue_bytes=FRAME * n + 4096, stub_event_interval_ms=0)
        frames, t_wp = timed(b.call, "pipeline", fd, ep, n, 0)
        assert frames == n, frames
        events_wp = b.mem.read_u32(64)
        b.host.rtasr_close(fd)

        # end to end: realistic stub draining everything, default 1 MiB queue
        fd, ep = b.rtasr(stub_mode="realistic")
        t0 = time.perf_counter()
        frames = b.call("pipeline", fd, ep, n, 100)
        assert frames == n, frames
        events_e2e = b.mem.read_u32(64)
        while b.status(fd)["send_queue_bytes"]:
            time.sleep(0.001)
        t_e2e = time.perf_counter() - t0
        transport = b.host.table.get(fd).transport
        pushed = transport.events
        b.host.rtasr_close(fd)
    finally:
        b.close()

    def row(name: str, seconds: float, frames: int, extra: str = "") -> None:
        fps = frames / seconds
        us = seconds / frames * 1e6
        print(f"{name:<34}{fps:>12,.0f}{fps / FRAMES_PER_SECOND:>10,.0f}x{us:>10.2f}{us / noop_us:>10.1f}  {extra}")

    print(f"frames: {n} x {FRAME} bytes ({n / FRAMES_PER_SECOND:.0f} s of audio)")
    print(f"bare host call (no-op import, 3 x i32 -> i32): {noop_us:.2f} us "
          f"({1e6 / noop_us:,.0f} calls/s)")
    print()
    print(f"{'pipeline':<34}{'frames/s':>12}{'realtime':>11}{'us/frame':>10}{'x noop':>10}")
    row("rtasr_write only", t_write, n)
    row("write-path (reference stub)", t_wp, n, f"{events_wp} events read")
    row("end-to-end (realistic stub)", t_e2e, n, f"{events_e2e} events read of {pushed} pushed")
    print()
    goal = 300
    for name, t in (("write-path", t_wp), ("end-to-end", t_e2e)):
        x = n / t / FRAMES_PER_SECOND
        print(f"{name}: {x:,.0f}x real time -> {'meets' if x >= goal else 'misses'} the {goal}x goal")


if __name__ == "__main__":
    main()
