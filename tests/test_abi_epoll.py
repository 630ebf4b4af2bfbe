"""Checklist items 7-26 (fd table and epoll), mostly through a real guest."""

import struct
import threading
import time

from spear_lab.abi import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, Errno, FdTable
from spear_lab.abi.epoll import EpollFd, epoll_ctl, epoll_wait
from spear_lab.abi.fdtable import FdEntry
from spear_lab.abi.constants import FdKind

EBADF, EINVAL, ENOSPC = -Errno.EBADF, -Errno.EINVAL, -Errno.ENOSPC
ADD, MOD, DEL = 1, 2, 3
OUT_PTR, LEN_PTR = 256, 128


def wait(g, ep, cap=512, timeout=0):
    """Run spear_epoll_wait in the guest; returns (rc, records, cell)."""
    g.cell(LEN_PTR, cap)
    rc = g.spear_epoll_wait(ep, OUT_PTR, LEN_PTR, timeout)
    cell = g.cell(LEN_PTR)
    recs = [struct.unpack_from("<ii", g.get(OUT_PTR + 8 * i, 8)) for i in range(max(rc, 0))]
    return rc, recs, cell


class Pollable(FdEntry):
    """A test fd whose mask the test sets directly."""

    kind = FdKind.USER_STREAM


def test_fd_numbering_never_reused(guest):
    # item 7
    fds = [guest.spear_epoll_create(), guest.rtasr_create(), guest.rtasr_create()]
    assert fds == [1000, 1001, 1002]
    assert guest.rtasr_close(1001) == 0
    assert guest.spear_epoll_create() == 1003


def test_close_unknown_and_twice(guest):
    # item 8
    assert guest.rtasr_close(5000) == EBADF
    r = guest.rtasr_create()
    assert guest.rtasr_close(r) == 0
    assert guest.rtasr_close(r) == 0
    assert guest.spear_epoll_close(r) == 0


def test_any_close_closes_any_kind(guest):
    # item 9
    ep = guest.spear_epoll_create()
    assert guest.rtasr_close(ep) == 0
    assert wait(guest, ep)[0] == EBADF


def test_closed_fd_reports_hup_plus_stored_bits(guest):
    # item 10 and 17
    ep = guest.spear_epoll_create()
    r = guest.rtasr_create()
    assert guest.spear_epoll_ctl(ep, ADD, r, EPOLLOUT | EPOLLHUP) == 0
    assert wait(guest, ep)[1] == [(r, EPOLLOUT)]
    guest.rtasr_close(r)
    assert wait(guest, ep)[1] == [(r, EPOLLOUT | EPOLLHUP)]
    # and it stays in the watch set, reported on every wait
    assert wait(guest, ep)[1] == [(r, EPOLLOUT | EPOLLHUP)]
    assert guest.spear_epoll_ctl(ep, DEL, r, 0) == 0
    assert wait(guest, ep)[0] == 0


def test_closing_epoll_removes_it_from_watchers(guest):
    # item 11
    ep = guest.spear_epoll_create()
    r = guest.rtasr_create()
    guest.spear_epoll_ctl(ep, ADD, r, EPOLLIN)
    table = guest.host.table
    assert ep in table.get(r).watchers
    guest.spear_epoll_close(ep)
    assert ep not in table.get(r).watchers


def test_fd_ctl_status_of_closed_fd(guest):
    # item 12
    r = guest.rtasr_create()
    guest.rtasr_close(r)
    guest.cell(LEN_PTR, 200)
    n = guest.spear_fd_ctl(r, 4, OUT_PTR, LEN_PTR)
    assert guest.get(OUT_PTR, n) == b'{"closed":true,"flags":[],"kind":"RtAsr","poll_mask":["EPOLLOUT","EPOLLHUP"]}'


def test_interest_bits_masked(guest):
    # item 13
    ep = guest.spear_epoll_create()
    r = guest.rtasr_create()
    assert guest.spear_epoll_ctl(ep, ADD, r, -1) == 0
    assert guest.host.table.get(ep).watches[r] == 0x01D


def test_ascending_order_one_record_each(guest):
    # item 14 and 23
    ep = guest.spear_epoll_create()
    a, b = guest.rtasr_create(), guest.rtasr_create()
    guest.spear_epoll_ctl(ep, ADD, b, EPOLLOUT | EPOLLIN)
    guest.spear_epoll_ctl(ep, ADD, a, EPOLLOUT)
    rc, recs, cell = wait(guest, ep)
    assert rc == 2 and cell == 16
    assert recs == [(a, EPOLLOUT), (b, EPOLLOUT)]
    raw = guest.get(OUT_PTR, 16)
    assert raw == struct.pack("<iiii", a, EPOLLOUT, b, EPOLLOUT)


def test_timeout_returns_zero_records(guest):
    # item 15
    ep = guest.spear_epoll_create()
    r = guest.rtasr_create()
    guest.spear_epoll_ctl(ep, ADD, r, EPOLLIN)
    t0 = time.monotonic()
    rc, _, cell = wait(guest, ep, timeout=5)
    assert rc == 0 and cell == 0
    assert time.monotonic() - t0 >= 0.004


def test_wait_woken_by_other_thread(host):
    # item 16 (table level: another thread sets IN after 10 ms)
    table = host.table
    ep = host.spear_epoll_create()
    p = table.alloc(Pollable)
    host.spear_epoll_ctl(ep, ADD, p.fd, EPOLLIN)

    def later():
        time.sleep(0.01)
        with table.lock:
            p.set_mask(EPOLLIN)

    threading.Thread(target=later).start()
    assert host.spear_epoll_wait(ep, 8, 200) == [(p.fd, EPOLLIN)]


def test_capacity_below_one_record(guest):
    # item 18: -ENOSPC and 8 written, even for an invalid epfd
    rc, _, cell = wait(guest, 7777, cap=7)
    assert rc == ENOSPC and cell == 8


def test_capacity_one_record_level_triggered(guest):
    # item 19
    ep = guest.spear_epoll_create()
    a, b = guest.rtasr_create(), guest.rtasr_create()
    guest.spear_epoll_ctl(ep, ADD, a, EPOLLOUT)
    guest.spear_epoll_ctl(ep, ADD, b, EPOLLOUT)
    for _ in range(2):
        rc, recs, cell = wait(guest, ep, cap=8)
        assert (rc, recs, cell) == (1, [(a, EPOLLOUT)], 8)


def test_ctl_errors(guest):
    # item 20
    ep, ep2 = guest.spear_epoll_create(), guest.spear_epoll_create()
    r = guest.rtasr_create()
    assert guest.spear_epoll_ctl(ep, ADD, ep, EPOLLIN) == EINVAL
    assert guest.spear_epoll_ctl(9999, ADD, 9999, EPOLLIN) == EINVAL  # epfd == fd first
    assert guest.spear_epoll_ctl(ep, ADD, ep2, EPOLLIN) == EINVAL
    assert guest.spear_epoll_ctl(9999, ADD, r, EPOLLIN) == EBADF
    assert guest.spear_epoll_ctl(ep, ADD, 9999, EPOLLIN) == EBADF
    assert guest.spear_epoll_ctl(r, ADD, ep, EPOLLIN) == EBADF  # epfd not an epoll
    assert guest.spear_epoll_ctl(ep, 4, r, EPOLLIN) == EINVAL
    assert guest.host.table.get(ep).watches == {}
    guest.spear_epoll_close(ep)
    assert guest.spear_epoll_ctl(ep, ADD, r, EPOLLIN) == EBADF


def test_add_twice_del_unwatched_add_closed(guest):
    # item 21
    ep = guest.spear_epoll_create()
    r, s = guest.rtasr_create(), guest.rtasr_create()
    assert guest.spear_epoll_ctl(ep, ADD, r, EPOLLIN) == 0
    assert guest.spear_epoll_ctl(ep, ADD, r, EPOLLOUT) == 0
    assert wait(guest, ep)[1] == [(r, EPOLLOUT)]
    assert guest.spear_epoll_ctl(ep, DEL, s, 0) == 0
    guest.rtasr_close(s)
    assert guest.spear_epoll_ctl(ep, ADD, s, EPOLLHUP) == 0
    assert wait(guest, ep)[1] == [(r, EPOLLOUT), (s, EPOLLHUP)]


def test_err_hup_filtered_by_interest(guest):
    # item 22
    ep = guest.spear_epoll_create()
    r = guest.rtasr_create()
    guest.spear_epoll_ctl(ep, ADD, r, EPOLLIN)
    guest.rtasr_close(r)
    assert wait(guest, ep)[0] == 0


def test_mod_of_unwatched_fd_wakes_wait(host):
    # item 24 [FIX]
    table = host.table
    ep = host.spear_epoll_create()
    p = table.alloc(Pollable)
    assert host.spear_epoll_ctl(ep, MOD, p.fd, EPOLLIN) == 0
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", host.spear_epoll_wait(ep, 8, 5000)))
    t.start()
    time.sleep(0.05)
    with table.lock:
        p.set_mask(EPOLLIN)
    t.join(5)
    assert result["r"] == [(p.fd, EPOLLIN)]


def test_close_epoll_while_waiting(host):
    # item 25 [FIX]
    ep = host.spear_epoll_create()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", host.spear_epoll_wait(ep, 8, -1)))
    t.start()
    time.sleep(0.05)
    assert host.spear_epoll_close(ep) == 0
    t.join(5)
    assert not t.is_alive()
    assert result["r"] == EBADF


def test_no_lost_wakeup_stress():
    # item 26 [FIX]: thousands of wait/notify races across threads, none missed
    table = FdTable()
    ep = table.alloc(EpollFd)
    p = table.alloc(Pollable)
    assert epoll_ctl(table, ep.fd, ADD, p.fd, EPOLLIN) == 0
    rounds = 3000
    missed = 0
    go = threading.Event()

    def producer():
        for _ in range(rounds):
            go.wait()
            go.clear()
            with table.lock:
                p.set_mask(EPOLLIN)

    t = threading.Thread(target=producer)
    t.start()
    for _ in range(rounds):
        go.set()  # the producer sets IN, racing with the start of our wait
        r = epoll_wait(table, ep.fd, 4, 2000)
        if r != [(p.fd, EPOLLIN)]:
            missed += 1
        with table.lock:
            p.set_mask(0)
    t.join()
    assert missed == 0


def test_close_while_waiting_stress():
    for _ in range(200):
        table = FdTable()
        ep = table.alloc(EpollFd)
        out = []
        t = threading.Thread(target=lambda o=out, tb=table, e=ep: o.append(epoll_wait(tb, e.fd, 4, 5000)))
        t.start()
        table.close(ep.fd)
        t.join(5)
        assert out and out[0] in (EBADF,)


def test_watch_cap(host):
    ep = host.spear_epoll_create()
    fds = [host.rtasr_create() for _ in range(4097)]
    rcs = [host.spear_epoll_ctl(ep, ADD, fd, EPOLLIN) for fd in fds]
    assert rcs[:4096] == [0] * 4096 and rcs[4096] == -Errno.ENOMEM
    assert host.spear_epoll_ctl(ep, ADD, fds[0], EPOLLOUT) == 0  # replacing is fine


def test_err_recomputes_whole_mask(host):
    # a fix, docs/abi.md §12: an error removes OUT at once
    r = host.rtasr_create()
    ep = host.spear_epoll_create()
    host.spear_epoll_ctl(ep, ADD, r, EPOLLIN | EPOLLOUT | EPOLLERR)
    host.table.get(r).fail("boom")
    assert host.spear_epoll_wait(ep, 8, 0) == [(r, EPOLLERR)]
