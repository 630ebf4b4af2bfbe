"""Every view renders for a real finished run: figures drawn, widgets in the expected state.

The run: the realtime_asr guest streams a speech file through the realistic stub, and the
backpressure guest fills a 4-frame send queue (so there are -EAGAIN writes and EPOLLOUT
toggles); both in one Session, one Trace.
"""

from __future__ import annotations

import asyncio
import types

import pytest
from IPython.core.formatters import DisplayFormatter
from matplotlib.figure import Figure

import spear_lab
from spear_lab.abi.jsonfmt import dumpb
from spear_lab.session import Session
from spear_lab.testaudio import make_speech
from spear_lab.trace import Trace
from spear_lab.views import (Dashboard, fd_table_html, FdTableView, HostcallLog, QueueView,
                             Status, TimelineView, TranscriptView, filter_hostcalls,
                             queue_figure, queue_levels, status_html, timeline_figure,
                             timeline_lanes, transcript_html)
from spear_lab.views._refresh import MAX_RATE, Refresher


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("views") / "speech.wav"
    speech = make_speech(["the weather is very nice today", "please call me back"], path, pause_s=0.8)
    s = Session(mic=f"file:{speech.path}")
    asr = s.run("realtime_asr", backend="stub", env={"SPEAR_RTASR_PARAMS": '{"stub_mode":"realistic"}'},
                timeout=60)
    bp = s.run("backpressure", ["--frames", "60"], timeout=60)
    assert asr.exit_code == 0 and bp.exit_code == 0, (asr.stdout, bp.stdout)
    yield s
    s.close()


def test_timeline_figure_of_a_finished_run(run):
    tr = run.trace
    fig = timeline_figure(tr)
    assert isinstance(fig, Figure)
    labels = [lane.label for lane in fig.lanes]
    assert "realtime_asr: epoll_wait" in labels and "backpressure: epoll_wait" in labels
    # realtime_asr: epoll 1000, mic 1001, rtasr 1002 (creation order of the guest)
    assert "realtime_asr: fd 1001 mic IN" in labels
    assert "realtime_asr: fd 1002 rtasr OUT" in labels and "realtime_asr: fd 1002 rtasr IN" in labels
    assert "backpressure: fd 1001 rtasr OUT" in labels
    waits = {lane.instance: lane for lane in fig.lanes if lane.kind == "wait"}
    for inst, lane in waits.items():
        assert len(lane.returns) == len(tr.hostcalls(inst, "spear_epoll_wait"))
    # the backpressure guest's send queue filled and drained: OUT went off and on many times
    out = next(lane for lane in fig.lanes if lane.label == "backpressure: fd 1001 rtasr OUT")
    assert len(out.spans) > 10
    assert all(a <= b for a, b in out.spans)
    # one guest only, and the step axis
    one = timeline_figure(tr, "backpressure", axis="step")
    assert {lane.instance for lane in one.lanes} == {"backpressure"}
    assert one.axes[0].get_xlabel().startswith("step")
    with pytest.raises(ValueError):
        timeline_figure(tr, axis="bogus")


def test_timeline_window_keeps_bits_set_before_it():
    tr = Trace()
    tr.readiness("g", 1000, 0, 4)  # OUT set at t0, never cleared
    t_after = tr.now() + 5.0
    lanes = timeline_lanes(tr, t_end=t_after, since=t_after - 1.0)
    assert [(lane.label, len(lane.spans)) for lane in lanes] == [("g: fd 1000 OUT", 1)]
    assert lanes[0].spans[0][1] == t_after


def test_queue_figure_and_levels(run):
    tr = run.trace
    fig = queue_figure(tr)
    assert isinstance(fig, Figure)
    keys = set(fig.series)
    assert ("realtime_asr", 1002, "send") in keys and ("realtime_asr", 1002, "recv") in keys
    bp_send = fig.series[("backpressure", 1001, "send")]
    assert max(bp_send["level"]) == 3840 and set(bp_send["cap"]) == {3840}
    levels = {(q.instance, q.fd, q.queue): q for q in queue_levels(tr)}
    eagain = len([r for r in tr.hostcalls("backpressure", "rtasr_write") if r["rc"] == -11])
    assert eagain > 0 and levels[("backpressure", 1001, "send")].drops == eagain
    assert levels[("realtime_asr", 1002, "send")].level == 0  # drained at the end


def test_queue_view_rows(run):
    view = QueueView(run.trace, live=False)
    keys = list(view.rows)
    assert "realtime_asr:1002:send" in keys and "backpressure:1001:recv" in keys
    assert len(view.widget.children) == len(keys)
    bar, text = view.rows["realtime_asr:1002:send"]
    assert bar.value == 0.0 and "/ 1048576 B" in text.value
    _, bp_text = view.rows["backpressure:1001:send"]
    assert "-EAGAIN writes: <b>" in bp_text.value
    view.close()


def test_queue_view_mic_rows_and_full_bars():
    tr = Trace()
    tr.note("g", 1001, "mic_queue", {"queue_bytes": 9600, "max_queue_bytes": 9600, "dropped_frames": 3})
    view = QueueView(tr, live=False)
    bar, text = view.rows["g:1001:mic"]
    assert bar.value == 1.0 and bar.bar_style == "danger"
    assert "dropped frames: <b>3</b>" in text.value
    assert tr.summary()["drops"]["dropped_frames"] == 3


def test_transcript_view(run):
    tr = run.trace
    view = TranscriptView(tr, "realtime_asr", live=False)
    texts = tr.transcript_text("realtime_asr")
    assert len(texts) >= 2 and view.texts == texts
    assert all(t.startswith("<speech ") for t in texts)  # the realistic stub's placeholders
    html = view.widget.value
    # each final text twice: in the running text and in the item table
    assert html.count("<span class='spear-final'>&lt;speech") == 2 * len(texts)
    assert "item_stub_0001" in html
    rows = view.items
    assert all(r["t_committed"] is not None and r["audio_end_ms"] is not None for r in rows)
    # a growing item is shown in grey italics
    tr2 = Trace()
    tr2.note("g", 1, "event", {"event": dumpb({"type": "conversation.item.input_audio_transcription.delta",
                                              "item_id": "i", "delta": "hel"})})
    assert "<i class='spear-partial' style='color:#6f6f6f'>hel…</i>" in transcript_html(tr2)


def test_hostcall_log_filters(run):
    log = HostcallLog(run.trace, live=False, limit=50)
    assert "backpressure" in log.instance.options and "-EAGAIN" in log.result.options
    assert len(log.rows) == 50
    log.instance.value = "backpressure"
    log.name.value = "rtasr_write"
    log.result.value = "-EAGAIN"
    assert log.rows and all(r["errno"] == "-EAGAIN" and r["instance"] == "backpressure"
                            for r in log.rows)
    # -EAGAIN of a non-blocking write is the normal "queue full now": neutral, not red
    assert "-EAGAIN" in log.table.value and "color:#8a6d00" in log.table.value
    assert "color:#c62828" not in log.table.value
    log.result.value = "(errors)"
    assert all(r["rc"] < 0 for r in log.rows)
    log.result.value = "(all)"
    log.name.value = "(all)"
    log.text.value = "no such text anywhere"
    assert log.rows == [] and "no matching" in log.table.value
    # refresh keeps the chosen filters
    log.text.value = ""
    log.refresh()
    assert log.instance.value == "backpressure"
    rows = filter_hostcalls(run.trace, "realtime_asr", "mic_read", "OK", limit=None)
    assert rows == []  # a successful mic_read returns its length, never 0
    log.close()


def test_dashboard_and_live_timeline(run):
    d = Dashboard(run.trace, live=False, window_s=None)
    assert d.refreshes == 0 and d.timeline.renders == 1  # drawn once, by its constructor
    assert d.timeline.widget.value[:4] == b"\x89PNG"
    assert "spear_epoll_wait" in d.summary.value
    for _ in range(10):
        d.refresh()
    assert d.refreshes == 10
    assert d.timeline.renders == 1 + 10 // d._timeline_every  # the PNG is redrawn less often
    d.close()
    tv = TimelineView(run.trace, live=False, window_s=None)
    assert tv.widget.value[:4] == b"\x89PNG" and tv.lanes
    tv.close()


def test_refresher_is_throttled_and_only_follows_changes():
    tr = Trace()

    class Counter:
        n = 0

        def refresh(self):
            self.n += 1

    view = Counter()
    assert Refresher(tr, view, max_rate=1000).interval == pytest.approx(1 / MAX_RATE)
    r = Refresher(tr, view)
    assert r._once() and view.n == 1
    assert r._once() and view.n == 1  # no change, no refresh
    tr.readiness("g", 1, 0, 1)
    assert r._once() and view.n == 2

    async def on_a_loop():
        r2 = Refresher(tr, view, max_rate=10).start()
        assert r2.mode == "loop"
        for _ in range(5):
            tr.readiness("g", 1, 0, 1)
            await asyncio.sleep(0.12)
        r2.stop()
        return r2

    r2 = asyncio.run(on_a_loop())
    assert r2.mode == "stopped" and 1 <= r2.updates <= r2.ticks
    r3 = Refresher(tr, view).start()
    assert r3.mode == "thread"
    r3.stop()
    assert r3.mode == "stopped" and not r3._thread.is_alive()
    # a closed trace (its session ended): one last refresh, then the refresher stops itself
    r4 = Refresher(tr, view)
    tr.readiness("g", 1, 1, 0)
    tr.closed = True
    n = view.n
    assert not r4._once() and view.n == n + 1 and r4.mode == "stopped"


def test_html_reprs(run):
    html = run._repr_html_()
    assert "realtime_asr" in html and "backpressure" in html and "exited 0" in html
    handle = run.handles[0]
    assert "realtime_asr" in handle._repr_html_() and "summary:" in handle._repr_html_()
    shell = types.SimpleNamespace(display_formatter=DisplayFormatter())
    assert spear_lab.register_html_views(shell)  # what importing spear_lab does in IPython
    data, _ = shell.display_formatter.format(run.trace)
    assert "spear_epoll_wait" in data["text/html"] and "<Trace" in data["text/plain"]
    data, _ = shell.display_formatter.format(run.host)
    assert data["text/html"] == fd_table_html(run.host) and "python" in data["text/html"]
    st = run.status()
    assert isinstance(st, Status) and st["io_loop"] == "running"
    assert "<code>io_loop</code>" in st._repr_html_()
    asr = run.rtasr()
    table = FdTableView(run.host)
    assert any(r["kind"] == "RtAsr" and r["status"]["state"] == "Init" for r in table.rows)
    assert "RtAsr" in table._repr_html_()
    assert "state" in status_html(asr.status_dict())
    asr.close()
