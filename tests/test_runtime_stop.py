"""Stop: a spinning guest and a blocked guest both end promptly, fds closed, no thread left.

A run reports ``stopped`` by the cause's type, never by a message: a hostcall raising
GuestStopped (recorded on the glue) or the epoch interrupt; a guest's own trap while a
stop is pending stays a trap.
"""

import threading
import time

import pytest

from spear_lab.runtime import GuestStopped, instantiate, load_guest, run_guest, start_guest

SPIN = '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'
BLOCK = '''(module
  (import "spear" "spear_epoll_create" (func $c (result i32)))
  (import "spear" "rtasr_create" (func $r (result i32)))
  (import "spear" "spear_epoll_wait" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $ep i32)
    (local.set $ep (call $c)) (drop (call $r))
    (i32.store (i32.const 0) (i32.const 64))
    (drop (call $w (local.get $ep) (i32.const 8) (i32.const 0) (i32.const -1)))))'''
SLEEP = '''(module
  (import "spear" "sleep_ms" (func $s (param i32)))
  (import "spear" "spear_epoll_create" (func $c (result i32)))
  (func (export "_start") (drop (call $c)) (call $s (i32.const 100000))))'''


#: Prints "waiting", sleeps 300 ms in WASI (host code: no epoch check, no stop check),
#: then traps by itself: straight-line code after a call has no epoch check either.
WASI_SLEEP_THEN_UNREACHABLE = '''(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "waiting\\n")
  (func (export "_start")
    (i32.store (i32.const 256) (i32.const 200)) (i32.store (i32.const 260) (i32.const 8))
    (drop (call $w (i32.const 1) (i32.const 256) (i32.const 1) (i32.const 264)))
    ;; one subscription at 0: tag 0 = clock, clock id 1 = monotonic, timeout 300 ms
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 300000000))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
    unreachable))'''


def guest_threads():
    return [t for t in threading.enumerate() if t.name.startswith("spear-guest")]


@pytest.mark.parametrize("wat", [SPIN, BLOCK, SLEEP], ids=["spin", "blocked-wait", "sleep"])
def test_stop_is_prompt(host, wat):
    run = start_guest(host, wat)
    time.sleep(0.2)
    assert not run.done
    t0 = time.monotonic()
    res = run.stop(timeout=5)
    elapsed = time.monotonic() - t0
    assert res.stopped and res.trap == "stopped"
    assert elapsed < 2.0, f"stop took {elapsed:.3f} s"
    assert run.host.table.open_fds() == []
    run.cleanup()
    time.sleep(0.05)
    assert guest_threads() == []


def test_hostcall_stop_is_recorded_on_the_glue(host):
    # the typed mechanism itself: the hostcall raises GuestStopped and flags the glue
    inst = instantiate(host, SLEEP)
    assert not inst.glue.stop_raised
    inst.host.request_stop()
    with pytest.raises(GuestStopped):
        inst.call("_start")
    assert inst.glue.stop_raised
    inst.close()


def test_clock_calls_do_not_trap_a_stopping_guest(host):
    # time_now_ms is not cancellable: a stop request alone does not flag the glue
    wat = ('(module (import "spear" "time_now_ms" (func $t (result i64)))'
           ' (func (export "run") (result i64) (call $t)))')
    inst = instantiate(host, wat)
    inst.host.request_stop()
    assert inst.call("run") > 0 and not inst.glue.stop_raised
    inst.close()


def test_own_trap_during_a_pending_stop_is_not_reported_as_stopped(host):
    run = start_guest(host, WASI_SLEEP_THEN_UNREACHABLE)
    deadline = time.monotonic() + 5
    while "waiting" not in run.stdout and time.monotonic() < deadline:
        time.sleep(0.005)
    assert run.stdout == "waiting\n" and not run.done  # inside poll_oneoff now
    res = run.stop(timeout=5)
    assert res.stopped  # a stop was requested...
    assert res.trap != "stopped" and "unreachable" in res.trap  # ...but the guest trapped first
    assert res.outcome.startswith("trap: ")
    run.cleanup()


def test_stop_before_the_entry_runs(host):
    run = start_guest(host, SPIN)
    res = run.stop(timeout=5)
    assert res.stopped and res.trap == "stopped" and res.outcome == "stopped"
    run.cleanup()


def test_fds_closed_when_guest_returns(host):
    wat = BLOCK.replace("(i32.const -1)", "(i32.const 0)")
    res = run_guest(host, wat)
    assert res.exit_code == 0 and res.fds_closed == 2


def test_proc_exit_status(host):
    wat = '''(module (import "wasi_snapshot_preview1" "proc_exit" (func $e (param i32)))
      (memory (export "memory") 1) (func (export "_start") (call $e (i32.const 3))))'''
    res = run_guest(host, wat)
    assert res.exit_code == 3 and res.trap is None


def test_wasi_stdout_captured_while_running(host):
    wat = '''(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (import "spear" "sleep_ms" (func $s (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "hi there\\n")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 100)) (i32.store (i32.const 4) (i32.const 9))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 20)))
        (call $s (i32.const 300))))'''
    run = start_guest(host, wat)
    deadline = time.monotonic() + 5
    while "hi there" not in run.stdout and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run.stdout == "hi there\n" and not run.done
    assert run.wait(5).exit_code == 0


def test_guest_trap_is_reported(host):
    res = run_guest(host, '(module (func (export "_start") unreachable))')
    assert res.exit_code is None and "unreachable" in res.trap


def test_bad_guest_sources(host):
    with pytest.raises(FileNotFoundError, match="built-in"):
        load_guest("no_such_guest_name")
    with pytest.raises(ValueError, match="invalid WAT"):
        load_guest("(module (func")
    res = run_guest(host, '(module (func (export "other")))')
    assert "exports no function" in res.trap


def test_stop_then_host_reuse(host):
    for _ in range(5):
        run = start_guest(host, BLOCK)
        assert run.stop(5).stopped
        run.cleanup()
    assert guest_threads() == []
