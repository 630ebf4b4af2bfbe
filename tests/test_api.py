"""The notebook wrapper spear_lab.api: Rtasr, Epoll, Mic (errors raise SpearError)."""

from __future__ import annotations

import doctest

import pytest

import spear_lab.api as api
from spear_lab.abi import EpollEvent, Errno, MicCtl, SpearError
from spear_lab.api import Epoll, Mic, MicStatus, Rtasr, RtasrStatus
from spear_lab.fds.mic import SourceError


def test_module_docstring_example_runs():
    result = doctest.testmod(api, verbose=False)
    assert result.attempted >= 8 and result.failed == 0


def test_params_connect_write_read(host):
    with Rtasr(host, stub_event_interval_ms=10, stub_emit_completed_every=2) as asr:
        assert isinstance(asr.fd, int) and asr.fd >= 1000
        st = asr.status()
        assert isinstance(st, RtasrStatus) and st.state == "Configured" and st.transport is None
        asr.connect()
        assert asr.write(bytes(960)) == 960
        first = asr.read(timeout_ms=5000)
        second = asr.read(timeout_ms=5000)
        assert (first["seq"], first["type"]) == (1, "transcription.delta")
        assert (second["seq"], second["type"]) == (2, "transcription.completed")
        st = asr.status()
        assert st.state == "Connected" and st.transport == "stub" and st.peer_closed is False
        assert set(asr.status_dict()) == {f for f in RtasrStatus.__dataclass_fields__}
    assert asr.closed
    with pytest.raises(SpearError) as err:
        asr.status()
    assert err.value.errno == Errno.EBADF and "closed" in str(err.value)


def test_read_returns_none_when_nothing_is_queued(host):
    asr = Rtasr(host)
    assert asr.read() is None
    assert asr.read(timeout_ms=10) is None
    assert asr.read_all() == []
    asr.close()
    asr.close()  # idempotent


def test_read_all_and_raw_events(host):
    asr = Rtasr(host)
    entry = host.table.get(asr.fd)
    for ev in (b'{"type":"a"}', b"[1,2]", b"not json", b'{"type":"b"}'):
        entry.push_event(ev)
    assert asr.read_all() == [{"type": "a"}, {"type": None, "raw": [1, 2]},
                              {"type": None, "raw": "not json"}, {"type": "b"}]


def test_eagain_names_the_errno_and_the_queue(host):
    asr = Rtasr(host, max_send_queue_bytes=1000)
    asr.write(bytes(1000))
    with pytest.raises(SpearError) as err:
        asr.write(bytes(1))
    assert err.value.errno == Errno.EAGAIN
    assert "EAGAIN" in str(err.value) and "send queue full: 1000 of 1000 bytes" in str(err.value)
    with pytest.raises(SpearError) as err:
        asr.flush()
    assert err.value.errno == Errno.EAGAIN


def test_write_all_waits_for_room(host):
    asr = Rtasr(host, max_send_queue_bytes=1920, stub_event_interval_ms=10**9)
    asr.connect()
    assert asr.write_all(bytes(960 * 8), chunk_bytes=960, timeout_s=10) == 960 * 8
    with pytest.raises(TimeoutError):
        Rtasr(host, max_send_queue_bytes=100).write_all(bytes(300), chunk_bytes=100, timeout_s=0.05)


def test_invalid_arguments(host):
    asr = Rtasr(host)
    with pytest.raises(SpearError) as err:
        asr.set_param("", 1)
    assert err.value.errno == Errno.EINVAL and "key" in str(err.value)
    with pytest.raises(SpearError) as err:
        asr.segmentation = {"strategy": "nope"}
    assert err.value.errno == Errno.EINVAL and "SET_AUTOFLUSH" in str(err.value)
    with pytest.raises(SpearError):
        asr.send_event(float("nan"))


def test_segmentation_property(host):
    asr = Rtasr(host)
    assert asr.segmentation["vad"] == {"prefix_padding_ms": 300, "silence_ms": 500, "threshold": 0.5}
    asr.segmentation = {"strategy": "client_commit", "client_commit": {"max_buffer_bytes": 4800}}
    seg = asr.segmentation
    assert seg["strategy"] == "client_commit" and seg["client_commit"]["max_buffer_bytes"] == 4800


def test_flush_clear_send_event_queue_texts(host):
    asr = Rtasr(host)
    asr.flush()
    asr.clear()
    asr.send_event({"type": "session.update", "session": {"b": 1, "a": 2}})
    texts = [item.data for item in host.table.get(asr.fd).send_queue]
    assert texts == [b'{"type":"input_audio_buffer.commit"}', b'{"type":"input_audio_buffer.clear"}',
                     b'{"session":{"a":2,"b":1},"type":"session.update"}']
    assert asr.status().send_queue_bytes == sum(map(len, texts))


def test_error_state_raises_eio_with_last_error(host):
    asr = Rtasr(host)
    host.table.get(asr.fd).fail("upstream refused")
    with pytest.raises(SpearError) as err:
        asr.write(b"x")
    assert err.value.errno == Errno.EIO and "upstream refused" in str(err.value)
    with pytest.raises(SpearError):
        asr.connect()
    assert asr.status().last_error == "upstream refused"


def test_peer_close_raises_epipe(host):
    asr = Rtasr(host)
    host.table.get(asr.fd).hang_up()
    with pytest.raises(SpearError) as err:
        asr.write(b"x")
    assert err.value.errno == Errno.EPIPE


def test_events_iterator(host):
    asr = Rtasr(host, stub_event_interval_ms=10)
    asr.connect()
    got = []
    for event in asr.events(5.0):
        got.append(event["seq"])
        if len(got) == 3:
            break
    assert got == [1, 2, 3]


def test_repr(host):
    asr = Rtasr(host)
    assert "Init" in repr(asr) and f"fd={asr.fd}" in repr(asr)
    asr.close()
    assert "closed" in repr(asr)


# -- Epoll --------------------------------------------------------------------------------------

def test_epoll_wrapper(host):
    a, b = Rtasr(host), Rtasr(host)
    with Epoll(host) as ep:
        ep.add(b, EpollEvent.OUT)
        ep.add(a.fd, EpollEvent.IN | EpollEvent.OUT)
        ready = ep.wait(0)
        assert ready == [(a.fd, EpollEvent.OUT), (b.fd, EpollEvent.OUT)]
        assert isinstance(ready[0][1], EpollEvent)
        ep.modify(b, EpollEvent.IN)
        ep.remove(a)
        assert ep.wait(0) == []
        host.table.get(b.fd).push_event(b"{}")
        assert ep.wait(1000, max_events=1) == [(b.fd, EpollEvent.IN)]
        b.close()
        ep.modify(b, EpollEvent.HUP)
        assert ep.wait(0) == [(b.fd, EpollEvent.HUP)]
        with pytest.raises(SpearError) as err:
            ep.add(ep.fd)
        assert err.value.errno == Errno.EINVAL
        with pytest.raises(SpearError) as err:
            ep.add(4242)
        assert err.value.errno == Errno.EBADF
        with pytest.raises(TypeError):
            ep.add("1000")
    with pytest.raises(SpearError) as err:
        ep.wait(0)
    assert err.value.errno == Errno.EBADF


# -- Mic (thin; the mic fd is tested with its module) -------------------------------------------

def test_mic_wrapper_with_the_stub_source(host):
    with Mic(host) as mic:
        assert mic.read() is None
        st = mic.status()
        assert isinstance(st, MicStatus) and st.running is False and st.config is None
        assert set(mic.status_dict()) == {f for f in MicStatus.__dataclass_fields__}
        mic.configure(source="stub", sample_rate_hz=24000, channels=1, frame_ms=20)
        with Epoll(host) as ep:
            ep.add(mic, EpollEvent.IN)
            assert ep.wait(5000) == [(mic.fd, EpollEvent.IN)]
        frame = mic.read()
        assert isinstance(frame, bytes) and len(frame) == 960
        st = mic.status()
        assert st.running is True and st.source == "stub" and st.config["frame_ms"] == 20
        with pytest.raises(SpearError) as err:
            mic.configure(source="stub", frame_ms=0)
        assert err.value.errno == Errno.EINVAL and "frame_ms must be in 1..10000" in str(err.value)
        assert mic.status().running is True  # a refused SET_PARAM changes nothing
    with pytest.raises(SpearError) as err:
        mic.status()
    assert err.value.errno == Errno.EBADF


def test_mic_constructor_closes_its_fd_when_set_param_is_refused(host):
    before = set(host.table.open_fds())
    with pytest.raises(SpearError) as err:
        Mic(host, source="stub", channels=9)
    assert err.value.errno == Errno.EINVAL
    assert "mic SET_PARAM rejected: channels must be in 1..8, got 9" in str(err.value)
    assert set(host.table.open_fds()) == before  # nothing leaked
    (fd,) = [e.fd for e in host.table if e.fd not in before]
    assert host.table.get(fd).closed
    assert host.mic_ctl(fd, MicCtl.GET_STATUS) == -Errno.EBADF


class _FailingSources:
    """A source opener whose every source fails to start (a missing device)."""

    def open(self, mic, config, generation):
        raise SourceError("no input device named 'nope'")

    def list_devices(self):
        return {"default": None, "devices": []}


def test_mic_error_names_the_source_failure(host):
    """-EIO (the source failed, ``fallback.to_stub`` false) names the fd's ``last_error``."""
    host.context.sources = _FailingSources()
    with Mic(host) as mic:
        with pytest.raises(SpearError) as err:
            mic.configure(source="device", device={"name": "nope"}, fallback={"to_stub": False})
        assert err.value.errno == Errno.EIO
        assert str(err.value).endswith("mic SET_PARAM failed: no input device named 'nope'")
        assert mic.status().last_error == "no input device named 'nope'"
