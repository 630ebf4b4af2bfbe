"""Typed table notes into a Trace, typed records out, the transcript folder, percentile."""

from __future__ import annotations

import math

import pytest

from spear_lab import Host
from spear_lab.abi import FdKind, RtasrCtl
from spear_lab.abi.jsonfmt import dumpb
from spear_lab.abi.notes import (NOTE_CLASSES, EventReceived, MicQueue, RtasrFailed,
                                 RtasrHungUp, RtasrQueues, VadProbabilities)
from spear_lab.trace import HostcallRecord, QueueRecord, Trace, TranscriptFolder, percentile


def test_notes_are_immutable_and_name_their_fd_kind():
    q = RtasrQueues(1, 2, 3, 4, 5)
    with pytest.raises(AttributeError):
        q.send_queue_bytes = 9  # type: ignore[misc]
    assert q.levels() == {"send_queue_bytes": 1, "max_send_queue_bytes": 2, "recv_queue_bytes": 3,
                          "max_recv_queue_bytes": 4, "dropped_events": 5}
    assert MicQueue.kind is FdKind.MIC and RtasrQueues.kind is FdKind.RTASR
    assert set(NOTE_CLASSES) == {"rtasr_queues", "mic_queue", "event", "error", "hangup", "vad"}


def test_typed_notes_make_the_same_records_as_the_dict_form():
    typed, dicts = Trace(), Trace()
    ev = dumpb({"type": "conversation.item.input_audio_transcription.completed", "item_id": "a",
                "transcript": "hi"})
    typed.note("g", 7, MicQueue(960, 9600, 2))
    typed.note("g", 8, RtasrQueues(0, 10, 5, 20, 1))
    typed.note("g", 8, EventReceived(ev))
    typed.note("g", 8, RtasrFailed("boom"))
    typed.note("g", 8, RtasrHungUp("closed"))
    typed.note("g", 8, VadProbabilities(64, 32, (0.25, 0.75)))
    dicts.note("g", 7, "mic_queue", {"queue_bytes": 960, "max_queue_bytes": 9600, "dropped_frames": 2})
    dicts.note("g", 8, "rtasr_queues", {"send_queue_bytes": 0, "max_send_queue_bytes": 10,
                                        "recv_queue_bytes": 5, "max_recv_queue_bytes": 20,
                                        "dropped_events": 1})
    dicts.note("g", 8, "event", {"event": ev})
    dicts.note("g", 8, "error", {"message": "boom"})
    dicts.note("g", 8, "hangup", {"message": "closed"})
    dicts.note("g", 8, "vad", {"audio_start_ms": 64, "frame_ms": 32, "probabilities": [0.25, 0.75]})

    def strip(rows):  # times differ: the two traces recorded at different instants
        return [{k: v for k, v in r.items() if k != "t" and not k.startswith("t_")} for r in rows]

    assert strip(typed.records()) == strip(dicts.records())
    assert typed.fd_kind("g", 7) == "mic" and typed.fd_kind("g", 8) == "rtasr"
    assert typed.transcript_text() == ["hi"]
    assert [r["audio_ms"] for r in typed.vad()] == [64.0, 96.0]
    s = typed.summary()
    assert s["drops"]["dropped_frames"] == 2 and s["drops"]["dropped_events"] == 1


def test_bad_notes_raise_naming_the_problem():
    tr = Trace()
    with pytest.raises(ValueError, match="unknown trace note 'mic_level'"):
        tr.note("g", 1, "mic_level", {})
    with pytest.raises(TypeError, match="got dict"):
        tr.note("g", 1, {"queue_bytes": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes no data dict"):
        tr.note("g", 1, MicQueue(1, 2, 0), {"x": 1})
    with pytest.raises(ValueError, match="no ring of kind 'transcript'"):
        tr.rows("transcript")


def test_fds_emit_typed_notes_to_table_listeners():
    host = Host()
    try:
        seen = []
        host.table.listeners.append(lambda fd, note: seen.append((fd, note)))
        fd = host.rtasr_create()
        host.rtasr_write(fd, b"\x00" * 960)
        host.table.get(fd).push_event(b'{"type":"x"}')
        assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == 0
        kinds = {type(n) for _, n in seen}
        assert {RtasrQueues, EventReceived} <= kinds and all(f == fd for f, _ in seen)
        last = [n for _, n in seen if isinstance(n, RtasrQueues)][-1]
        assert last.recv_queue_bytes == len(b'{"type":"x"}')
    finally:
        host.shutdown()


def test_rows_are_typed_and_index_like_tuples():
    tr = Trace()
    tr.hostcall("g", "rtasr_write", (1001, 16, 960), 960, tr.start, tr.start + 1e-6)
    tr.note("g", 1001, RtasrQueues(960, 1920, 0, 10, 0))
    (h,) = tr.rows("hostcall")
    assert isinstance(h, HostcallRecord) and h.name == "rtasr_write" and h[2] == "rtasr_write"
    (q,) = tr.rows("queue")
    assert isinstance(q, QueueRecord) and q.levels.send_queue_bytes == 960
    assert tr.queue_levels()[0]["max_send_queue_bytes"] == 1920


def test_folder_anonymous_items_and_unbounded_text():
    f = TranscriptFolder(anonymous=True)
    f.feed(0.1, {"type": "input_audio_buffer.committed"})
    f.feed(0.2, {"type": "input_audio_buffer.committed", "item_id": ""})
    f.feed(0.3, {"type": "conversation.item.input_audio_transcription.delta", "item_id": "a",
                 "delta": "x" * 10_000})
    items = f.transcript()
    assert [i.item_id for i in items] == [None, None, "a"] and len(items[2].text) == 10_000
    bounded = TranscriptFolder(item_text=5)
    assert bounded.feed(0.1, {"type": "input_audio_buffer.committed"}) is None
    bounded.feed(0.3, {"type": "conversation.item.input_audio_transcription.delta", "item_id": "a",
                       "delta": "x" * 10})
    assert bounded.transcript()[0].text == "xxxxx"


def test_percentile_is_linear_and_checks_q():
    assert percentile([750, 1100], 50) == 925.0
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="0..100"):
        percentile([1.0], 101)
