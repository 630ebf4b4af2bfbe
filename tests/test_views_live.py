"""Views that survive: display bundles, freezing in place, status lines, readable tables.

Displays are captured in a real IPython ``InteractiveShell`` (its display publisher
swapped for IPython's capturing one), so every ``display`` / ``update_display`` a view
makes is seen with its display id.  Traces come from real Sessions: Python-host calls on
the stub transport, and the realtime_asr guest on the realistic stub.
"""

from __future__ import annotations

import re
import time

import pytest
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

from spear_lab.abi.jsonfmt import dumpb
from spear_lab.session import Session
from spear_lab.testaudio import make_speech
from spear_lab.trace import Trace
from spear_lab.views import Dashboard, HostcallLog, TranscriptView
from spear_lab.views._refresh import Refresher, displayed_views
from spear_lab.views.hostcalls import hostcall_html, is_failure
from spear_lab.views.html import session_html, trace_html
from spear_lab.views.static import WIDGET_MIME, StatusLine, widget_html

DELTA = "conversation.item.input_audio_transcription.delta"
DONE = "conversation.item.input_audio_transcription.completed"


@pytest.fixture
def shell():
    """A real IPython shell whose displays are recorded in ``shell.display_pub.outputs``."""
    sh = InteractiveShell.instance()
    saved = sh.display_pub
    sh.display_pub = CapturingDisplayPublisher()
    yield sh
    sh.display_pub = saved
    InteractiveShell.clear_instance()


def _displays(sh, display_id, update=None):
    return [o for o in sh.display_pub.outputs
            if (o["transient"] or {}).get("display_id") == display_id
            and (update is None or o["update"] == update)]


def _event(tr, obj, instance="g", fd=1002):
    tr.note(instance, fd, "event", {"event": dumpb(obj)})


def test_bundle_has_widget_html_and_text():
    tr = Trace()
    _event(tr, {"type": DELTA, "item_id": "i1", "delta": "hello"})
    view = TranscriptView(tr, live=False)
    b = view._repr_mimebundle_()
    assert set(b) == {WIDGET_MIME, "text/html", "text/plain"}
    assert b[WIDGET_MIME]["model_id"] == view.widget.model_id
    assert "hello" in b["text/html"] and "TranscriptView" in b["text/plain"]
    view.freeze()
    b = view._repr_mimebundle_()
    assert WIDGET_MIME not in b and "hello" in b["text/html"]  # frozen: static only
    assert view.widget.comm is None  # the widget is closed


def test_display_then_freeze_replaces_in_place(shell):
    tr = Trace()
    view = TranscriptView(tr, live=False)
    shell.user_ns["view"] = view
    shell.run_cell("view")  # the last expression: IPython's displayhook → _ipython_display_
    shown = _displays(shell, view.display_id, update=False)
    assert len(shown) == 1
    assert WIDGET_MIME in shown[0]["data"] and "no transcript yet" in shown[0]["data"]["text/html"]
    assert view in displayed_views(tr)
    _event(tr, {"type": DELTA, "item_id": "i1", "delta": "good "})
    _event(tr, {"type": DELTA, "item_id": "i1", "delta": "morning"})
    _event(tr, {"type": DONE, "item_id": "i1", "transcript": "good morning"})
    view.freeze()
    view.freeze()  # idempotent
    updates = _displays(shell, view.display_id, update=True)
    assert len(updates) == 1
    data = updates[0]["data"]
    assert set(data) == {"text/html", "text/plain"}
    assert "<span class='spear-final'>good morning</span>" in data["text/html"]  # refreshed first
    assert view.frozen and view not in displayed_views(tr)


def test_refresher_freezes_a_hand_made_view_once_the_trace_closes(shell):
    tr = Trace()
    view = HostcallLog(tr, live=False)
    view.refresher = Refresher(tr, view)  # ticked by hand below
    shell.user_ns["log_view"] = view
    shell.run_cell("log_view")
    tr.hostcall("g", "rtasr_read", (1002, 4096), -11, 0.0, 0.0001)
    assert view.refresher._once() and not view.frozen
    tr.closed = True
    assert not view.refresher._once()
    assert view.frozen and view.refresher.mode == "stopped"
    (upd,) = _displays(shell, view.display_id, update=True)
    assert "rtasr_read" in upd["data"]["text/html"] and WIDGET_MIME not in upd["data"]


def test_session_close_freezes_registered_and_displayed_views(shell, tmp_path):
    speech = make_speech(["hello there"], tmp_path / "s.wav", pause_s=0.3)
    s = Session(mic=f"file:{speech.path}")
    d = s.dashboard(window_s=None)
    tv = TranscriptView(s.trace)  # made by hand, displayed
    shell.user_ns.update(d=d, tv=tv, h=None, s=s)
    shell.run_cell("d")
    shell.run_cell("tv")
    shell.run_cell("h = s.start('realtime_asr', backend='stub', "
                   "env={'SPEAR_RTASR_PARAMS': '{\"stub_mode\":\"realistic\"}'})\nh")
    h = shell.user_ns["h"]
    (line,) = _displays(shell, h._status_line.display_id, update=False)
    assert "running" in line["data"]["text/html"]
    res = h.wait(60)
    assert res.exit_code == 0, res.stdout
    s.close()
    for view in (d, tv):
        assert view.frozen
        (first,) = _displays(shell, view.display_id, update=False)
        assert WIDGET_MIME in first["data"] and first["data"]["text/html"]
        last = _displays(shell, view.display_id, update=True)[-1]["data"]
        assert WIDGET_MIME not in last and "&lt;speech" in last["text/html"]  # the final transcript
    html = _displays(shell, d.display_id, update=True)[-1]["data"]["text/html"]
    for part in ("queues", "readiness", "transcript", "hostcalls", "summary", "<img src=\"data:image/png"):
        assert part in html
    assert d.queues.frozen and d.timeline.frozen and d.transcript.frozen and d.hostcalls.frozen
    assert d.widget.comm is None and d.transcript.widget.comm is None
    # the status line was re-rendered in place with how the guest ended
    ups = _displays(shell, h._status_line.display_id, update=True)
    assert ups and "exited 0" in ups[-1]["data"]["text/html"] and "running" not in ups[-1]["data"]["text/html"]


def test_status_line_update_from_another_thread_runs_on_its_loop(shell):
    import asyncio
    import threading

    state = {"s": "running"}
    line = StatusLine(lambda: f"<b>{state['s']}</b>", lambda: state["s"])

    async def main():
        line.show()
        state["s"] = "exited 0"
        t = threading.Thread(target=line.update)
        t.start()
        t.join()
        assert not _displays(shell, line.display_id, update=True)  # scheduled, not yet run
        await asyncio.sleep(0.05)

    asyncio.run(main())
    (upd,) = _displays(shell, line.display_id, update=True)
    assert upd["data"]["text/html"] == "<b>exited 0</b>"
    never = StatusLine(lambda: "x", lambda: "x")
    never.update()  # never shown: nothing sent
    assert not _displays(shell, never.display_id)


def test_hostcall_log_colours_and_scroll_box():
    tr = Trace()
    t = tr.now()
    tr.hostcall("g", "rtasr_read", (1002, 4096), -11, t, t + 1e-5)    # nothing to read now
    tr.hostcall("g", "mic_read", (1001, 640), -11, t, t + 1e-5)       # no frame now
    tr.hostcall("g", "rtasr_write", (1002, 3200), -11, t, t + 1e-5)   # send queue full now
    tr.hostcall("g", "rtasr_write", (999, 3200), -9, t, t + 1e-5)     # a real error: -EBADF
    tr.hostcall("g", "rtasr_ctl", (1002, 1, ""), -11, t, t + 1e-5)    # -EAGAIN elsewhere: an error
    rows = tr.hostcalls()
    assert [is_failure(r) for r in rows] == [False, False, False, True, True]
    html = hostcall_html(rows)
    assert "max-height:360px;overflow:auto" in html
    trs = re.findall(r"<tr( style='[^']*')?><td", html)
    assert len(trs) == 5
    body = html[html.index("<tbody>"):]
    red, neutral = "color:#c62828", "color:#8a6d00"
    assert body.count(red) == 2 and body.count(neutral) == 3
    assert body.index("-EBADF") > body.index("rtasr_ctl")  # newest first
    log = HostcallLog(tr, live=False)
    log.result.value = "(failures)"
    assert [r["errno"] for r in log.rows] == ["-EBADF", "-EAGAIN"] and log.rows[1]["name"] == "rtasr_ctl"
    snap = log.snapshot_html()
    assert "filters: result (failures)" in snap and "overflow:auto" in snap
    log.close()


def test_tables_are_padded_and_notes_are_blocks():
    with Session() as s:
        html = session_html(s)
        # each "nothing here" note is its own block, never run together with the next
        assert re.search(r"no guests yet</div>", html) and "no hostcalls yet</div>" in html
        notes = re.findall(r"<div style='[^']*'>([^<]*)</div>", html)
        assert {"no guests yet", "python: no fds", "no hostcalls yet"} <= set(notes)
        asr = s.rtasr(stub_event_interval_ms=20)
        asr.connect()
        time.sleep(0.05)
        summary = trace_html(s.trace)
        asr.close()
    cells = re.findall(r"<td style='([^']*)'>", summary)
    assert cells and all("padding:3px 12px" in c for c in cells)
    numeric = re.findall(r"<td style='[^']*text-align:right[^']*'>([^<]*)</td>", summary)
    assert numeric and all(re.fullmatch(r"[\d,.]+", n) for n in numeric)
    assert "font-size:14px" in summary
    # the errno column of the log never wraps
    log_html = hostcall_html([{"t": 0.0, "instance": "g", "name": "rtasr_write", "args": [1, 2],
                               "rc": -11, "errno": "-EAGAIN", "out": None, "dur": 1e-6}])
    errno_cell = re.findall(r"<td style='([^']*)'>-EAGAIN</td>", log_html)
    assert errno_cell and "white-space:nowrap" in errno_cell[0]


def test_transcript_grows_word_by_word():
    tr = Trace()
    view = TranscriptView(tr, live=False)
    seen = []
    for word in ("the ", "weather ", "is ", "nice"):
        _event(tr, {"type": DELTA, "item_id": "i1", "delta": word})
        view.refresh()
        seen.append(view.partial)
        running = view.widget.value.split("<table", 1)[0]
        assert f"<i class='spear-partial' style='color:#6f6f6f'>{seen[-1]}…</i>" in running
    assert seen == ["the ", "the weather ", "the weather is ", "the weather is nice"]
    _event(tr, {"type": DONE, "item_id": "i1", "transcript": "The weather is nice."})
    _event(tr, {"type": DELTA, "item_id": "i2", "delta": "please"})
    view.refresh()
    running = view.widget.value.split("<table", 1)[0]
    assert "<span class='spear-final'>The weather is nice.</span>" in running
    assert "spear-partial' style='color:#6f6f6f'>please…</i>" in running and view.partial == "please"
    assert view.texts == ["The weather is nice."]
    view.close()


def test_widget_html_covers_every_part():
    import ipywidgets as w

    bar = w.FloatProgress(value=0.25, min=0.0, max=0.5, description="fd 1001 mic", bar_style="danger")
    html = widget_html(w.HBox([bar, w.HTML("4800 B")]))
    assert "width:50.0%" in html and "fd 1001 mic" in html and "#d9534f" in html and "4800 B" in html
    tab = w.Tab(children=[w.HTML("<b>A</b>"), w.Label("b<")])
    tab.set_title(0, "first")
    html = widget_html(w.VBox([tab, w.Image(value=b"\x89PNG..", format="png"), w.Dropdown(options=["x"], description="pick")]))
    assert "first" in html and "<b>A</b>" in html and "b&lt;" in html
    assert "data:image/png;base64," in html and "pick: <code>x</code>" in html
    hidden = w.HTML("secret", layout=w.Layout(display="none"))
    assert widget_html(w.VBox([hidden])) == "<div></div>"


def test_dashboard_freezes_as_a_whole():
    tr = Trace()
    _event(tr, {"type": DONE, "item_id": "i1", "transcript": "done text"})
    d = Dashboard(tr, live=False, window_s=None)
    html = d.snapshot_html()
    assert "done text" in html and "<img" in html
    d.freeze()
    assert d.frozen and all(v.frozen for v in d.views)
    assert "done text" in d._repr_mimebundle_()["text/html"]


def test_live_widget_gives_any_widget_a_picture_and_freezes_with_its_session(shell):
    import ipywidgets as w

    from spear_lab.views import LiveWidget

    slider = w.FloatSlider(value=0.5, description="threshold")
    out = w.Output()
    out.outputs = ({"output_type": "display_data", "data": {"text/html": "<b>shown 0.5</b>",
                                                            "text/plain": "shown"}, "metadata": {}},)
    with Session() as s:
        lw = LiveWidget(w.VBox([slider, out]), trace=s.trace)
        shell.user_ns["lw"] = lw
        shell.run_cell("lw")
        (first,) = _displays(shell, lw.display_id, update=False)
        assert WIDGET_MIME in first["data"]
        assert "threshold: <code>0.5</code>" in first["data"]["text/html"]
        assert "<b>shown 0.5</b>" in first["data"]["text/html"]
        slider.value = 0.7
    (last,) = _displays(shell, lw.display_id, update=True)  # frozen by Session.close
    assert WIDGET_MIME not in last["data"] and "threshold: <code>0.7</code>" in last["data"]["text/html"]
