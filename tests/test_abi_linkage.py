"""Checklist items 1, 3-6: linkage, log, memory contract."""

import logging

import wasmtime

from spear_lab.abi import Errno
from spear_lab.runtime import SIGNATURES, instantiate, run_guest
from wasm_util import Caller, caller_wat

EFAULT, EINVAL, ENOSYS = -Errno.EFAULT, -Errno.EINVAL, -Errno.ENOSYS


def test_every_import_links_with_exact_signature(guest):
    # item 1: a module importing all of docs/abi.md §1.1 links (instantiation would fail otherwise)
    module = wasmtime.Module(wasmtime.Engine(), wasmtime.wat2wasm(caller_wat()))
    imports = {(i.module, i.name): i.type for i in module.imports}
    assert len(imports) == len(SIGNATURES) == 32
    for name, (params, results) in SIGNATURES.items():
        ty = imports[("spear", name)]
        assert [str(p) for p in ty.params] == [str(p) for p in params]
        assert [str(r) for r in ty.results] == [str(r) for r in results]
    assert guest.spear_epoll_create() == 1000


def test_subset_of_imports_links(host):
    wat = '(module (import "spear" "time_now_ms" (func $t (result i64))) (func (export "run") (result i64) (call $t)))'
    res = run_guest(host, wat, entry="run")
    assert res.trap is None and res.value > 1_600_000_000_000


def test_wrong_signature_fails_to_link(host):
    wat = '(module (import "spear" "rtasr_create" (func (param i32) (result i32))) (func (export "_start")))'
    res = run_guest(host, wat)
    assert res.trap is not None and "rtasr_create" in res.trap


def test_legacy_imports_return_enosys(guest):
    assert guest.cchat_create() == ENOSYS
    assert guest.cchat_write_msg(0, 0, 0, 0, 0) == ENOSYS
    assert guest.user_stream_open(1, 2) == ENOSYS
    assert guest.user_stream_ctl_open() == ENOSYS


def test_log_records_message(guest, caplog):
    # item 3
    guest.put(64, b"hello")
    with caplog.at_level(logging.INFO, logger="spear_lab.guest"):
        assert guest.log(2, 64, 5) == 0
    assert guest.host.logs[-1][1:] == (2, "hello")
    assert "hello" in caplog.text


def test_log_errors(guest):
    # item 4
    assert guest.log(2, 0, 16385) == EINVAL
    assert guest.log(2, 0, -1) == EINVAL
    assert guest.log(2, 65536 - 2, 5) == EFAULT
    assert guest.log(2, -4, 2) == EFAULT
    assert guest.log(2, 65536, 0) == 0  # zero-length range at the end is valid


def test_bad_pointers_give_efault(guest):
    # item 5: negative pointers and lengths, ranges past the end
    ep = guest.spear_epoll_create()
    r = guest.rtasr_create()
    assert guest.spear_epoll_wait(ep, 0, -8, 0) == EFAULT
    assert guest.spear_epoll_wait(ep, 0, 65534, 0) == EFAULT
    assert guest.rtasr_ctl(r, 3, 0, -1) == EFAULT
    assert guest.rtasr_ctl(r, 3, 0, 70000) == EFAULT
    guest.cell(100, 10)
    assert guest.rtasr_ctl(r, 1, 65530, 100) == EFAULT  # input range past the end
    assert guest.rtasr_write(r, -1, 4) == EFAULT
    assert guest.rtasr_write(r, 0, -4) == EFAULT
    guest.cell(100, 1 << 31)  # negative as i32: payload absent
    assert guest.rtasr_ctl(r, 2, 0, 100) == 0


def test_read_precedence_fd_before_memory(guest):
    # docs/abi.md §10: rtasr_read checks the fd, then the queue, then memory
    assert guest.rtasr_read(4242, -1, -1) == -Errno.EBADF
    r = guest.rtasr_create()
    assert guest.rtasr_read(r, -1, -1) == -Errno.EAGAIN


def test_rtasr_write_memory_check_first(guest):
    # item 6
    assert guest.rtasr_write(999999, -5, 3) == EFAULT
    assert guest.rtasr_write(999999, 0, 3) == -Errno.EBADF


def test_guest_without_memory_gets_efault():
    c = Caller(with_memory=False)
    try:
        ep = c.spear_epoll_create()
        assert c.spear_epoll_wait(ep, 0, 0, 0) == EFAULT
        assert c.log(2, 0, 1) == EFAULT
        r = c.rtasr_create()
        assert c.rtasr_write(r, 0, 1) == EFAULT
        assert c.rtasr_ctl(r, 3, 0, 0) == EFAULT
        assert c.spear_fd_ctl(r, 3, 0, 0) == EFAULT
    finally:
        c.close()


def test_memory_growth_is_seen(host):
    wat = '''(module
      (import "spear" "log" (func $log (param i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "run") (result i32)
        (drop (memory.grow (i32.const 1)))
        (i32.store8 (i32.const 70000) (i32.const 65))
        (call $log (i32.const 2) (i32.const 70000) (i32.const 1))))'''
    with instantiate(host, wat) as inst:
        assert inst.call("run") == 0
        assert inst.host.logs[-1][2] == "A"


def test_sleep_ms_negative_is_clamped(guest):
    import time
    t0 = time.monotonic()
    guest.sleep_ms(-1)
    guest.sleep_ms(5)
    assert time.monotonic() - t0 < 5.0


def test_clock_and_random(guest):
    import time
    assert abs(guest.time_now_ms() - time.time() * 1000) < 5000
    assert abs(guest.wall_time_s() - time.time()) < 5
    values = {guest.random_i64() for _ in range(8)}
    assert len(values) == 8
    assert all(-(1 << 63) <= v < (1 << 63) for v in values)
