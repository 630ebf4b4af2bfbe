"""Concurrency: a writer and a reader (Python threads, then a guest thread) against the stub
producing events for a while.  Every event the stub produced is either read or counted in
``dropped_events`` (by ``seq``), and the queues never exceed their limits."""

from __future__ import annotations

import json
import threading
import time

from spear_lab.abi import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EpollOp, Errno, RtasrCtl
from spear_lab.abi.jsonfmt import dumpb
from spear_lab.runtime import start_guest

EAGAIN = -Errno.EAGAIN
MAX_SEND, MAX_RECV = 9600, 2000  # ten 960-byte frames; eight 224..226-byte events


class Limits:
    """Checks queue levels on every readiness change (called with the table lock held)."""

    def __init__(self, table, fd: int) -> None:
        self.table, self.fd = table, fd
        self.checks = 0
        self.violations: list[tuple[int, int]] = []
        table.observers.append(self)

    def __call__(self, fd: int, old: int, new: int) -> None:
        entry = self.table.get(self.fd)
        if entry is None or entry.closed:
            return
        self.checks += 1
        if entry.send_queue_bytes > entry.max_send_queue_bytes or entry.recv_queue_bytes > entry.max_recv_queue_bytes:
            self.violations.append((entry.send_queue_bytes, entry.recv_queue_bytes))


def esc(data: bytes) -> str:
    """``data`` as a WAT string body (every byte escaped)."""
    return "".join("\\%02x" % b for b in data)


def check_accounting(seqs: list[int], dropped: int, produced: int) -> None:
    assert seqs == sorted(set(seqs)), "events out of order or duplicated"
    assert len(seqs) + dropped == produced
    assert seqs[-1] == produced  # the newest event is never the one dropped
    assert produced - len(seqs) == len(set(range(1, produced + 1)) - set(seqs)) == dropped


def test_python_threads_writer_and_reader(host):
    fd = host.rtasr_create()
    for key, value in (("max_send_queue_bytes", MAX_SEND), ("max_recv_queue_bytes", MAX_RECV),
                       ("stub_event_interval_ms", 0), ("stub_event_payload_bytes", 256)):
        assert host.rtasr_ctl(fd, RtasrCtl.SET_PARAM, dumpb({"key": key, "value": value})) == 0
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
    transport = host.table.get(fd).transport
    limits = Limits(host.table, fd)
    stop = threading.Event()
    seqs: list[int] = []
    written = [0, 0]  # frames, EAGAIN results

    def writer() -> None:
        ep = host.spear_epoll_create()
        host.spear_epoll_ctl(ep, EpollOp.ADD, fd, EPOLLOUT | EPOLLERR | EPOLLHUP)
        while not stop.is_set():
            host.spear_epoll_wait(ep, 1, 20)
            rc = host.rtasr_write(fd, bytes(960))
            if rc == 960:
                written[0] += 1
            else:
                assert rc == EAGAIN
                written[1] += 1

    def reader() -> None:
        ep = host.spear_epoll_create()
        host.spear_epoll_ctl(ep, EpollOp.ADD, fd, EPOLLIN | EPOLLERR | EPOLLHUP)
        n = 0
        while not stop.is_set():
            host.spear_epoll_wait(ep, 1, 20)
            out = host.rtasr_read(fd)
            if isinstance(out, bytes):
                seqs.append(json.loads(out)["seq"])
                n += 1
                if n % 10 == 0:
                    time.sleep(0.12)  # fall behind now and then: the stub must drop oldest
            else:
                assert out == EAGAIN

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(10)
    # stop emission, let the last tick land, drain what is left
    host.rtasr_ctl(fd, RtasrCtl.SET_PARAM, dumpb({"key": "stub_event_interval_ms", "value": 10**9}))
    time.sleep(0.05)
    while isinstance(out := host.rtasr_read(fd), bytes):
        seqs.append(json.loads(out)["seq"])
    st = json.loads(host.rtasr_ctl(fd, RtasrCtl.GET_STATUS))
    produced = transport.seq
    assert produced == host.table.get(fd).events_received
    assert st["dropped_events"] > 0 and len(seqs) > 10 and written[0] > 10
    check_accounting(seqs, st["dropped_events"], produced)
    assert limits.checks > 0 and limits.violations == []


def test_guest_thread_writer_and_reader(host):
    params = [("max_send_queue_bytes", MAX_SEND), ("max_recv_queue_bytes", MAX_RECV),
              ("stub_event_interval_ms", 0)]
    stop_param = dumpb({"key": "stub_event_interval_ms", "value": 10**9})
    segs, sets = [], []
    for i, (key, value) in enumerate(params):
        p = dumpb({"key": key, "value": value})
        off = 256 + 128 * i
        segs.append(f'(data (i32.const {off}) "{esc(p)}")')
        sets.append(f"(i32.store (i32.const 0) (i32.const {len(p)}))"
                    f"(if (call $ctl (local.get $fd) (i32.const 1) (i32.const {off}) (i32.const 0))"
                    f" (then (return (i32.const -1))))")
    segs.append(f'(data (i32.const 768) "{esc(stop_param)}")')
    wat = f"""(module
  (import "spear" "rtasr_create" (func $create (result i32)))
  (import "spear" "rtasr_ctl" (func $ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "rtasr_write" (func $write (param i32 i32 i32) (result i32)))
  (import "spear" "rtasr_read" (func $read (param i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_create" (func $ep_create (result i32)))
  (import "spear" "spear_epoll_ctl" (func $ep_ctl (param i32 i32 i32 i32) (result i32)))
  (import "spear" "spear_epoll_wait" (func $ep_wait (param i32 i32 i32 i32) (result i32)))
  (import "spear" "log" (func $log (param i32 i32 i32) (result i32)))
  (import "spear" "time_now_ms" (func $now (result i64)))
  (import "spear" "sleep_ms" (func $sleep (param i32)))
  (memory (export "memory") 1)
  {" ".join(segs)}
  (func $read_one (param $fd i32) (result i32)
    (local $rc i32)
    (i32.store (i32.const 4) (i32.const 4096))
    (local.set $rc (call $read (local.get $fd) (i32.const 8192) (i32.const 4)))
    (if (i32.gt_s (local.get $rc) (i32.const 0))
      (then (drop (call $log (i32.const 2) (i32.const 8192) (local.get $rc)))))
    (local.get $rc))
  (func (export "run") (param $ms i32) (result i32)
    (local $fd i32) (local $ep i32) (local $n i32) (local $ev i32) (local $rc i32) (local $reads i32)
    (local $end i64)
    (local.set $fd (call $create))
    {" ".join(sets)}
    (i32.store (i32.const 0) (i32.const 0))
    (drop (call $ctl (local.get $fd) (i32.const 2) (i32.const 0) (i32.const 0)))
    (local.set $ep (call $ep_create))
    (drop (call $ep_ctl (local.get $ep) (i32.const 1) (local.get $fd) (i32.const 0x1d)))
    (local.set $end (i64.add (call $now) (i64.extend_i32_u (local.get $ms))))
    (block $done (loop $again
      (br_if $done (i64.ge_s (call $now) (local.get $end)))
      (i32.store (i32.const 8) (i32.const 64))
      (local.set $n (call $ep_wait (local.get $ep) (i32.const 16) (i32.const 8) (i32.const 20)))
      (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const -3))))
      (if (local.get $n) (then
        (local.set $ev (i32.load (i32.const 20)))
        (if (i32.and (local.get $ev) (i32.const 0x18)) (then (return (i32.const -4))))
        (if (i32.and (local.get $ev) (i32.const 4)) (then
          (local.set $rc (call $write (local.get $fd) (i32.const 32768) (i32.const 960)))
          (if (i32.and (i32.ne (local.get $rc) (i32.const 960)) (i32.ne (local.get $rc) (i32.const -11)))
            (then (return (i32.const -5))))))
        (if (i32.and (local.get $ev) (i32.const 1)) (then
          (if (i32.gt_s (call $read_one (local.get $fd)) (i32.const 0)) (then
            (local.set $reads (i32.add (local.get $reads) (i32.const 1)))
            ;; fall behind now and then: the stub must drop the oldest events
            (if (i32.eqz (i32.rem_u (local.get $reads) (i32.const 10)))
              (then (call $sleep (i32.const 120))))))))))
      (br $again)))
    ;; stop emission, let the last tick land, drain, report the status
    (i32.store (i32.const 0) (i32.const {len(stop_param)}))
    (drop (call $ctl (local.get $fd) (i32.const 1) (i32.const 768) (i32.const 0)))
    (call $sleep (i32.const 50))
    (block $drained (loop $more
      (br_if $drained (i32.le_s (call $read_one (local.get $fd)) (i32.const 0)))
      (br $more)))
    (i32.store (i32.const 0) (i32.const 1024))
    (local.set $rc (call $ctl (local.get $fd) (i32.const 3) (i32.const 2048) (i32.const 0)))
    (drop (call $log (i32.const 3) (i32.const 2048) (local.get $rc)))
    (local.get $reads))
)"""
    run = start_guest(host, wat, entry="run", call_args=[1500])
    limits = Limits(run.host.table, 1000)
    result = run.wait(30)
    assert result.trap is None, result.trap
    assert result.value > 10
    texts = [(level, text) for _, level, text in run.host.logs]
    status = json.loads(texts[-1][1])
    assert texts[-1][0] == 3
    seqs = [json.loads(text)["seq"] for level, text in texts[:-1]]
    produced = run.host.table.get(1000).events_received  # the closed fd's tombstone
    assert status["dropped_events"] > 0 and status["state"] == "Connected"
    assert status["send_queue_bytes"] <= MAX_SEND and status["recv_queue_bytes"] == 0
    check_accounting(seqs, status["dropped_events"], produced)
    assert limits.checks > 0 and limits.violations == []
