"""Property tests: every rtasr ctl payload docs/abi.md §5.6/§6.2 does not accept gives -EINVAL and
changes nothing, through the Host methods and through guest memory."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wasm_util import Caller

from spear_lab import Host
from spear_lab.abi import Errno, RtasrCtl
from spear_lab.abi.jsonfmt import dumpb

EINVAL = -Errno.EINVAL
_STRATEGY_NAMES = {"manual", "off", "server_vad", "client_commit"}
_BAD = object()

# -- payload generators ---------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12), st.sampled_from(["manual", "off", "server_vad", "client_commit", "silence",
                                           "bytes", "time", "hybrid", "key", ""]),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=12)
vocabulary = st.sampled_from(["key", "value", "strategy", "vad", "client_commit", "enabled", "mode",
                              "silence_ms", "threshold", "prefix_padding_ms", "flush_interval_ms",
                              "max_buffer_bytes", "min_flush_gap_ms", "flush_on_close", "type"])
shaped_objects = st.dictionaries(vocabulary, st.one_of(json_values, st.dictionaries(vocabulary, json_values,
                                                                                     max_size=4)), max_size=5)
payloads = st.one_of(
    st.none(),
    st.binary(max_size=64),
    st.text(max_size=40).map(str.encode),
    json_values.map(dumpb),
    shaped_objects.map(dumpb),
    shaped_objects.map(lambda o: dumpb(o)[:-1]),  # truncated
    st.sampled_from([b"NaN", b"Infinity", b'{"key":NaN}', b'{"strategy":"manual",}', b"{'a':1}",
                     b'{"key":"a"} x', b"\xef\xbb\xbf{}", b'"\\ud800"', b"[1,]", b"01"]),
)


def _reject_constant(name: str):
    raise ValueError(name)


def _has_lone_surrogate(obj) -> bool:
    if isinstance(obj, str):
        return any(0xD800 <= ord(ch) <= 0xDFFF for ch in obj)
    if isinstance(obj, list):
        return any(_has_lone_surrogate(x) for x in obj)
    if isinstance(obj, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in obj.items())
    return False


def strict_json(payload: bytes | None):
    """RFC 8259 JSON as the reference's parser takes it (no NaN/Infinity, no lone
    surrogate escapes), or _BAD."""
    if payload is None:
        return _BAD
    try:
        obj = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _BAD
    return _BAD if _has_lone_surrogate(obj) else obj


def accepted(cmd: int, payload: bytes | None) -> bool:
    """What docs/abi.md §5.6 (SET_PARAM, SEND_EVENT) and §6.2 (SET_AUTOFLUSH) accept."""
    obj = strict_json(payload)
    if obj is _BAD:
        return False
    if cmd == RtasrCtl.SEND_EVENT:
        return True
    if not isinstance(obj, dict):
        return False
    if cmd == RtasrCtl.SET_PARAM:
        return isinstance(obj.get("key"), str) and obj["key"] != ""
    strategy = obj.get("strategy")
    if not isinstance(strategy, str):
        return True  # legacy form: any object
    return (strategy in _STRATEGY_NAMES
            and ("vad" not in obj or isinstance(obj["vad"], dict))
            and ("client_commit" not in obj or isinstance(obj["client_commit"], dict)))


# -- the two ways in ------------------------------------------------------------------------

class PyWay:
    def __init__(self) -> None:
        self.host = Host()

    def ctl(self, fd, cmd, payload):
        return self.host.rtasr_ctl(fd, cmd, payload)

    def close(self):
        self.host.shutdown()


class GuestWay:
    """The same call through guest memory (payload at 1024, length cell at 16)."""

    def __init__(self) -> None:
        self.caller = Caller()
        self.host = self.caller.host

    def ctl(self, fd, cmd, payload):
        c = self.caller
        data = payload or b""
        c.put(1024, data)
        # GET commands: the cell holds the capacity (the host reads that much input first)
        get = cmd in (RtasrCtl.GET_STATUS, RtasrCtl.GET_AUTOFLUSH)
        c.cell(16, max(4096, len(data)) if get else len(data))
        rc = c.rtasr_ctl(fd, cmd, 1024 if payload is not None or get else 0, 16)
        if rc > 0:  # GET-style output: read it back
            return c.get(1024, c.cell(16))
        return rc

    def close(self):
        self.caller.close()


@pytest.fixture(scope="module", params=["python", "guest"])
def way(request):
    w = PyWay() if request.param == "python" else GuestWay()
    yield w
    w.close()


def snapshot(host: Host, fd: int):
    entry = host.table.get(fd)
    return (host.rtasr_ctl(fd, RtasrCtl.GET_STATUS), host.rtasr_ctl(fd, RtasrCtl.GET_AUTOFLUSH),
            dict(entry.params), list(entry.send_queue), entry.state, entry.segmentation,
            vars(entry.commit_clock).copy(), entry.mask)


def fresh_fd(host: Host) -> int:
    fd = host.rtasr_create()
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH,
                          b'{"strategy":"client_commit","client_commit":{"max_buffer_bytes":7}}') == 0
    assert host.rtasr_write(fd, b"\1\2\3") == 3
    return fd


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cmd=st.sampled_from([RtasrCtl.SET_PARAM, RtasrCtl.SET_AUTOFLUSH, RtasrCtl.SEND_EVENT]),
       payload=payloads, init=st.booleans())
def test_bad_ctl_payload_is_einval_and_changes_nothing(way, cmd, payload, init):
    host = way.host
    fd = host.rtasr_create() if init else fresh_fd(host)
    before = snapshot(host, fd)
    rc = way.ctl(fd, cmd, payload)
    if accepted(cmd, payload):
        assert rc == 0, (cmd, payload)
    else:
        assert rc == EINVAL, (cmd, payload)
        assert snapshot(host, fd) == before


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cmd=st.sampled_from([RtasrCtl.GET_STATUS, RtasrCtl.GET_AUTOFLUSH]), payload=payloads)
def test_get_commands_ignore_their_input(way, cmd, payload):
    host = way.host
    fd = fresh_fd(host)
    expected = host.rtasr_ctl(fd, cmd)
    assert way.ctl(fd, cmd, payload) == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=payloads)
def test_accepted_set_param_stores_the_value(way, payload):
    host = way.host
    fd = host.rtasr_create()
    if accepted(RtasrCtl.SET_PARAM, payload):
        obj = json.loads(payload)
        assert way.ctl(fd, RtasrCtl.SET_PARAM, payload) == 0
        assert host.table.get(fd).params == {obj["key"]: obj.get("value")}
        assert json.loads(host.rtasr_ctl(fd, RtasrCtl.GET_STATUS))["state"] == "Configured"
