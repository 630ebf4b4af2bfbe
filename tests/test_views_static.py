"""An executed notebook's widget outputs all carry a static picture (issue 14, "Done when").

A small notebook is generated and executed with nbclient in a real kernel: a Session, a
Dashboard, a TranscriptView, a HostcallLog made by hand, the realtime_asr guest on the
stub transport, ``await`` on its handle, then ``session.close()``.  The stored outputs —
what a saved notebook reopened without widget state, nbviewer or GitHub shows — must:

- every output holding a widget also hold ``text/html`` or ``image/png``;
- after close, the displays of the session's views be static HTML with the final content
  (no widget left to show "model not found");
- the guest's status line show how the guest ended, not "running".
"""

from __future__ import annotations

import json

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from spear_lab.testaudio import make_speech
from spear_lab.views.static import WIDGET_MIME

RICH = ("text/html", "image/png")


def _cells(wav: str) -> list[str]:
    params = json.dumps({"stub_mode": "realistic"})
    return [
        ("from spear_lab import Session\n"
         "from spear_lab.trace import Trace\n"
         "from spear_lab.views import Dashboard, HostcallLog, TranscriptView"),
        f"session = Session(mic={('file:' + wav)!r})",
        "session.dashboard(window_s=None)",
        "TranscriptView(session.trace)",
        (f"handle = session.start('realtime_asr', backend='stub', env={{'SPEAR_RTASR_PARAMS': {params!r}}})\n"
         "handle"),
        "result = await handle\nresult.exit_code",
        "HostcallLog(session.trace, limit=20)",
        "other = Trace()\nTranscriptView(other)  # a trace that never closes: stays live",
        ("from spear_lab.explore.progress import progress\n"
         "with progress(3, 'sweep', kind='widget') as bar:\n    bar.update(3, note='done')"),
        "session.close()",
    ]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nb")
    speech = make_speech(["the weather is very nice today"], tmp / "speech.wav", pause_s=0.5)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in _cells(str(speech.path))]
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp)}})
    client.execute()
    return nb


def _rich_outputs(cell):
    return [o for o in cell.outputs if o.output_type in ("display_data", "execute_result")]


def test_every_widget_output_carries_a_static_picture(executed):
    widget_outputs = 0
    for cell in executed.cells:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, (cell.source, errors)
        for out in _rich_outputs(cell):
            if WIDGET_MIME in out.data:
                widget_outputs += 1
                assert any(m in out.data and out.data[m] for m in RICH), (cell.source, list(out.data))
    assert widget_outputs >= 1  # the never-closing view stays a live widget, with its picture


def test_views_of_the_closed_session_are_static_with_content(executed):
    dash, transcript, handle, result, log, other = (
        _rich_outputs(executed.cells[i]) for i in (2, 3, 4, 5, 6, 7))
    for outs, marks in ((dash, ("spear-dashboard", "queues", "readiness", "&lt;speech",
                                "<img src=\"data:image/png;base64,", "spear_epoll_wait")),
                        (transcript, ("spear-final", "&lt;speech")),
                        (log, ("spear-hostcalls", "overflow:auto"))):
        (out,) = outs
        assert WIDGET_MIME not in out.data, list(out.data)  # frozen in place
        for mark in marks:
            assert mark in out.data["text/html"], mark
    (status,) = handle
    assert "exited 0" in status.data["text/html"] and "running" not in status.data["text/html"]
    assert result[0].data["text/plain"] == "0"
    (live,) = other
    assert WIDGET_MIME in live.data and "no transcript yet" in live.data["text/html"]


def test_a_finished_progress_bar_is_frozen_into_its_picture(executed):
    cell = next(c for c in executed.cells if "progress(3" in c.source)
    (out,) = _rich_outputs(cell)
    assert WIDGET_MIME not in out.data, "a finished bar must not need the widget model"
    assert "3/3 done" in out.data["text/html"]
