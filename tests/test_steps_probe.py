"""The step tables (spear_lab.views.steps) and the length-cell probe (spear_lab.runtime.probe)."""

import pytest

from spear_lab import EPOLLOUT, EpollOp, Errno, FdCtl, Probe, guest_interface
from spear_lab.views import SideBySide, parse_steps, step_table, trace_steps

TOUR_LINES = """\
step epoll_create: rc=1000 fd=1000
why epoll_create: fds start at 1000
step ctl_self: rc=-22 expect=-22
why ctl_self: an epoll cannot watch itself
step write1: rc=0 expect=-11
why write1: all-or-nothing
mismatch write1: expected rc=-11
step wait_hup: rc=1 expect=1 fd=1001 events=0x10
mismatch wait_hup: EPOLLHUP on the closed fd
summary: steps=4 mismatches=2
"""


def test_parse_steps_reads_expected_got_why_and_mismatches():
    steps = parse_steps(TOUR_LINES)
    assert [s.name for s in steps] == ["epoll_create", "ctl_self", "write1", "wait_hup"]
    assert steps[0].expected is None and steps[0].got == 1000 and steps[0].why == "fds start at 1000"
    assert steps[1].ok and steps[1].expected == -22
    assert not steps[2].ok and steps[2].problems == ("expected rc=-11",)
    assert not steps[3].ok and steps[3].problems == ("EPOLLHUP on the closed fd",)
    assert steps[3].call == "fd=1001 events=0x10"


def test_step_table_marks_mismatches_in_text_and_html():
    table = step_table(TOUR_LINES, "tour")
    assert table.summary() == "4 steps, 2 mismatches" and not table.ok
    lines = table.text().splitlines()
    marked = [ln for ln in lines if ln.startswith("✗")]
    assert len(marked) == 2 and "write1" in marked[0] and "-11 (-EAGAIN)" in marked[0]
    html = table._repr_html_()
    assert html.count("background:#fdecea") == 2 and "-22 (-EINVAL)" in html
    assert table["ctl_self"].got == -22
    with pytest.raises(KeyError, match="no step 'nope'"):
        table["nope"]


def test_parse_steps_refuses_output_without_steps():
    with pytest.raises(ValueError, match="no 'step <name>: rc=<int>' line"):
        parse_steps("summary: steps=0 mismatches=0\n")


class _Trace:
    def __init__(self, calls):
        self.calls = calls

    def hostcalls(self, instance):
        return [dict(c, instance=instance) for c in self.calls]


def test_trace_steps_pairs_calls_with_expectations():
    trace = _Trace([{"name": "spear_epoll_create", "args": [], "rc": 1000},
                    {"name": "spear_epoll_ctl", "args": [1000, 1, 1001, 1], "rc": 0},
                    {"name": "log", "args": [2, 0, 5], "rc": 0}])
    table = trace_steps(trace, "g", [("spear_epoll_create", 1000, "first fd"),
                                     ("spear_epoll_ctl", -17, "Linux would say EEXIST")])
    assert [s.ok for s in table.steps] == [True, False, False]
    assert table.steps[1].problems == ("expected rc=-17",)
    assert table.steps[2].problems == ("a call the lesson did not expect",)
    missing = trace_steps(_Trace([]), "g", [("log", 0, "")])
    assert missing.steps[0].got is None and not missing.ok
    with pytest.raises(ValueError):
        trace_steps(trace, "g", [])


def test_side_by_side_checks_its_rows():
    t = SideBySide([["ADD twice", "-1, errno EEXIST", "0", "compatibility"]])
    assert "EEXIST" in t.text() and "<code>ADD twice</code>" in t._repr_html_()
    with pytest.raises(ValueError, match="has 2 cells"):
        SideBySide([["a", "b"]])


def test_probe_shows_the_length_cell_of_a_real_guest():
    with Probe() as probe:
        host = probe.host
        ep, a = host.spear_epoll_create(), host.rtasr_create()
        assert host.spear_epoll_ctl(ep, EpollOp.ADD, a, EPOLLOUT) == 0
        short = probe.epoll_wait(ep, 4)
        assert (short.rc, short.cell_in, short.cell_out) == (-Errno.ENOSPC, 4, 8)
        one = probe.epoll_wait(ep, 64)
        assert one.records == [(a, EPOLLOUT)] and one.cell_out == 8
        assert one.data == a.to_bytes(4, "little") + EPOLLOUT.to_bytes(4, "little")
        need = len(host.spear_fd_ctl(a, FdCtl.GET_STATUS))
        res = probe.fd_ctl(a, FdCtl.GET_STATUS, capacity=5)
        assert (res.rc, res.cell_out) == (-Errno.ENOSPC, need) and "-ENOSPC" in repr(res)
        ok = probe.fd_ctl(a, FdCtl.GET_STATUS, capacity=need)
        assert ok.rc == need and ok.data == host.spear_fd_ctl(a, FdCtl.GET_STATUS)
        assert probe.log(2, ptr=65530, length=10).rc == -Errno.EFAULT
        assert probe.log(2, b"hi").rc == 0 and host.logs[-1][2] == "hi"
        with pytest.raises(ValueError, match="outside guest memory"):
            probe.write(70000, b"x")


def test_probe_without_memory_gives_efault_and_refuses_unknown_calls():
    with Probe(memory=False) as bare:
        ep = bare.host.spear_epoll_create()
        res = bare.epoll_wait(ep, 64)
        assert res.rc == -Errno.EFAULT and res.cell_in is None
        with pytest.raises(LookupError, match="does not forward 'sleep_ms'"):
            bare.call("sleep_ms", 1)


def test_guest_interface_reads_imports_without_running():
    iface = guest_interface("epoll_basics")
    assert "spear_epoll_wait" in iface["spear"] and "_start" in iface["exports"]
    with pytest.raises(FileNotFoundError):
        guest_interface("no_such_guest_here")
