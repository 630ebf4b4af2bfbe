"""The VAD view over a real run: the bundled demo recording streamed by two realtime_asr
guests (two server_vad settings) through the embedded local server (pocketsphinx, to keep
the CPU low), one Session.  The figure's data is checked against the audio itself: the
speech regions are where the recording is not silent (espeak-ng with digital silence
between its sentences)."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.text import Text

from spear_lab.abi.jsonfmt import dumpb
from spear_lab.data import demo_path, demo_speech
from spear_lab.host import HostConfig
from spear_lab.session import Session
from spear_lab.trace import Trace
from spear_lab.views import Figure, VadView, vad_compare_figure, vad_data, vad_figure
from spear_lab.views.vad import load_audio

SETTINGS = {
    "vad_300": ({"strategy": "server_vad", "vad": {"silence_ms": 300}},
                {"SPEAR_RTASR_PARAMS": json.dumps({"include": ["spear.vad.probabilities"]})}),
    "vad_900": ({"strategy": "server_vad", "vad": {"silence_ms": 900, "threshold": 0.7}}, {}),
}


def speech_regions(pcm: np.ndarray, rate: int, level: int = 300, gap_s: float = 0.3):
    """``(start, end)`` seconds where |pcm| exceeds ``level``, joining gaps under ``gap_s``."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > level) / rate
    regions = []
    for t in loud:
        if regions and t - regions[-1][1] < gap_s:
            regions[-1][1] = t
        else:
            regions.append([t, t])
    return [(a, b) for a, b in regions if b - a > 0.3]


@pytest.fixture(scope="module")
def run():
    s = Session(HostConfig(local_server={"engine": "pocketsphinx"}), mic=f"file:{demo_path()}")
    handles = {name: s.start("realtime_asr", backend="local", segmentation=seg, name=name, env=env)
               for name, (seg, env) in SETTINGS.items()}
    live = VadView(s.trace, list(SETTINGS), audio=demo_speech(), live=False)
    results = {name: h.future.result(120) for name, h in handles.items()}
    assert all(r.exit_code == 0 for r in results.values()), {n: r.stdout[-500:] for n, r in results.items()}
    yield s, live
    live.close()
    s.close()


def test_vad_figure_of_a_real_run(run):
    session, _ = run
    pcm, rate = load_audio(demo_path())
    regions = speech_regions(pcm, rate)
    assert len(regions) == 4  # the four sentences of the demo
    fig = vad_figure(session.trace, "vad_300", audio=demo_path())
    assert isinstance(fig, Figure)
    (d,) = fig.data
    # probabilities: every frame, without a gap, at least up to the last speech_stopped (the
    # audio after it may still be in flight when the guest closes), high in speech, low in
    # the pauses
    assert d.has_probabilities and d.frame_s > 0
    assert d.times[0] == 0.0 and np.allclose(np.diff(d.times), d.frame_s)
    assert d.times[-1] + d.frame_s >= d.turns[-1].end - 0.05, (d.times[-1], d.turns[-1].end)
    inside = np.zeros(len(d.times), dtype=bool)
    for a, b in regions:
        inside |= (d.times >= a) & (d.times + d.frame_s <= b)
    assert d.probability[inside].mean() > 0.6 and d.probability[~inside].mean() < 0.3
    # audio time 0: one frame before the first mic_read returned, at the latest
    first = session.trace.hostcalls("vad_300", "mic_read", where=lambda r: r["rc"] > 0)[0]
    assert first["t"] + first["dur"] - 1.0 <= d.offset <= first["t"] + first["dur"] - 0.02 + 1e-9
    # the server's settings, read from its session echo
    assert (d.threshold, d.threshold_from, d.prefix_padding_ms, d.silence_ms) == (0.5, "session", 300, 300)
    # one turn per sentence: speech detected near the sentence start, stopped after its end
    assert len(d.turns) == 4
    for turn, (a, b) in zip(d.turns, regions):
        assert a - 0.15 <= turn.speech <= a + 0.3, (turn, a)
        assert turn.start == pytest.approx(turn.speech - 0.3)
        assert b - 0.2 <= turn.speech_end <= b + 0.3 and turn.end == pytest.approx(turn.speech_end + 0.3)
        # the commit reached the client after speech_stopped's audio was sent (audio time
        # mapped right: never before; how long after depends on the server's start-up, which
        # takes seconds on a loaded machine while the audio waits in the send queue)
        assert turn.end - 0.05 <= turn.commit <= session.trace.now() - d.offset, (turn.end, turn.commit)
        assert turn.completed is not None and turn.completed >= turn.commit
        # the words: all of them, in order, inside the turn's speech
        assert [w for w, _, _ in turn.words] == turn.text.split() and turn.words
        assert all(turn.speech - 1e-9 <= x0 < x1 <= turn.speech_end + 1e-9 for _, x0, x1 in turn.words)
    texts = [t.get_text() for t in fig.findobj(Text)]
    assert sum(len(t.words) for t in d.turns) <= sum(1 for t in texts if t and " " not in t)
    assert any("threshold 0.5" in t and "4 turns" in t for t in texts)
    assert not any("no speech probabilities" in t for t in texts)
    assert fig.to_png()[:4] == b"\x89PNG"


def test_two_settings_side_by_side_and_live(run):
    session, live = run
    fig = vad_compare_figure([(session.trace, "vad_300"), (session.trace, "vad_900")],
                             audio=demo_speech(), labels=["silence 300 ms", "silence 900 ms"])
    a, b = fig.data
    assert len(fig.axes) == 1 + 2 * 2  # waveform, then probability + words per setting
    assert b.threshold == 0.7 and b.silence_ms == 900 and len(b.probability) == len(a.probability)
    assert all(tb.end >= ta.end for ta, tb in zip(a.turns, b.turns))  # longer silence: later stops
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert any(t.startswith("silence 300 ms:") for t in titles) and any("silence 900 ms:" in t for t in titles)
    from test_views_figures import texts_outside

    assert texts_outside(fig) == []
    # the live form: drawn before the run, redrawn after it
    before = live.data
    assert sum(len(x.probability) for x in before) < len(a.probability)  # the start of the run
    live.refresh()
    assert [len(x.probability) for x in live.data] == [len(a.probability), len(b.probability)]
    assert live.renders == 2 and live.widget.value[:4] == b"\x89PNG"
    assert live.snapshot_html().startswith("<img")


def test_a_run_without_probabilities_says_so():
    tr = Trace()
    for ev in ({"type": "input_audio_buffer.speech_started", "audio_start_ms": 200, "item_id": "i1"},
               {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 1400, "item_id": "i1"},
               {"type": "input_audio_buffer.committed", "item_id": "i1"},
               {"type": "conversation.item.input_audio_transcription.completed", "item_id": "i1",
                "transcript": "hello there"}):
        tr.note("g", 1002, "event", {"event": dumpb(ev)})
    fig = vad_figure(tr, "g", audio=np.zeros(24000 * 2, dtype=np.int16), rate=24000)
    (d,) = fig.data
    assert not d.has_probabilities and d.threshold_from == "default"
    assert [w for w, _, _ in d.turns[0].words] == ["hello", "there"]
    titles = " ".join(ax.get_title(loc="left") for ax in fig.axes)
    assert "no speech probabilities" in titles and "(assumed)" in titles
    assert vad_data(tr, "g", threshold=0.4).threshold == 0.4


def test_bad_input_names_the_problem():
    tr = Trace()
    with pytest.raises(ValueError, match="rate"):
        vad_figure(tr, "g", audio=np.zeros(10, dtype=np.int16))
    with pytest.raises(ValueError, match="audio must be"):
        vad_figure(tr, "g", audio=42)
    with pytest.raises(FileNotFoundError):
        vad_figure(tr, "g", audio="/no/such/file.wav")
    with pytest.raises(ValueError, match="probability"):
        vad_data(tr, "g", threshold=3)
    with pytest.raises(ValueError, match="pairs"):
        vad_compare_figure([])
    with pytest.raises(ValueError, match="labels"):
        vad_compare_figure([(tr, "a")], labels=["x", "y"])


def test_explore_plot_vad_draws_sweep_runs_side_by_side():
    from test_explore_sweep import synthetic_results  # the sweep tests' fake replayer

    from spear_lab import explore

    res = synthetic_results()
    run = res.runs[0]
    run.vad = [(ms, 0.9 if 700 <= ms < 2000 else 0.05) for ms in range(0, 3000, 32)]
    run.vad_frame_ms = 32.0
    names = res.config_names[:2]
    fig = explore.plot_vad(res, configs=names)
    a, b = fig.data
    assert (a.instance, b.instance) == tuple(names)
    assert a.has_probabilities and len(a.probability) == len(run.vad) and not b.has_probabilities
    assert a.threshold == 0.4 and a.silence_ms == 200 and a.prefix_padding_ms == 300
    assert [t.text for t in a.turns] == ["one two", "three"]
    assert [w for w, _, _ in a.turns[0].words] == ["one", "two"]
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert sum("no speech probabilities" in t for t in titles) == 1
    from test_views_figures import texts_outside

    assert texts_outside(fig) == []
