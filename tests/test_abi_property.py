"""Property test: every hostcall called from a guest with arbitrary i32 arguments.

The host never raises, every result is one the ABI documents, and the fd table stays
consistent (numbers from 1000 without gaps, closed entries report HUP, watcher links
match watch sets).
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spear_lab.abi import EPOLLHUP, Errno
from spear_lab.abi.epoll import EpollFd
from spear_lab.runtime import SIGNATURES
from wasm_util import Caller

ALLOWED_NEG = {-Errno.EIO, -Errno.EBADF, -Errno.EAGAIN, -Errno.EFAULT, -Errno.EINVAL,
               -Errno.ENOSPC, -Errno.EPIPE, -Errno.ENOMEM}
CREATES = {"spear_epoll_create", "rtasr_create", "mic_create"}
LEGACY = {n for n in SIGNATURES if n.startswith(("cchat_", "user_stream_"))}
CLOCKS = {"time_now_ms", "wall_time_s", "random_i64"}
PAYLOADS = [b'{"key":"max_send_queue_bytes","value":64}', b'{"strategy":"manual"}',
            b'{"type":"input_audio_buffer.commit"}', b'{"source":"stub","frame_ms":10}',
            b'{"set":["O_NONBLOCK"]}', b"not json", b"\xff\xfe"]

FDS = st.one_of(st.integers(1000, 1012), st.integers(-(2**31), 2**31 - 1))
PTRS = st.one_of(st.sampled_from([0, 64, 1024, 2048, 4096, 65532, 65536]),
                 st.integers(-(2**31), 2**31 - 1))
SMALL = st.one_of(st.integers(0, 12), st.integers(-(2**31), 2**31 - 1))
NAMES = sorted(n for n in SIGNATURES if n != "sleep_ms")


def args_for(name):
    n = len(SIGNATURES[name][0])
    if name == "spear_epoll_wait":
        return st.tuples(FDS, PTRS, PTRS, st.integers(0, 3))
    if name == "spear_epoll_ctl":
        return st.tuples(FDS, st.integers(-1, 4), FDS, st.integers(-(2**31), 2**31 - 1))
    if name.endswith("_ctl"):
        return st.tuples(FDS, SMALL, PTRS, PTRS)
    if name.endswith(("_read", "_write")):
        return st.tuples(FDS, PTRS, st.one_of(PTRS, st.integers(0, 64)))
    if name == "log":
        return st.tuples(SMALL, PTRS, st.integers(-5, 20000))
    return st.tuples(*([FDS] * n))


CALLS = st.sampled_from(NAMES).flatmap(lambda n: st.tuples(st.just(n), args_for(n)))


def check_table(table):
    fds = sorted(e.fd for e in table)
    assert fds == list(range(1000, 1000 + len(fds)))
    for entry in table:
        if entry.closed:
            assert entry.effective_mask & EPOLLHUP
        for epfd in entry.watchers:
            ep = table.get(epfd)
            assert isinstance(ep, EpollFd) and not ep.closed and entry.fd in ep.watches
        if isinstance(entry, EpollFd) and not entry.closed:
            for fd in entry.watches:
                assert entry.fd in table.get(fd).watchers


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(CALLS, min_size=1, max_size=40), st.binary(min_size=256, max_size=256))
def test_arbitrary_hostcalls(calls, noise):
    g = Caller()
    try:
        g.put(0, noise)
        for i, payload in enumerate(PAYLOADS):
            g.put(1024 + 256 * i, payload)
            g.cell(64 + 4 * i, len(payload))
        for name, args in calls:
            rc = getattr(g, name)(*args)  # never raises
            if name in CREATES:
                assert rc >= 1000
            elif name in LEGACY:
                assert rc == -Errno.ENOSYS
            elif name not in CLOCKS:
                assert rc >= 0 or rc in ALLOWED_NEG, (name, args, rc)
            check_table(g.host.table)
        assert g.host.internal_errors == 0
    finally:
        g.close()
