"""Segmentation explorer: the sweep machinery (cache, pacing, failures), the plots, and a
small real sweep through file microphone → realtime_asr guest → rtasr → WebSocket →
embedded local server."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot  # noqa: E402  (used by plt.close below; the plots no longer import it)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from spear_lab import explore  # noqa: E402
from spear_lab.explore.events import COMMITTED, COMPLETED, SPEECH_STARTED, SPEECH_STOPPED  # noqa: E402
from spear_lab.explore.replay import RunRecord  # noqa: E402


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEAR_LAB_CACHE", str(tmp_path / "cache"))


TWO_SENTENCES = ["the weather is very nice today", "please call me back when you get home tonight"]


def toy_recording(name="toy"):
    pcm = np.zeros(24000 * 4, np.int16)
    utts = [explore.Utterance("one two", 24000, 48000), explore.Utterance("three", 60000, 72000)]
    return explore.Recording(name, pcm, 24000, utts)


def vad_events(items):
    """Server-VAD events for ``(start_ms, end_ms, text)`` items, 0.1 s apart."""
    out, t = [], 0.0
    for k, (a, b, text) in enumerate(items):
        iid = f"item_{k}"
        out += [(t, {"type": SPEECH_STARTED, "item_id": iid, "audio_start_ms": a}),
                (t + 0.01, {"type": SPEECH_STOPPED, "item_id": iid, "audio_end_ms": b}),
                (t + 0.02, {"type": COMMITTED, "item_id": iid}),
                (t + 0.05, {"type": COMPLETED, "item_id": iid, "transcript": text})]
        t += 0.1
    return out


class FakeReplayer:
    """Stands in for the real path: answers each job with scripted events."""

    def __init__(self, fail=()):
        self.fail = set(fail)
        self.jobs = []
        self.concurrency = 1

    def run(self, jobs, on_done=None, poll=None):
        out = []
        for job in jobs:
            self.jobs.append(job)
            silence = job.config.silence_ms or 0
            items = ([(700, 2000 + silence, "one two"), (2200, 3000 + silence, "three")] if silence < 400
                     else [(700, 3000 + silence, "one two three")])
            bad = job.config.name in self.fail
            rec = RunRecord(job.recording.name, job.recording.digest, job.config.to_dict(),
                            "realtime" if job.realtime else "fast", job.recording.duration_ms,
                            events=vad_events(items), wall_s=0.5, exit_code=1 if bad else 0,
                            summary={"exit": 1 if bad else 0})
            out.append(rec)
            if on_done:
                on_done(job, rec)
        return out

    def close(self):
        pass


def test_sweep_scores_caches_and_never_caches_failures():
    rec = toy_recording()
    cfgs = [explore.server_vad(200), explore.server_vad(800)]
    fake = FakeReplayer(fail={"vad s800 t0.5 p300"})
    res = explore.sweep(rec, cfgs, replayer=fake, progress=False)
    # first the latency calibration (real time), then the two fast replays
    assert [(j.config.name, j.realtime) for j in fake.jobs] == [
        ("calibration", True), ("vad s200 t0.5 p300", False), ("vad s800 t0.5 p300", False)]
    # the calibration's processing (completed 40 ms after speech_stopped) replaces the
    # fast replays' own: latency = (2200 - 2000) + 40 and (3200 - 3000) + 40 ms
    assert res.info["latency_processing_ms"] == pytest.approx(40.0)
    assert res[0]["latencies_ms"] == [pytest.approx(240.0), pytest.approx(240.0)]
    assert [r["segments"] for r in res] == [2, 1]
    assert [r["ok"] for r in res] == [True, False] and res[1]["error"] == "exit 1"
    assert res.info["replayed"] == 2 and res.info["cache_hits"] == 0
    # the failed run is replayed again, the good one comes from the cache
    again = explore.sweep(rec, cfgs, replayer=FakeReplayer(), progress=False)
    assert again.info["cache_hits"] == 1 and again[0]["cached"] and not again[1]["cached"]
    assert again[0]["segments"] == res[0]["segments"] and again[0]["wer"] == res[0]["wer"]
    # refresh replays everything
    fake3 = FakeReplayer()
    explore.sweep(rec, cfgs, replayer=fake3, progress=False, refresh=True)
    assert len(fake3.jobs) == 2
    # a corrected transcript needs no new replay: same audio, same key, new scores
    fixed = explore.Recording("toy", rec.pcm, 24000, [explore.Utterance("one too", 24000, 48000),
                                                      rec.utterances[1]])
    fake5 = FakeReplayer()
    rescored = explore.sweep(fixed, cfgs[:1], replayer=fake5, progress=False)
    assert fake5.jobs == [] and rescored[0]["wer_raw_errors"] == res[0]["wer_raw_errors"] + 1
    # normalised, the number words are digits: "1 too 3" against "123" is 3 errors, not 1
    assert rescored[0]["wer_errors"] == res[0]["wer_errors"] + 3
    # a different recording is a different key
    fake4 = FakeReplayer()
    other = explore.Recording("other", np.ones(24000 * 4, np.int16), 24000, rec.utterances)
    explore.sweep(other, cfgs, replayer=fake4, progress=False)
    assert len(fake4.jobs) == 2


def test_sweep_pacing_auto():
    rec = toy_recording()
    cfgs = [explore.server_vad(300), explore.client_commit(flush_interval_ms=1000),
            explore.client_commit(silence_ms=300, min_flush_gap_ms=0), explore.manual()]
    fake = FakeReplayer()
    explore.sweep(rec, cfgs, replayer=fake, progress=False, cache=False, calibrate=False)
    assert [j.realtime for j in fake.jobs] == [False, True, True, False]
    fake = FakeReplayer()
    explore.sweep(rec, cfgs[:1], replayer=fake, progress=False, cache=False, backend="openai")
    assert [j.realtime for j in fake.jobs] == [True]         # real time: no calibration needed


def test_sweep_rejects_duplicate_recording_names():
    with pytest.raises(ValueError):
        explore.sweep([toy_recording(), toy_recording()], explore.server_vad(), replayer=FakeReplayer(),
                      progress=False)


def synthetic_results():
    rec = toy_recording()
    cfgs = explore.grid(silence_ms=[200, 800], threshold=[0.4, 0.6])
    return explore.sweep(rec, cfgs, replayer=FakeReplayer(), progress=False, cache=False)


def test_plot_lanes_draws_one_lane_per_config():
    res = synthetic_results()
    fig = explore.plot_lanes(res)
    ax_wave, ax_lanes = fig.axes
    assert [t.get_text() for t in ax_lanes.get_yticklabels()] == list(reversed(res.config_names))
    bars = [c for c in ax_lanes.collections if c.__class__.__name__ == "PolyCollection"]
    # two bars (covered audio, speech estimate) per segment: 2+2+1+1 segments
    assert len(bars) == 2 * sum(r["segments"] for r in res)
    matplotlib.pyplot.close(fig)


def test_plot_metric_and_tradeoff():
    res = synthetic_results()
    fig = explore.plot_metric(res, "segments", x="silence_ms", hue="threshold")
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and list(lines[0].get_ydata()) == [2, 1]
    matplotlib.pyplot.close(fig)
    fig = explore.plot_tradeoff(res, x="latency_p95_ms", y="clipped_words", bound=2000)
    want = explore.best(res, minimise="clipped_words", constraint={"latency_p95_ms": ("<=", 2000)})
    assert want is not None and want["config"] in fig.axes[0].get_title()
    matplotlib.pyplot.close(fig)


def test_progress_fallbacks_count():
    from spear_lab.explore.progress import progress

    with progress(3, "x", kind=False) as bar:
        bar.update()
        bar.update(2, note="done")
    assert (bar.n, bar.note) == (3, "done")


# -- the real path ----------------------------------------------------------------------------

def test_real_sweep_two_configs_one_recording():
    rec = explore.generate(TWO_SENTENCES,
                           pauses_ms=[800], lead_ms=400, tail_ms=1800)
    cfgs = [explore.server_vad(200, 0.5, 300), explore.server_vad(1200, 0.5, 300)]
    res = explore.sweep(rec, cfgs, concurrency=2, progress=False)
    short, long_ = res.records
    assert short["ok"] and long_["ok"], [short["error"], long_["error"]]
    # every run saw the server's segmentation events, with audio positions
    for run in res.runs:
        types = [ev["type"] for _, ev in run.events]
        for t in (SPEECH_STARTED, SPEECH_STOPPED, COMMITTED, COMPLETED):
            assert t in types
        starts = [ev for _, ev in run.events if ev["type"] == SPEECH_STARTED]
        assert all(isinstance(ev.get("audio_start_ms"), int) for ev in starts)
    # 200 ms of silence splits at the 800 ms pause; 1200 ms merges both sentences
    assert short["segments"] == 2 and long_["segments"] == 1
    assert short["wer"] < 0.5 and short["boundary_recall"] >= 0.5
    # the segmentation delay (audio time) follows silence_ms
    ref_end = rec.regions_ms()[-1][1]
    delay = {c: res.run_for(c, rec.name).segments()[-1].end_ms - ref_end for c in res.config_names}
    assert 150 <= delay[cfgs[0].name] <= 600
    assert 1150 <= delay[cfgs[1].name] <= 1600
    # a second sweep comes from the cache and scores the same
    again = explore.sweep(rec, cfgs, progress=False)
    assert again.info["cache_hits"] == 2 and again.info["replayed"] == 0
    assert [r["segments"] for r in again] == [2, 1] and again[0]["wer"] == short["wer"]


def test_real_sweep_commit_strategies_end_with_the_final_flush():
    rec = explore.generate(TWO_SENTENCES,
                           pauses_ms=[800], lead_ms=400, tail_ms=600)
    cfgs = [explore.manual(), explore.client_commit(max_buffer_bytes=48000, min_flush_gap_ms=0)]
    res = explore.sweep(rec, cfgs, concurrency=2, progress=False, calibrate=False)
    manual, every_second = res.records
    assert manual["ok"] and every_second["ok"], [manual["error"], every_second["error"]]
    assert (manual["pace"], every_second["pace"]) == ("fast", "realtime")
    # manual: one item, committed by the FLUSH at the end, covering the whole recording
    (seg,) = res.run_for(manual["config"], rec.name).segments()
    assert (seg.start_ms, seg.end_ms) == (0.0, pytest.approx(rec.duration_ms, abs=20))
    assert manual["wer"] < 0.5
    # 48000 bytes = 1000 ms of 24 kHz pcm16: a commit after every second of audio written,
    # then the FLUSH at the end for the rest
    segs = res.run_for(every_second["config"], rec.name).segments()
    assert [s.end_ms for s in segs[:-1]] == [1000.0 * (k + 1) for k in range(len(segs) - 1)]
    assert segs[-1].end_ms == pytest.approx(rec.duration_ms, abs=20)
    assert every_second["segments"] == int(rec.duration_ms // 1000) + 1
