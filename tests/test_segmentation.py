"""Segmentation / autoflush (docs/abi.md §6): checklist items 44, 51-55 and the parse rules."""

from __future__ import annotations

import json

import pytest

from spear_lab.abi import Errno, RtasrCtl
from spear_lab.abi.jsonfmt import dumpb
from spear_lab.fds.segmentation import (
    ClientCommit, CommitClock, Segmentation, Vad, is_silent, turn_detection,
)

EINVAL = -Errno.EINVAL
DEFAULT = {"client_commit": None, "flush_on_close": False, "strategy": "server_vad",
           "vad": {"prefix_padding_ms": 300, "silence_ms": 500, "threshold": 0.5}}


def get_seg(host, fd) -> dict:
    out = host.rtasr_ctl(fd, RtasrCtl.GET_AUTOFLUSH)
    assert isinstance(out, bytes)
    return json.loads(out)


def set_seg(host, fd, payload) -> int:
    data = payload if isinstance(payload, bytes) or payload is None else dumpb(payload)
    return host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, data)


def roundtrip(host, payload) -> dict:
    fd = host.rtasr_create()
    assert set_seg(host, fd, payload) == 0
    return get_seg(host, fd)


# -- items 51-55 ---------------------------------------------------------------------------

def test_default_segmentation(host):
    # item 51
    fd = host.rtasr_create()
    out = host.rtasr_ctl(fd, RtasrCtl.GET_AUTOFLUSH)
    assert out == (b'{"client_commit":null,"flush_on_close":false,"strategy":"server_vad",'
                   b'"vad":{"prefix_padding_ms":300,"silence_ms":500,"threshold":0.5}}')
    assert json.loads(out) == DEFAULT


def test_client_commit_roundtrip(host):
    # item 52
    seg = roundtrip(host, {"strategy": "client_commit", "flush_on_close": False,
                           "client_commit": {"max_buffer_bytes": 123, "min_flush_gap_ms": 7}})
    assert seg == {"client_commit": {"flush_interval_ms": None, "max_buffer_bytes": 123,
                                     "min_flush_gap_ms": 7, "silence_ms": None},
                   "flush_on_close": False, "strategy": "client_commit", "vad": None}


def test_legacy_bytes_mode(host):
    # item 53
    seg = roundtrip(host, {"enabled": True, "mode": "bytes", "max_buffer_bytes": 123,
                           "min_flush_gap_ms": 7, "flush_on_close": False})
    assert seg["strategy"] == "client_commit"
    assert seg["client_commit"] == {"flush_interval_ms": None, "max_buffer_bytes": 123,
                                    "min_flush_gap_ms": 7, "silence_ms": None}


@pytest.mark.parametrize("payload", [b'{"strategy":"nope"}', b'{"strategy":"server_vad","vad":5}',
                                     b"[]", b"5", b'"manual"', b"null", b"{", b"", None,
                                     b'{"strategy":"client_commit","client_commit":[]}',
                                     b'{"strategy":"Manual"}', b'{"strategy":""}'])
def test_rejected_payloads_change_nothing(host, payload):
    # item 54
    fd = host.rtasr_create()
    assert set_seg(host, fd, {"strategy": "manual", "flush_on_close": True}) == 0
    before = get_seg(host, fd)
    assert set_seg(host, fd, payload) == EINVAL
    assert get_seg(host, fd) == before


def test_off_reads_back_as_manual(host):
    # item 54
    assert roundtrip(host, {"strategy": "off"}) == {
        "client_commit": None, "flush_on_close": False, "strategy": "manual", "vad": None}


def test_legacy_silence_mode(host):
    # item 55
    seg = roundtrip(host, {"enabled": True, "mode": "silence", "flush_interval_ms": 700})
    assert seg["strategy"] == "server_vad"
    assert seg["vad"] == {"prefix_padding_ms": 300, "silence_ms": 700, "threshold": 0.5}
    assert seg["client_commit"] is None


# -- the rest of docs/abi.md §6.2 --------------------------------------------------------------------------

@pytest.mark.parametrize("payload, expected", [
    ({"strategy": "server_vad"}, {"strategy": "server_vad", "vad": None, "client_commit": None}),
    ({"strategy": "server_vad", "vad": {}}, {"strategy": "server_vad", "vad": {"silence_ms": 500}}),
    ({"strategy": "server_vad", "vad": {"silence_ms": 321, "threshold": 0.7, "prefix_padding_ms": 0}},
     {"vad": {"silence_ms": 321, "threshold": 0.7, "prefix_padding_ms": 0}}),
    ({"strategy": "server_vad", "vad": {"silence_ms": -1, "threshold": "x", "prefix_padding_ms": 1.5}},
     {"vad": {"silence_ms": 500}}),
    ({"strategy": "server_vad", "vad": {"threshold": 1}}, {"vad": {"silence_ms": 500, "threshold": 1}}),
    ({"strategy": "manual", "vad": {"silence_ms": 9}, "client_commit": {}},
     {"strategy": "manual", "vad": {"silence_ms": 9},
      "client_commit": {"flush_interval_ms": None, "max_buffer_bytes": None, "min_flush_gap_ms": 500,
                        "silence_ms": None}}),
    ({"strategy": "client_commit"}, {"strategy": "client_commit", "client_commit": None, "vad": None}),
    ({"strategy": "client_commit", "client_commit": {"mode": "bytes", "flush_interval_ms": 250,
                                                     "silence_ms": 400, "min_flush_gap_ms": True}},
     {"client_commit": {"flush_interval_ms": 250, "max_buffer_bytes": None, "min_flush_gap_ms": 500,
                        "silence_ms": 400}}),
    ({"strategy": "manual", "flush_on_close": True}, {"flush_on_close": True}),
    ({"strategy": "manual", "flush_on_close": 1}, {"flush_on_close": False}),
    ({"strategy": 5, "enabled": True, "mode": "time", "flush_interval_ms": 100, "max_buffer_bytes": 9,
      "silence_ms": 3}, {"strategy": "client_commit",
                         "client_commit": {"flush_interval_ms": 100, "max_buffer_bytes": None,
                                           "min_flush_gap_ms": 500, "silence_ms": None}}),
    ({"enabled": True, "mode": "hybrid", "flush_interval_ms": 100, "max_buffer_bytes": 9, "silence_ms": 3,
      "min_flush_gap_ms": 0}, {"client_commit": {"flush_interval_ms": 100, "max_buffer_bytes": 9,
                                                 "min_flush_gap_ms": 0, "silence_ms": 3}}),
    ({"enabled": True, "mode": "whatever", "silence_ms": 3},
     {"strategy": "client_commit", "client_commit": {"flush_interval_ms": None, "max_buffer_bytes": None,
                                                     "min_flush_gap_ms": 500, "silence_ms": 3}}),
    ({"enabled": True, "mode": "silence", "silence_ms": 250, "flush_interval_ms": 700},
     {"vad": {"prefix_padding_ms": 300, "silence_ms": 250, "threshold": 0.5}}),
    ({"enabled": True, "mode": "silence"}, {"vad": {"prefix_padding_ms": 300, "silence_ms": 500, "threshold": 0.5}}),
    ({"enabled": True, "mode": "off"}, {"strategy": "manual", "vad": None, "client_commit": None}),
    ({"enabled": False, "mode": "bytes"}, {"strategy": "manual", "vad": None, "client_commit": None}),
    ({"enabled": "yes", "mode": "bytes"}, {"strategy": "manual"}),
    ({"enabled": True}, {"strategy": "manual"}),
    ({"enabled": True, "mode": 5}, {"strategy": "manual"}),
    ({}, {"strategy": "manual", "vad": None, "client_commit": None, "flush_on_close": False}),
    ({"vad": 5, "client_commit": 5}, {"strategy": "manual"}),
])
def test_accepted_shapes(host, payload, expected):
    seg = roundtrip(host, payload)
    assert set(seg) == {"client_commit", "flush_on_close", "strategy", "vad"}
    for key, value in expected.items():
        assert seg[key] == value, key


def test_set_autoflush_resets_the_commit_clock(host):
    fd = host.rtasr_create()
    entry = host.table.get(fd)
    host.rtasr_write(fd, bytes(100))
    host.rtasr_ctl(fd, RtasrCtl.FLUSH)
    host.rtasr_write(fd, bytes(100))
    assert entry.commit_clock.pending_flush and entry.commit_clock.buffered_bytes == 100
    assert set_seg(host, fd, {"strategy": "manual"}) == 0
    assert not entry.commit_clock.pending_flush and entry.commit_clock.buffered_bytes == 0


def test_segmentation_is_accepted_in_error_and_refused_when_closed(host):
    fd = host.rtasr_create()
    host.table.get(fd).fail("boom")
    assert set_seg(host, fd, {"strategy": "manual"}) == 0
    assert get_seg(host, fd)["strategy"] == "manual"
    host.rtasr_close(fd)
    assert set_seg(host, fd, {"strategy": "manual"}) == -Errno.EBADF
    assert host.rtasr_ctl(fd, RtasrCtl.GET_AUTOFLUSH) == -Errno.EBADF


def test_output_is_compact(host):
    fd = host.rtasr_create()
    set_seg(host, fd, {"strategy": "client_commit", "client_commit": {"max_buffer_bytes": 5}})
    assert b" " not in host.rtasr_ctl(fd, RtasrCtl.GET_AUTOFLUSH)


# -- turn_detection mapping (docs/abi.md §6.6) -----------------------------------------------------------

def test_turn_detection_mapping():
    assert turn_detection(Segmentation()) == {"type": "server_vad", "threshold": 0.5,
                                              "prefix_padding_ms": 300, "silence_duration_ms": 500}
    assert turn_detection(Segmentation.parse({"strategy": "server_vad", "vad": {"silence_ms": 321}})) == {
        "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 321}
    assert turn_detection(Segmentation.parse({"strategy": "server_vad"}))["silence_duration_ms"] == 500
    assert turn_detection(Segmentation.parse({"strategy": "manual"})) is None
    assert turn_detection(Segmentation.parse({"strategy": "client_commit", "vad": {}})) is None


# -- host-side commit timing (docs/abi.md §6.5) ------------------------------------------------------------

def test_commit_after_max_buffer_bytes_before_connect(host):
    # item 44
    fd = host.rtasr_create()
    assert set_seg(host, fd, {"strategy": "client_commit",
                              "client_commit": {"max_buffer_bytes": 1000, "min_flush_gap_ms": 0}}) == 0
    assert host.rtasr_write(fd, bytes(999)) == 999
    assert json.loads(host.rtasr_ctl(fd, RtasrCtl.GET_STATUS))["send_queue_bytes"] == 999
    assert host.rtasr_write(fd, bytes(1)) == 1
    assert json.loads(host.rtasr_ctl(fd, RtasrCtl.GET_STATUS))["send_queue_bytes"] == 1036
    items = [(i.audio, i.data) for i in host.table.get(fd).send_queue]
    assert items[-1] == (False, b'{"type":"input_audio_buffer.commit"}')
    # pending: the next 1000 bytes do not commit until a control text is sent
    host.rtasr_write(fd, bytes(1000))
    assert json.loads(host.rtasr_ctl(fd, RtasrCtl.GET_STATUS))["send_queue_bytes"] == 2036


def test_commit_respects_min_gap_and_skips_when_full():
    from spear_lab.abi.fdtable import FdTable
    from spear_lab.fds.rtasr import RtasrFd

    now = [100.0]
    table = FdTable()
    fd = table.alloc(RtasrFd, clock=lambda: now[0])
    fd.segmentation = Segmentation.parse({"strategy": "client_commit",
                                          "client_commit": {"max_buffer_bytes": 10, "min_flush_gap_ms": 200}})
    with table.lock:
        assert fd.write(bytes(10)) == 10
    assert fd.commits == 0  # gap not reached since creation
    now[0] += 0.199
    assert not fd.autoflush_tick()
    now[0] += 0.002
    assert fd.autoflush_tick() and fd.commits == 1
    # commit skipped silently when it does not fit; the clock still resets
    fd.control_sent()
    fd.max_send_queue_bytes = fd.send_queue_bytes + 10
    with table.lock:
        assert fd.write(bytes(10)) == 10
    now[0] += 1
    assert fd.autoflush_tick()
    assert fd.commits == 1 and fd.commit_clock.pending_flush


def test_commit_clock_rules():
    cc = ClientCommit(flush_interval_ms=1000, silence_ms=300, min_flush_gap_ms=100)
    seg = Segmentation("client_commit", None, cc)
    clock = CommitClock(0.0, 0.0)
    assert not clock.due(seg, 5.0)  # nothing buffered
    clock.audio(480, 0.5, silent=False)
    assert not clock.due(seg, 0.6)  # voice 100 ms ago
    assert clock.due(seg, 0.8)  # 300 ms of wall-clock silence after voice
    clock.reset(0.8, pending=True)
    clock.audio(480, 0.9, silent=False)
    assert not clock.due(seg, 5.0)  # pending flush blocks everything
    clock.pending_flush = False
    assert clock.due(seg, 1.9)
    # silence measured in audio written (fast replay): 300 ms = 14400 bytes
    clock.reset(2.0)
    clock.audio(480, 2.01, silent=False)
    clock.audio(14400, 2.02, silent=True)
    assert clock.due(seg, 2.12)
    # other strategies never commit
    assert not clock.due(Segmentation(), 100.0)
    assert not clock.due(Segmentation("client_commit", None, None), 100.0)


def test_interval_trigger_without_voice():
    seg = Segmentation("client_commit", None, ClientCommit(flush_interval_ms=200, min_flush_gap_ms=0))
    clock = CommitClock(0.0, 0.0)
    clock.audio(100, 0.05, silent=True)
    assert not clock.due(seg, 0.19)
    assert clock.due(seg, 0.2)


def test_is_silent():
    import numpy as np

    assert is_silent(b"")
    assert is_silent(b"\x01")
    assert is_silent(np.full(100, 499, "<i2").tobytes())
    assert not is_silent(np.full(100, -500, "<i2").tobytes())
    assert not is_silent(np.array([0, 0, -32768], "<i2").tobytes())


def test_dataclass_json_shapes():
    assert Vad(100).to_json() == {"silence_ms": 100}
    assert Vad(100, 0.2, 50).to_json() == {"silence_ms": 100, "threshold": 0.2, "prefix_padding_ms": 50}
    assert Segmentation.parse([]) is None and Segmentation.parse(None) is None
