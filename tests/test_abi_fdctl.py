"""Checklist items 27-30 (spear_fd_ctl), through a real guest."""

from spear_lab.abi import Errno

ARG, LEN = 512, 128


def ctl(g, fd, cmd, payload=None, cap=256):
    if payload is not None:
        g.put(ARG, payload)
        g.cell(LEN, len(payload))
    else:
        g.cell(LEN, cap)
    rc = g.spear_fd_ctl(fd, cmd, ARG, LEN)
    out = g.get(ARG, rc) if rc > 0 else None
    return rc, out


def test_unknown_cmd_before_memory(guest):
    # item 27: -22 without touching memory (bad pointers are never read)
    r = guest.rtasr_create()
    for cmd in (0, 6, 99):
        assert guest.spear_fd_ctl(r, cmd, -1, -1) == -Errno.EINVAL
        assert guest.spear_fd_ctl(424242, cmd, -1, -1) == -Errno.EINVAL


def test_flags(guest):
    # item 28
    r = guest.rtasr_create()
    assert ctl(guest, r, 2) == (12, b'{"flags":[]}')
    assert ctl(guest, r, 1, b'{"set":["O_NONBLOCK"]}') == (0, None)
    assert ctl(guest, r, 2)[1] == b'{"flags":["O_NONBLOCK"]}'
    assert ctl(guest, r, 1, b'{"set":["O_NONBLOCK"],"clear":["O_NONBLOCK"]}')[0] == 0
    assert ctl(guest, r, 2)[1] == b'{"flags":[]}'
    assert ctl(guest, r, 1, b"")[0] == -Errno.EINVAL
    assert ctl(guest, r, 1, b"{nope")[0] == -Errno.EINVAL
    assert ctl(guest, r, 1, b'{"set":["FD_CLOEXEC",1],"clear":5}')[0] == 0
    assert ctl(guest, r, 2)[1] == b'{"flags":[]}'


def test_set_flags_memory_checks_before_fd(guest):
    guest.cell(LEN, 10)
    assert guest.spear_fd_ctl(99999, 1, 65530, LEN) == -Errno.EFAULT
    assert guest.spear_fd_ctl(99999, 1, 0, -4) == -Errno.EFAULT
    assert guest.spear_fd_ctl(99999, 3, 0, LEN) == -Errno.EBADF


def test_kind_and_metrics(guest):
    # item 29
    ep, r = guest.spear_epoll_create(), guest.rtasr_create()
    assert ctl(guest, r, 3)[1] == b'{"kind":"RtAsr"}'
    assert ctl(guest, ep, 3)[1] == b'{"kind":"Epoll"}'
    for fd in (ep, r):
        assert ctl(guest, fd, 5)[1] == b"{}"
    assert ctl(guest, ep, 4)[1] == b'{"closed":false,"flags":[],"kind":"Epoll","poll_mask":[]}'


def test_too_small_cell(guest):
    # item 30
    r = guest.rtasr_create()
    rc, _ = ctl(guest, r, 3, cap=5)
    assert rc == -Errno.ENOSPC
    assert guest.cell(LEN) == len(b'{"kind":"RtAsr"}')
