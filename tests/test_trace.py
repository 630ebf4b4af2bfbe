"""The Trace: hostcall records with errno names, readiness, queues, events, transcripts,
ring bounds, thread safety, export and summary."""

from __future__ import annotations

import csv
import io
import json
import threading

import pytest

from spear_lab import Host
from spear_lab.abi import EPOLLHUP, EPOLLIN, EPOLLOUT, EpollOp, RtasrCtl
from spear_lab.abi.jsonfmt import dumpb
from spear_lab.runtime import run_guest
from spear_lab.trace import KINDS, Trace, TraceCaps


def openai_turn(item: str, prev: str | None, words: list[str], start_ms: int, end_ms: int) -> list[bytes]:
    """The GA server_vad event flow of one turn (openai-realtime.md)."""
    evs = [
        {"type": "input_audio_buffer.speech_started", "item_id": item, "audio_start_ms": start_ms},
        {"type": "input_audio_buffer.speech_stopped", "item_id": item, "audio_end_ms": end_ms},
        {"type": "input_audio_buffer.committed", "item_id": item, "previous_item_id": prev},
        {"type": "conversation.item.created", "item": {"id": item}},
    ]
    evs += [{"type": "conversation.item.input_audio_transcription.delta", "item_id": item,
             "delta": w} for w in words]
    evs.append({"type": "conversation.item.input_audio_transcription.completed", "item_id": item,
                "transcript": "".join(words).strip()})
    return [dumpb(e) for e in evs]


def test_hostcall_records_errno_names_and_durations():
    tr = Trace()
    t0 = tr.start + 1.0
    tr.hostcall("g", "rtasr_write", (1001, 16, 960), -11, t0, t0 + 0.000010)
    tr.hostcall("g", "rtasr_write", (1001, 16, 960), 960, t0 + 1, t0 + 1.000020)
    tr.hostcall("g", "spear_epoll_wait", (1000, 8, 4, -1), 0, t0 + 2, t0 + 2.5)
    rows = tr.hostcalls()
    assert [r["errno"] for r in rows] == ["-EAGAIN", "960", "OK"]
    assert rows[0]["t"] == pytest.approx(1.0)
    assert rows[2]["dur"] == pytest.approx(0.5)
    assert rows[0]["args"] == [1001, 16, 960]
    s = tr.summary()
    assert s["hostcalls"]["rtasr_write"]["calls"] == 2
    assert s["hostcalls"]["rtasr_write"]["errors"] == {"-EAGAIN": 1}
    assert s["errno"] == {"-EAGAIN": 1}
    assert s["drops"]["eagain_writes"] == 1
    assert s["hostcalls"]["spear_epoll_wait"]["p50_us"] == pytest.approx(500000, rel=1e-6)
    assert tr.hostcalls(name="spear_epoll_wait", since=2.4)[0]["name"] == "spear_epoll_wait"
    assert tr.hostcalls(last=1)[0]["name"] == "spear_epoll_wait"
    assert [r["rc"] for r in tr.hostcalls(where=lambda r: r["rc"] < 0)] == [-11]


def test_latency_quantiles():
    tr = Trace()
    for i in range(1, 101):  # 1..100 µs
        tr.hostcall("g", "log", (), 0, tr.start, tr.start + i * 1e-6)
    h = tr.summary()["hostcalls"]["log"]
    assert h["p50_us"] == pytest.approx(50.5, abs=1)
    assert h["p95_us"] == pytest.approx(95, abs=1)
    assert h["max_us"] == pytest.approx(100)


def test_rings_are_bounded_and_count_evictions():
    tr = Trace(TraceCaps(hostcalls=10, readiness=5, events=3, transcript_items=2))
    for i in range(25):
        tr.hostcall("g", "log", (i,), 0, tr.start, tr.start)
        tr.readiness("g", 1000, 0, EPOLLIN if i % 2 == 0 else 0)
        tr.note("g", 1001, "event", {"event": dumpb({"type": "x", "i": i})})
    for item in ("a", "b", "c"):
        tr.note("g", 1001, "event", {"event": dumpb(
            {"type": "conversation.item.input_audio_transcription.completed", "item_id": item,
             "transcript": item})})
    assert len(tr.hostcalls()) == 10
    assert [r["args"][0] for r in tr.hostcalls()] == list(range(15, 25))
    assert len(tr.readiness_changes()) == 5
    assert tr.evicted["hostcall"] == 15 and tr.evicted["readiness"] == 20
    assert tr.evicted["event"] == 25 and tr.evicted["transcript"] == 1
    assert [i.item_id for i in tr.transcript()] == ["b", "c"]
    # counters cover the whole run, not only what the ring holds
    assert tr.summary()["hostcalls"]["log"]["calls"] == 25


def test_thread_safe_counts():
    tr = Trace(TraceCaps(hostcalls=1000))
    n, threads = 2000, 8

    def work(k):
        for i in range(n):
            tr.hostcall(f"g{k}", "rtasr_write", (i,), -11 if i % 4 == 0 else 960, tr.start, tr.start)
            tr.readiness(f"g{k}", 1000, 0, EPOLLOUT)
            tr.note(f"g{k}", 1000, "rtasr_queues", {"send_queue_bytes": i, "max_send_queue_bytes": 10})

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    s = tr.summary()
    assert s["hostcalls"]["rtasr_write"]["calls"] == n * threads
    assert s["errno"]["-EAGAIN"] == n * threads // 4
    assert len(tr.hostcalls()) == 1000
    assert tr.evicted["hostcall"] == n * threads - 1000
    assert len(tr.readiness_changes()) + tr.evicted["readiness"] == n * threads
    assert sorted(tr.latest_levels()) == [(f"g{k}", 1000) for k in range(threads)]


def test_openai_transcript_items_by_item_id():
    tr = Trace()
    events = openai_turn("item_1", None, ["hello", " world"], 500, 1700)
    events += openai_turn("item_2", "item_1", ["good", "bye"], 2500, 3100)
    # a late delta of item 1 interleaved after item 2 began: correlated by item_id
    events.insert(len(events) - 3, dumpb({"type": "conversation.item.input_audio_transcription.delta",
                                          "item_id": "item_1", "delta": "!"}))
    for ev in events:
        tr.note("asr", 1001, "event", {"event": ev})
    items = tr.transcript()
    assert [i.item_id for i in items] == ["item_1", "item_2"]
    one, two = items
    assert one.final and one.text == "hello world"
    assert [d for _, d in one.deltas] == ["hello", " world", "!"]
    assert (one.audio_start_ms, one.audio_end_ms) == (500, 1700)
    assert one.t_speech_started <= one.t_speech_stopped <= one.t_committed <= one.t_completed
    assert two.previous_item_id == "item_1" and two.text == "goodbye"
    assert tr.transcript_text() == ["hello world", "goodbye"]
    assert tr.summary()["transcript"] == {"items": 2, "completed": 2}
    assert tr.summary()["events"] == len(events)
    types = [e["type"] for e in tr.events()]
    assert types[0] == "input_audio_buffer.speech_started" and "conversation.item.created" in types


def test_partial_and_failed_items():
    tr = Trace()
    tr.note("a", 7, "event", {"event": dumpb({"type": "conversation.item.input_audio_transcription.delta",
                                             "item_id": "x", "delta": "hal"})})
    tr.note("a", 7, "event", {"event": dumpb({"type": "conversation.item.input_audio_transcription.failed",
                                             "item_id": "y", "error": {"message": "audio_unintelligible"}})})
    x, y = tr.transcript()
    assert not x.final and x.text == "hal"
    assert y.final and y.failed == "audio_unintelligible"
    assert tr.transcript_text(final_only=False) == ["hal", ""]


def test_stub_events_make_one_item_per_completed():
    tr = Trace()
    for seq in range(1, 7):
        kind = "completed" if seq % 3 == 0 else "delta"
        tr.note("g", 1001, "event", {"event": dumpb({"seq": seq, "text": "a" * seq,
                                                     "type": f"transcription.{kind}"})})
    items = tr.transcript()
    assert [i.item_id for i in items] == ["stub-0", "stub-1"]
    assert [len(i.deltas) for i in items] == [2, 2]
    assert items[0].text == "aaa" and items[1].text == "aaaaaa"


def test_error_and_hangup_notes_and_bad_json():
    tr = Trace()
    tr.note("g", 3, "error", {"message": "connect refused"})
    tr.note("g", 3, "hangup", {"message": "websocket closed by peer"})
    tr.note("g", 3, "event", {"event": b"not json"})
    whats = [(e["what"], e["type"]) for e in tr.events()]
    assert whats == [("error", "error"), ("hangup", "hangup"), ("event", "?")]
    assert tr.transcript() == []


def test_attach_records_readiness_and_queues_from_a_host():
    host = Host()
    tr = Trace()
    try:
        tr.attach(host)
        tr.attach(host)  # no-op
        assert host.context.trace is tr
        ep = host.spear_epoll_create()
        fd = host.rtasr_create()
        assert host.spear_epoll_ctl(ep, EpollOp.ADD, fd, EPOLLIN | EPOLLOUT | EPOLLHUP) == 0
        assert host.rtasr_ctl(fd, RtasrCtl.SET_PARAM, b'{"key":"max_send_queue_bytes","value":16}') == 0
        assert host.rtasr_write(fd, bytes(16)) == 16
        assert host.rtasr_close(fd) == 0
        changes = tr.readiness_changes()
        assert [(c["fd"], c["old_names"], c["new_names"]) for c in changes] == [
            (fd, "", "EPOLLOUT"), (fd, "EPOLLOUT", ""), (fd, "", "EPOLLHUP")]
        assert changes[0]["instance"] == "host"
        levels = tr.queue_levels()
        assert levels[-1]["send_queue_bytes"] == 16 and levels[-1]["max_send_queue_bytes"] == 16
        assert len(host.table.observers) == 1 and len(host.table.listeners) == 1
        tr.detach(host)
        assert host.table.observers == [] and host.table.listeners == []
        assert host.context.trace is None
    finally:
        host.shutdown()


def test_recording_off_records_nothing_from_tables_or_guests():
    host = Host()
    tr = Trace(recording=False)
    try:
        tr.attach(host)
        fd = host.rtasr_create()
        host.rtasr_close(fd)
        res = run_guest(host, "epoll_basics", timeout=10)
        assert res.ok
        assert len(tr) == 0 and tr.summary()["hostcalls"] == {}
        tr.recording = True
        res = run_guest(host, "epoll_basics", timeout=10)
        assert res.ok
        names = [r["name"] for r in tr.hostcalls()]
        assert names[:4] == ["spear_epoll_create", "rtasr_create", "spear_epoll_ctl", "spear_epoll_wait"]
        assert tr.hostcalls(name="spear_epoll_wait")[0]["rc"] == 1
    finally:
        host.shutdown()


def test_export_records_csv_jsonl(tmp_path):
    tr = Trace()
    tr.hostcall("g", "rtasr_write", (1001, 16, 960), -11, tr.start, tr.start + 1e-5)
    tr.readiness("g", 1001, EPOLLOUT, 0)
    tr.note("g", 1001, "rtasr_queues", {"send_queue_bytes": 960, "max_send_queue_bytes": 960})
    for ev in openai_turn("i1", None, ["hi"], 0, 100):
        tr.note("g", 1001, "event", {"event": ev})
    tr.log("g", 2, "hello")
    tr.note("g", 1001, "vad", {"audio_start_ms": 0, "frame_ms": 32, "probabilities": [0.5]})
    recs = tr.records()
    kinds = {r["kind"] for r in recs}
    assert kinds == set(KINDS)
    assert [r["t"] for r in recs] == sorted(r["t"] for r in recs)
    text = tr.to_jsonl(tmp_path / "t.jsonl")
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert text.count("\n") == len(lines) == len(recs)
    parsed = [json.loads(line) for line in lines]
    assert parsed[0]["kind"] == "hostcall" and parsed[0]["errno"] == "-EAGAIN"
    csv_text = tr.to_csv(tmp_path / "t.csv", kinds=("hostcall", "readiness"))
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [r["kind"] for r in rows] == ["hostcall", "readiness"]
    assert rows[0]["errno"] == "-EAGAIN" and json.loads(rows[0]["args"]) == [1001, 16, 960]
    assert (tmp_path / "t.csv").read_bytes().decode() == csv_text
    with pytest.raises(ValueError, match="unknown record kinds"):
        tr.records(["nope"])


def test_clear_restarts():
    tr = Trace()
    tr.hostcall("g", "log", (), 0, tr.start, tr.start)
    tr.clear()
    assert len(tr) == 0 and tr.summary()["hostcalls"] == {}
    assert "hostcalls=0" in repr(tr)


def test_vad_records_are_per_frame_and_bounded():
    tr = Trace(TraceCaps(vad=5))
    tr.note("g", 1001, "vad", {"audio_start_ms": 64, "frame_ms": 32, "probabilities": [0.1, 0.9, 0.5]})
    rows = tr.vad()
    assert [(r["audio_ms"], r["probability"], r["frame_ms"]) for r in rows] == \
        [(64.0, 0.1, 32.0), (96.0, 0.9, 32.0), (128.0, 0.5, 32.0)]
    assert all(r["instance"] == "g" and r["fd"] == 1001 for r in rows)
    tr.note("g", 1001, "vad", {"audio_start_ms": 160, "frame_ms": 32, "probabilities": [0.2] * 4})
    assert [r["audio_ms"] for r in tr.vad()] == [128.0, 160.0, 192.0, 224.0, 256.0]
    assert tr.evicted["vad"] == 2
    assert tr.vad(fd=7) == [] and len(tr.records(("vad",))) == 5
