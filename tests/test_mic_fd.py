"""MicFd without I/O (docs/abi.md §7): SET_PARAM validation, queue, readiness,
generations and the source hooks, with a fake source opener."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spear_lab.abi.constants import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, Errno, MicCtl
from spear_lab.abi.fdtable import FdTable
from spear_lab.fds.mic import DEFAULT_MAX_QUEUE_BYTES, MicFd, SourceError
from spear_lab.fds.mic_config import MAX_PATTERN_BYTES, MicConfig, parse_set_param

EINVAL, EIO, EAGAIN, ENOSPC = -Errno.EINVAL, -Errno.EIO, -Errno.EAGAIN, -Errno.ENOSPC


class FakeHandle:
    def __init__(self, name: str, generation: int) -> None:
        self.name = name
        self.generation = generation
        self.stopped = False
        self.wakes = 0

    def stop(self) -> None:
        self.stopped = True

    def wake(self) -> None:
        self.wakes += 1


class FakeSources:
    """Opens nothing real; ``fail`` makes every non-stub open raise SourceError."""

    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail
        self.opened: list[FakeHandle] = []

    def open(self, mic, config, generation):
        if self.fail is not None:
            raise SourceError(self.fail)
        kind = config.source if config.source in ("device", "file") else "stub"
        return self._new(kind, generation)

    def open_stub(self, mic, config, generation):
        return self._new("stub", generation)

    def _new(self, name, generation):
        h = FakeHandle(name, generation)
        self.opened.append(h)
        return h

    def list_devices(self):
        return {"default": "mic", "devices": [{"name": "mic"}]}


def new_mic(fail: str | None = None) -> MicFd:
    table = FdTable()
    return table.alloc(MicFd, sources=FakeSources(fail))


def set_param(mic: MicFd, obj) -> int:
    return mic.ctl(MicCtl.SET_PARAM, json.dumps(obj).encode())


def status(mic: MicFd) -> dict:
    return json.loads(mic.ctl(MicCtl.GET_STATUS, None))


# -- SET_PARAM parsing ------------------------------------------------------------------------


def test_defaults_and_frame_size():
    req = parse_set_param(b"{}")
    assert req.config == MicConfig()
    assert req.config.frame_bytes == 960  # 24000 Hz, 20 ms, mono (docs/abi.md §7.2)
    assert req.max_queue_bytes is None and req.pattern is None
    assert MicConfig(sample_rate_hz=1000, frame_ms=10).frame_bytes == 20
    assert MicConfig(sample_rate_hz=44100, frame_ms=10, channels=2).frame_bytes == 441 * 4
    assert MicConfig(sample_rate_hz=22050, frame_ms=15).frame_bytes == 330 * 2  # floor(330.75)


def test_non_object_json_means_defaults():
    assert parse_set_param(b"[1,2]").config == MicConfig()
    assert parse_set_param(b"7").config == MicConfig()


def test_all_fields_parsed():
    pat = base64.b64encode(b"\x01\x00\x02\x00").decode()
    req = parse_set_param(json.dumps({
        "sample_rate_hz": 16000, "channels": 2, "frame_ms": 10, "format": "pcm16",
        "source": "file", "device": {"name": "USB mic"}, "fallback": {"to_stub": False},
        "max_queue_bytes": 4096, "stub_pcm16_base64": f"  {pat}\n", "drop_policy": "newest",
    }).encode())
    assert req.config == MicConfig(16000, 2, 10, "pcm16", "file", "USB mic", False)
    assert req.max_queue_bytes == 4096
    assert req.pattern == b"\x01\x00\x02\x00"
    assert parse_set_param(b'{"device":{"name":3}}').config.device == 3


MALFORMED = [
    b"",  # not JSON
    b"{",
    b'{"frame_ms":0}',  # docs/abi.md §12
    b'{"channels":0}',
    b'{"channels":9}',
    b'{"sample_rate_hz":0}',
    b'{"sample_rate_hz":49,"frame_ms":20}',  # floor(49*20/1000) = 0 samples
    b'{"format":"f32"}',
    b'{"format":"PCM16"}',
    b'{"sample_rate_hz":"24000"}',  # wrong types
    b'{"channels":true}',
    b'{"frame_ms":20.0}',
    b'{"source":5}',
    b'{"device":"mic"}',
    b'{"device":{"name":true}}',
    b'{"fallback":{"to_stub":"no"}}',
    b'{"max_queue_bytes":-1}',
    b'{"stub_pcm16_base64":"!!!"}',  # docs/abi.md §7.1: not base64
    b'{"stub_pcm16_base64":"AQA"}',  # bad padding
    b'{"stub_pcm16_base64":7}',
    b'{"frame_ms":10001}',
    b'{"sample_rate_hz":768000,"frame_ms":10000,"channels":8}',  # frame above 4 MiB
]


@pytest.mark.parametrize("payload", MALFORMED)
def test_malformed_requests_rejected(payload):
    with pytest.raises(ValueError):
        parse_set_param(payload)
    mic = new_mic()
    assert mic.ctl(MicCtl.SET_PARAM, payload) == EINVAL


def test_pattern_size_limit():
    ok = base64.b64encode(bytes(MAX_PATTERN_BYTES)).decode()
    assert len(parse_set_param(json.dumps({"stub_pcm16_base64": ok}).encode()).pattern) == MAX_PATTERN_BYTES
    big = base64.b64encode(bytes(MAX_PATTERN_BYTES + 1)).decode()
    mic = new_mic()
    assert set_param(mic, {"stub_pcm16_base64": big}) == EINVAL  # item 61


# -- docs/abi.md §12: a bad request changes nothing (property) ---------------------------------------------

_wrong_type = st.one_of(
    st.text(max_size=5), st.floats(allow_nan=False), st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


def _bad_int(lo: int, hi: int) -> st.SearchStrategy:
    return st.one_of(st.integers(max_value=lo - 1), st.integers(min_value=hi + 1), _wrong_type)


def _field(name: str, *values: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(st.just(name), st.one_of(*values))


_BAD_FIELDS = st.one_of(
    _field("sample_rate_hz", _bad_int(1, 768000)),
    _field("channels", _bad_int(1, 8)),
    _field("frame_ms", _bad_int(1, 10000)),
    _field("format", st.text(max_size=8).filter(lambda s: s != "pcm16"), st.integers()),
    _field("source", st.integers(), st.booleans(), st.lists(st.text(), max_size=1)),
    _field("device", st.integers(), st.text(max_size=3), st.fixed_dictionaries(
        {"name": st.one_of(st.booleans(), st.floats(), st.lists(st.integers(), max_size=1))})),
    _field("fallback", st.integers(), st.fixed_dictionaries(
        {"to_stub": st.one_of(st.integers(), st.text(max_size=3))})),
    _field("max_queue_bytes", st.integers(max_value=-1), st.text(max_size=3), st.floats()),
    _field("stub_pcm16_base64", st.integers(),
           st.text(alphabet="!@#$%^&*()", min_size=1, max_size=8),
           st.sampled_from(["A", "AQA", "AQ==A", "====", "AQAC AwA=x"])),
)


@st.composite
def malformed_requests(draw):
    good = draw(st.fixed_dictionaries({}, optional={
        "sample_rate_hz": st.sampled_from([8000, 16000, 24000, 48000]),
        "channels": st.integers(1, 8),
        "frame_ms": st.integers(10, 40),
        "source": st.sampled_from(["device", "stub", "file", "other"]),
        "stub_pcm16_base64": st.just("AQACAAMABAA="),
        "max_queue_bytes": st.integers(0, 10000),
    }))
    bad = draw(st.lists(_BAD_FIELDS, min_size=1, max_size=3))
    for key, value in bad:
        good[key] = value
    if draw(st.booleans()) and "frame_ms" not in dict(bad) and "sample_rate_hz" not in dict(bad):
        # Also: a config whose frame would be empty.
        good["sample_rate_hz"], good["frame_ms"] = draw(st.sampled_from([(1, 20), (10, 99), (49, 20)]))
    return good


@settings(max_examples=300, deadline=None)
@given(request=malformed_requests())
def test_bad_request_leaves_previous_configuration_running(request):
    mic = new_mic()
    assert set_param(mic, {"source": "stub", "sample_rate_hz": 1000, "frame_ms": 10,
                           "stub_pcm16_base64": "AQACAAMABAA=", "max_queue_bytes": 100}) == 0
    assert mic.push_frames(mic.generation, [mic.stub_frame()])
    handle = mic.source
    before = (status(mic), mic.pattern, mic.pattern_offset, mic.mask, list(mic.queue))

    assert mic.ctl(MicCtl.SET_PARAM, json.dumps(request).encode()) == EINVAL

    assert (status(mic), mic.pattern, mic.pattern_offset, mic.mask, list(mic.queue)) == before
    assert mic.source is handle and not handle.stopped
    assert len(mic.sources.opened) == 1
    assert mic.push_frames(handle.generation, [b"\0" * 20])  # the old producer is still current


def test_refusal_records_the_broken_rule():
    """A refused SET_PARAM records why (``last_refusal``, for wrappers); an accepted one clears it."""
    mic = new_mic()
    assert mic.last_refusal is None
    assert set_param(mic, {"channels": 9}) == EINVAL
    assert mic.last_refusal == "channels must be in 1..8, got 9"
    assert "last_refusal" not in status(mic)  # not part of GET_STATUS
    assert set_param(mic, {"source": "stub"}) == 0
    assert mic.last_refusal is None


def test_config_names_stay_importable_from_the_fd_module():
    from spear_lab.fds import mic, mic_config

    assert mic.MicConfig is mic_config.MicConfig
    assert mic.parse_set_param is mic_config.parse_set_param


# -- SET_PARAM effects ---------------------------------------------------------------------------


def test_fresh_fd_status_and_read():
    mic = new_mic()
    assert mic.read(lambda p: len(p)) == EAGAIN  # item 58
    assert status(mic) == {"config": None, "dropped_frames": 0, "generation": 0, "last_error": None,
                           "max_queue_bytes": DEFAULT_MAX_QUEUE_BYTES, "queue_bytes": 0,
                           "running": False, "source": None}
    assert mic.mask == 0


def test_status_is_compact_and_sorted():
    mic = new_mic()
    set_param(mic, {"source": "stub"})
    raw = mic.ctl(MicCtl.GET_STATUS, None)
    assert raw == (b'{"config":{"channels":1,"format":"pcm16","frame_ms":20,"sample_rate_hz":24000},'
                   b'"dropped_frames":0,"generation":1,"last_error":null,"max_queue_bytes":524288,'
                   b'"queue_bytes":0,"running":true,"source":"stub"}')


def test_set_param_restarts_and_resets():
    mic = new_mic()
    assert set_param(mic, {"source": "stub", "max_queue_bytes": 2000}) == 0
    first = mic.source
    mic.push_frames(1, [b"x" * 960] * 3)
    assert mic.dropped_frames == 1 and mic.queue_bytes == 1920
    mic.source_error(1, "boom")
    assert mic.mask == EPOLLIN | EPOLLERR
    assert set_param(mic, {"source": "device", "sample_rate_hz": 16000}) == 0
    assert first.stopped and mic.source is not first
    s = status(mic)
    assert s["generation"] == 2 and s["queue_bytes"] == 0 and s["last_error"] is None
    assert s["dropped_frames"] == 1  # not reset
    assert s["max_queue_bytes"] == 2000  # persists
    assert s["source"] == "device" and s["config"]["sample_rate_hz"] == 16000
    assert mic.mask == 0
    assert not mic.push_frames(1, [b"old"])  # a stale producer is told to stop
    assert mic.queue_bytes == 0


def test_device_failure_without_fallback():
    """Item 59 (sans-I/O): -EIO, running false, last_error, EPOLLERR; stub clears it."""
    mic = new_mic(fail="no default input device")
    assert set_param(mic, {"source": "device", "fallback": {"to_stub": False}}) == EIO
    s = status(mic)
    assert s["running"] is False and s["last_error"] == "no default input device"
    assert s["generation"] == 2 and s["source"] is None
    assert mic.mask == EPOLLERR
    mic.sources.fail = None
    assert set_param(mic, {"source": "stub"}) == 0
    assert mic.mask == 0 and status(mic)["last_error"] is None and status(mic)["running"] is True


def test_device_failure_falls_back_to_stub():
    """Item 60 (sans-I/O): the default config falls back to the stub and returns 0."""
    mic = new_mic(fail="no default input device")
    assert set_param(mic, {}) == 0
    s = status(mic)
    assert s["running"] is True and s["source"] == "stub" and s["last_error"] is None
    assert mic.mask == 0


def test_unknown_command():
    mic = new_mic()
    assert mic.ctl(0, None) == EINVAL
    assert mic.ctl(99, None) == EINVAL
    assert json.loads(mic.ctl(MicCtl.LIST_DEVICES, None)) == {"default": "mic", "devices": [{"name": "mic"}]}


# -- stub frames ---------------------------------------------------------------------------------


def test_stub_pattern_offsets():
    """Item 57: 1000 Hz / 10 ms, pattern 01 00 02 00 03 00 04 00 -> 20-byte frames."""
    mic = new_mic()
    assert set_param(mic, {"source": "stub", "sample_rate_hz": 1000, "frame_ms": 10,
                           "stub_pcm16_base64": "AQACAAMABAA="}) == 0
    pat = bytes([1, 0, 2, 0, 3, 0, 4, 0])
    assert mic.stub_tick(mic.generation) and mic.stub_tick(mic.generation)
    got = [mic.queue[0], mic.queue[1]]
    assert got[0] == (pat * 3)[:20]
    assert got[1] == (pat * 4)[4:24]
    # The pattern and its offset persist across SET_PARAM when the field is omitted.
    assert set_param(mic, {"source": "stub", "sample_rate_hz": 1000, "frame_ms": 10}) == 0
    assert mic.stub_frame() == (pat * 6)[8:28]


def test_stub_zeros_without_pattern():
    mic = new_mic()
    set_param(mic, {"source": "stub", "channels": 2, "sample_rate_hz": 8000, "frame_ms": 5})
    assert mic.stub_frame() == bytes(160)


# -- queue, reads and readiness -----------------------------------------------------------------


def test_queue_cap_drop_oldest():
    """Item 62: with max_queue_bytes 2000 and 960-byte frames at most 2 frames stay."""
    mic = new_mic()
    set_param(mic, {"source": "stub", "max_queue_bytes": 2000})
    for i in range(5):
        assert mic.push_frame(mic.generation, bytes([i]) * 960)
        assert mic.queue_bytes <= 2000
    assert [f[0] for f in mic.queue] == [3, 4]
    assert mic.dropped_frames == 3 and mic.frames_pushed == 5


def test_frame_larger_than_cap_is_dropped_at_once():
    mic = new_mic()
    set_param(mic, {"source": "stub", "max_queue_bytes": 100})
    mic.push_frame(mic.generation, bytes(960))
    assert mic.queue_bytes == 0 and mic.dropped_frames == 1 and mic.mask == 0


def test_read_keeps_frame_when_buffer_too_small():
    mic = new_mic()
    set_param(mic, {"source": "stub"})
    mic.push_frames(mic.generation, [b"a" * 960, b"b" * 960])
    assert mic.read(lambda p: ENOSPC) == ENOSPC
    assert mic.queue_bytes == 1920 and mic.mask == EPOLLIN
    got = []
    assert mic.read(lambda p: got.append(p) or len(p)) == 960
    assert got == [b"a" * 960] and mic.source.wakes == 1
    assert mic.read(lambda p: len(p)) == 960
    assert mic.mask == 0 and mic.read(lambda p: len(p)) == EAGAIN
    assert mic.frames_read == 2


def test_never_epollout_and_err_hup():
    mic = new_mic()
    masks = [mic.mask]
    set_param(mic, {"source": "file"})
    masks.append(mic.mask)
    gen = mic.generation
    mic.push_frames(gen, [b"x" * 960])
    masks.append(mic.mask)
    mic.source_error(gen, "stalled")
    masks.append(mic.mask)
    mic.source_ended(gen)
    assert mic.mask == EPOLLIN | EPOLLERR  # HUP only once drained
    assert status(mic)["running"] is False
    mic.read(lambda p: len(p))
    assert mic.mask == EPOLLERR | EPOLLHUP
    masks.append(mic.mask)
    mic.table.close(mic.fd)
    masks.append(mic.effective_mask)
    assert all(not m & EPOLLOUT for m in masks)  # item 63
    assert mic.effective_mask & EPOLLHUP


def test_close_stops_producer():
    mic = new_mic()
    set_param(mic, {"source": "stub"})
    handle, gen = mic.source, mic.generation
    mic.push_frames(gen, [bytes(960)])
    assert mic.table.close(mic.fd) == 0
    assert handle.stopped and mic.running is False and mic.generation == gen + 1
    assert not mic.push_frames(gen, [bytes(960)]) and not mic.stub_tick(gen)
    assert mic.queue_bytes == 0
    assert mic.table.close(mic.fd) == 0  # idempotent


def test_free_frames_for_reader_paced_sources():
    mic = new_mic()
    set_param(mic, {"source": "file", "max_queue_bytes": 2000})
    gen = mic.generation
    assert mic.free_frames(gen, 960) == 2
    mic.push_frame(gen, bytes(960))
    assert mic.free_frames(gen, 960) == 1
    mic.push_frame(gen, bytes(960))
    assert mic.free_frames(gen, 960) == 0
    assert mic.free_frames(gen, 4000) == 0
    mic.queue.clear()
    mic.queue_bytes = 0
    assert mic.free_frames(gen, 4000) == 1  # an empty queue always takes one
    assert mic.free_frames(gen - 1, 960) is None
