"""The stub transport (docs/abi.md §5.4): reference mode, the fixes of docs/abi.md §12, realistic mode."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from spear_lab import Host
from spear_lab.abi import EPOLLIN, EpollOp, RtasrCtl
from spear_lab.abi.jsonfmt import dumpb
from spear_lab.fds.segmentation import Segmentation
from spear_lab.transports.stub import (FRAME_BYTES, MAX_PAYLOAD_BYTES, EnergyAsr, StubTransport,
                                       reference_event)

SR = 24000


def set_param(host, fd, key, value):
    assert host.rtasr_ctl(fd, RtasrCtl.SET_PARAM, dumpb({"key": key, "value": value})) == 0


def status(host, fd):
    return json.loads(host.rtasr_ctl(fd, RtasrCtl.GET_STATUS))


def until(predicate, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


def read_events(host, fd, stop, timeout_s=5.0):
    """Read events (blocking on epoll) until ``stop(events)`` or the timeout."""
    ep = host.spear_epoll_create()
    host.spear_epoll_ctl(ep, EpollOp.ADD, fd, EPOLLIN)
    events = []
    end = time.monotonic() + timeout_s
    while not stop(events) and time.monotonic() < end:
        host.spear_epoll_wait(ep, 1, 50)
        while isinstance(ev := host.rtasr_read(fd), bytes):
            events.append(json.loads(ev))
    host.spear_epoll_close(ep)
    return events


def tone(seconds, amp=8000, freq=440.0):
    t = np.arange(int(SR * seconds)) / SR
    return (np.sin(2 * np.pi * freq * t) * amp).astype("<i2").tobytes()


def silence(seconds):
    return bytes(2 * int(SR * seconds))


# -- reference mode -----------------------------------------------------------------------

def test_reference_event_bytes():
    ev = reference_event(1, 256, 20)
    assert ev == b'{"seq":1,"text":"' + b"a" * 176 + b'","type":"transcription.delta"}'
    assert len(ev) == 224
    assert json.loads(reference_event(20, 256, 20))["type"] == "transcription.completed"
    assert json.loads(reference_event(40, 256, 20))["type"] == "transcription.completed"
    assert json.loads(reference_event(20, 256, 0))["type"] == "transcription.delta"
    assert json.loads(reference_event(3, 50, 3)) == {"seq": 3, "text": "", "type": "transcription.completed"}


def test_stub_events_sequence_types_and_payload(host):
    # item 36: delta except seq 20, 40, ... ; 176 letters by default
    fd = host.rtasr_create()
    set_param(host, fd, "stub_event_interval_ms", 0)
    host.rtasr_ctl(fd, RtasrCtl.CONNECT)
    events = read_events(host, fd, lambda evs: len(evs) >= 41)
    assert len(events) >= 41
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for e in events:
        assert set(e) == {"seq", "text", "type"}
        assert e["text"] == "a" * 176
        expected = "transcription.completed" if e["seq"] % 20 == 0 else "transcription.delta"
        assert e["type"] == expected, e["seq"]


def test_stub_params_are_read_every_tick(host):
    fd = host.rtasr_create()
    set_param(host, fd, "stub_event_interval_ms", 0)
    set_param(host, fd, "stub_emit_completed_every", 0)
    host.rtasr_ctl(fd, RtasrCtl.CONNECT)
    first = read_events(host, fd, lambda evs: len(evs) >= 3)
    assert all(e["type"] == "transcription.delta" for e in first)
    set_param(host, fd, "stub_event_payload_bytes", 90)
    set_param(host, fd, "stub_emit_completed_every", 1)
    later = read_events(host, fd, lambda evs: any(e["text"] == "a" * 10 for e in evs))
    changed = [e for e in later if e["text"] == "a" * 10]
    assert changed and all(e["type"] == "transcription.completed" for e in changed)
    # a very long interval stops emission; what is queued drains and nothing new comes
    set_param(host, fd, "stub_event_interval_ms", 10**9)
    transport = host.table.get(fd).transport
    time.sleep(0.05)
    n = transport.seq
    time.sleep(0.1)
    assert transport.seq == n


def test_stub_params_fall_back_to_defaults_and_payload_is_clamped(host):
    fd = host.rtasr_create()
    set_param(host, fd, "stub_event_interval_ms", 0)
    set_param(host, fd, "stub_emit_completed_every", -3)  # not a non-negative int: default 20
    set_param(host, fd, "stub_event_payload_bytes", "big")  # default 256
    set_param(host, fd, "max_recv_queue_bytes", 16 * 1024 * 1024)
    host.rtasr_ctl(fd, RtasrCtl.CONNECT)
    events = read_events(host, fd, lambda evs: len(evs) >= 20)
    assert [e["type"] for e in events[18:20]] == ["transcription.delta", "transcription.completed"]
    assert all(len(e["text"]) == 176 for e in events)
    set_param(host, fd, "stub_event_payload_bytes", 2**40)

    sizes: list[int] = []

    def big_event_read() -> bool:
        out = host.rtasr_read(fd, cap=8 * 1024 * 1024)
        if isinstance(out, bytes) and len(json.loads(out)["text"]) > 176:
            sizes.append(len(json.loads(out)["text"]))
        return bool(sizes)

    assert until(big_event_read)
    assert sizes == [MAX_PAYLOAD_BYTES - 80]


def test_stub_drains_one_item_per_tick_and_discards_it(host):
    fd = host.rtasr_create()
    set_param(host, fd, "stub_event_interval_ms", 10**9)
    for _ in range(5):
        assert host.rtasr_write(fd, bytes(100)) == 100
    host.rtasr_ctl(fd, RtasrCtl.SEND_EVENT, b'{"type":"session.update"}')
    host.rtasr_ctl(fd, RtasrCtl.CONNECT)
    transport = host.table.get(fd).transport
    levels = []

    def drained():
        levels.append(status(host, fd)["send_queue_bytes"])
        return levels[-1] == 0

    assert until(drained)
    assert transport.items == 6
    # one item at a time: every level seen is a suffix sum of the items
    text = len(b'{"type":"session.update"}')
    allowed = {500 + text - 100 * k for k in range(6)} | {0}
    assert set(levels) <= allowed
    assert host.rtasr_read(fd) == -11  # nothing echoed


def test_stub_clears_pending_flush_when_it_discards_a_control_text(host):
    # a fix, docs/abi.md §12: with the reference stub only one autoflush could ever happen
    fd = host.rtasr_create()
    entry = host.table.get(fd)
    seg = {"strategy": "client_commit", "client_commit": {"max_buffer_bytes": 960, "min_flush_gap_ms": 0}}
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, dumpb(seg)) == 0
    set_param(host, fd, "stub_event_interval_ms", 10**9)
    host.rtasr_ctl(fd, RtasrCtl.CONNECT)
    for n in (1, 2, 3):
        assert host.rtasr_write(fd, bytes(960)) == 960
        assert entry.commits == n and entry.commit_clock.pending_flush
        assert until(lambda: not entry.commit_clock.pending_flush and status(host, fd)["send_queue_bytes"] == 0)


def test_client_commit_silence_fires_on_the_timer(host):
    # a fix, docs/abi.md §12: the silence trigger runs on the stub's tick, not only after a write
    fd = host.rtasr_create()
    entry = host.table.get(fd)
    seg = {"strategy": "client_commit", "client_commit": {"silence_ms": 150, "min_flush_gap_ms": 0}}
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, dumpb(seg)) == 0
    set_param(host, fd, "stub_event_interval_ms", 10**9)
    host.rtasr_ctl(fd, RtasrCtl.CONNECT)
    assert host.rtasr_write(fd, tone(0.1)) == 4800  # voice: the write itself cannot commit
    assert until(lambda: entry.commits == 1)
    assert until(lambda: status(host, fd)["send_queue_bytes"] == 0 and not entry.commit_clock.pending_flush)
    time.sleep(0.2)
    assert entry.commits == 1  # no new audio: no second commit


def test_stop_ends_the_task_and_nothing_keeps_running(host):
    fd = host.rtasr_create()
    host.rtasr_ctl(fd, RtasrCtl.CONNECT)
    transport = host.table.get(fd).transport
    assert until(lambda: transport._task is not None)
    assert host.rtasr_close(fd) == 0
    assert transport.finished.wait(5)
    assert transport._task.done()
    loop = host.io.loop
    names = host.io.run(_task_names())
    assert not any(n.startswith("stub-rtasr-") for n in names)
    assert loop.is_running()


async def _task_names():
    return [t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()]


def test_stop_before_the_task_starts(host):
    fd = host.rtasr_create()
    entry = host.table.get(fd)
    transport = StubTransport(entry, host.io)
    with host.table.lock:  # as CONNECT and close would call it
        transport.start()
        transport.stop(flush=True)
    assert transport.finished.wait(5)


def test_closing_many_connected_fds_stops_every_task(host):
    fds = [host.rtasr_create() for _ in range(20)]
    for fd in fds:
        host.rtasr_ctl(fd, RtasrCtl.CONNECT)
    transports = [host.table.get(fd).transport for fd in fds]
    assert host.close() == 20
    assert all(t.finished.wait(5) for t in transports)


def test_shutdown_with_connected_fd_leaves_no_thread():
    import threading

    before = {t.ident for t in threading.enumerate()}
    h = Host()
    fd = h.rtasr_create()
    h.rtasr_ctl(fd, RtasrCtl.CONNECT)
    transport = h.table.get(fd).transport
    h.shutdown()
    assert transport.finished.wait(5)
    assert until(lambda: {t.ident for t in threading.enumerate()} <= before)


# -- realistic mode: the recogniser alone (deterministic) -------------------------------------

def asr_for(seg: dict) -> EnergyAsr:
    asr = EnergyAsr()
    asr.configure(Segmentation.parse(seg))
    return asr


def types(events):
    return [e["type"] for e in events]


def test_energy_asr_server_vad_turn():
    asr = asr_for({"strategy": "server_vad", "vad": {"silence_ms": 500, "prefix_padding_ms": 300}})
    events = asr.audio(silence(0.5)) + asr.audio(tone(1.0)) + asr.audio(silence(1.0))
    assert types(events) == [
        "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ]
    started, stopped, committed, *deltas, completed = events
    assert started["audio_start_ms"] == 500 - 300
    assert stopped["audio_end_ms"] == 1500 + 500
    item = started["item_id"]
    assert stopped["item_id"] == committed["item_id"] == completed["item_id"] == item
    assert committed["previous_item_id"] is None
    assert "".join(d["delta"] for d in deltas) == completed["transcript"] == "<speech 1.00 s>"
    assert completed["usage"] == {"type": "duration", "seconds": 1.8}
    assert len({e["event_id"] for e in events}) == len(events)
    assert asr.position_ms == 2500


def test_energy_asr_is_independent_of_chunking():
    audio = silence(0.3) + tone(0.42) + silence(0.7) + tone(0.2, amp=20000) + silence(0.6)
    whole = asr_for({"strategy": "server_vad"}).audio(audio)
    asr = asr_for({"strategy": "server_vad"})
    pieces = []
    for i in range(0, len(audio), 777):  # odd sizes split frames and samples
        pieces += asr.audio(audio[i:i + 777])
    assert pieces == whole
    completed = [e for e in whole if e["type"].endswith("completed")]
    assert [c["transcript"] for c in completed] == ["<speech 0.42 s>", "<speech 0.20 s>"]
    committed = [e for e in whole if e["type"] == "input_audio_buffer.committed"]
    assert committed[1]["previous_item_id"] == committed[0]["item_id"]
    starts = [e["audio_start_ms"] for e in whole if e["type"].endswith("speech_started")]
    # prefix padding never reaches before the buffer start: the audio start, then the end
    # of the previous turn (speech_stopped at 720 + 500 ms)
    assert starts == [0, 1220]
    assert whole[1]["audio_end_ms"] == 1220


def test_energy_asr_threshold_follows_vad_threshold():
    quiet = tone(0.5, amp=500)  # RMS ~ 0.011 of full scale
    low = asr_for({"strategy": "server_vad", "vad": {"threshold": 0.2}}).audio(quiet + silence(0.6))
    high = asr_for({"strategy": "server_vad", "vad": {"threshold": 0.5}}).audio(quiet + silence(0.6))
    assert "input_audio_buffer.speech_started" in types(low)
    assert high == []
    explicit = EnergyAsr()
    explicit.configure(Segmentation(), rms_threshold=0.001)
    assert "input_audio_buffer.speech_started" in types(explicit.audio(quiet))


def test_energy_asr_manual_commit_and_errors():
    asr = asr_for({"strategy": "manual"})
    assert asr.audio(tone(0.5) + silence(2.0)) == []  # no server VAD
    events = asr.control(b'{"type":"input_audio_buffer.commit"}')
    assert types(events)[0] == "input_audio_buffer.committed"
    assert events[-1]["transcript"] == "<speech 0.50 s>"
    assert events[-1]["usage"]["seconds"] == 2.5
    # nothing buffered since: OpenAI's commit_empty error
    err = asr.commit()
    assert types(err) == ["error"] and err[0]["error"]["code"] == "input_audio_buffer_commit_empty"
    # silence only: committed with an empty transcript and no delta
    events = asr.audio(silence(0.3)) + asr.commit()
    assert types(events) == ["input_audio_buffer.committed",
                             "conversation.item.input_audio_transcription.completed"]
    assert events[-1]["transcript"] == ""
    # clear drops the buffer
    asr.audio(tone(0.3))
    assert types(asr.control(b'{"type":"input_audio_buffer.clear"}')) == ["input_audio_buffer.cleared"]
    assert types(asr.commit()) == ["error"]
    # append sent as a client event is audio too; other texts are ignored
    import base64
    ev = json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(tone(0.2)).decode()})
    assert asr.control(ev.encode()) == [] and asr.position_ms == 2500 + 300 + 300 + 200
    [updated] = asr.control(b'{"type":"session.update","session":{}}')  # acknowledged in order
    assert updated["type"] == "session.updated" and updated["session"]["type"] == "transcription"
    assert asr.control(b"not json") == [] and asr.control(b"[1]") == []


def test_energy_asr_manual_commit_inside_a_server_vad_turn():
    asr = asr_for({"strategy": "server_vad"})
    started = asr.audio(tone(0.3))
    assert types(started) == ["input_audio_buffer.speech_started"]
    events = asr.commit()
    assert events[0]["item_id"] == started[0]["item_id"]
    assert events[-1]["transcript"] == "<speech 0.30 s>"
    assert asr.audio(silence(1.0)) == []  # the turn ended with the commit


def test_energy_asr_frames_are_10ms():
    asr = asr_for({"strategy": "manual"})
    asr.audio(bytes(FRAME_BYTES - 1))
    assert asr.position_ms == 0
    asr.audio(b"\0")
    assert asr.position_ms == 10


# -- realistic mode: through the fd ------------------------------------------------------------

def connect_realistic(host, seg=None, **params):
    fd = host.rtasr_create()
    set_param(host, fd, "stub_mode", "realistic")
    for k, v in params.items():
        set_param(host, fd, k, v)
    if seg is not None:
        assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, dumpb(seg)) == 0
    assert host.rtasr_ctl(fd, RtasrCtl.CONNECT) == 0
    return fd


def write_all(host, fd, audio, chunk=4800):
    for i in range(0, len(audio), chunk):
        while (rc := host.rtasr_write(fd, audio[i:i + chunk])) == -11:
            time.sleep(0.005)
        assert rc == len(audio[i:i + chunk])


def test_realistic_server_vad_tone_then_silence(host):
    fd = connect_realistic(host, {"strategy": "server_vad", "vad": {"silence_ms": 500}})
    write_all(host, fd, tone(1.0) + silence(1.0))
    events = read_events(host, fd, lambda evs: any(e["type"].endswith("completed") for e in evs))
    names = types(events)
    assert names[0] == "session.created"
    assert events[0]["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
    assert names[1:4] == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                          "input_audio_buffer.committed"]
    assert names[-1] == "conversation.item.input_audio_transcription.completed"
    assert set(names[4:-1]) == {"conversation.item.input_audio_transcription.delta"}
    assert events[1]["audio_start_ms"] == 0 and events[2]["audio_end_ms"] == 1500
    assert events[-1]["transcript"] == "<speech 1.00 s>"
    assert status(host, fd)["transport"] == "stub"


def test_realistic_drains_everything_each_tick(host):
    fd = connect_realistic(host, {"strategy": "manual"})
    transport = host.table.get(fd).transport
    audio = tone(2.0)
    for i in range(0, len(audio), 960):  # 100 items
        assert host.rtasr_write(fd, audio[i:i + 960]) == 960
    assert until(lambda: status(host, fd)["send_queue_bytes"] == 0)
    assert transport.items == 100 and transport.asr.position_ms == 2000


def test_realistic_client_commit_on_the_timer(host):
    seg = {"strategy": "client_commit", "client_commit": {"silence_ms": 300, "min_flush_gap_ms": 0}}
    fd = connect_realistic(host, seg)
    entry = host.table.get(fd)
    write_all(host, fd, tone(0.6))
    events = read_events(host, fd, lambda evs: any(e["type"].endswith("completed") for e in evs))
    assert events[0]["session"]["audio"]["input"]["turn_detection"] is None
    assert "input_audio_buffer.speech_started" not in types(events)
    committed = [e for e in events if e["type"] == "input_audio_buffer.committed"]
    assert len(committed) == 1 and events[-1]["transcript"] == "<speech 0.60 s>"
    assert entry.commits == 1 and not entry.commit_clock.pending_flush


def test_realistic_flush_with_manual_segmentation(host):
    fd = connect_realistic(host, {"strategy": "manual"})
    write_all(host, fd, silence(0.2) + tone(0.4, amp=12000) + silence(0.2))
    assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == 0
    events = read_events(host, fd, lambda evs: any(e["type"].endswith("completed") for e in evs))
    assert events[-1]["transcript"] == "<speech 0.40 s>"
    assert events[-1]["usage"]["seconds"] == 0.8


def test_realistic_segmentation_changes_take_effect_live(host):
    fd = connect_realistic(host, {"strategy": "manual"})
    write_all(host, fd, tone(0.3) + silence(0.8))
    assert until(lambda: status(host, fd)["send_queue_bytes"] == 0)
    first = read_events(host, fd, lambda evs: False, timeout_s=0.1)
    assert types(first) == ["session.created"]
    assert host.rtasr_ctl(fd, RtasrCtl.SET_AUTOFLUSH, b'{"strategy":"server_vad","vad":{"silence_ms":200}}') == 0
    write_all(host, fd, tone(0.3) + silence(0.3))
    events = read_events(host, fd, lambda evs: any(e["type"].endswith("completed") for e in evs))
    assert types(events)[0] == "input_audio_buffer.speech_started"
    assert events[0]["audio_start_ms"] == 1100 - 300
    assert events[1]["audio_end_ms"] == 1100 + 300 + 200


@pytest.mark.parametrize("mode", ["reference", "bogus", None])
def test_other_stub_modes_are_the_reference(host, mode):
    fd = host.rtasr_create()
    set_param(host, fd, "stub_mode", mode)
    set_param(host, fd, "stub_event_interval_ms", 0)
    host.rtasr_ctl(fd, RtasrCtl.CONNECT)
    events = read_events(host, fd, lambda evs: len(evs) >= 1)
    assert events[0]["type"] == "transcription.delta"
    assert host.table.get(fd).transport.mode == "reference"
