"""Segmentation explorer, sans-I/O parts: metrics, events -> segments, configs, results.

Every expected value is worked out by hand in the comments.
"""

import json
import math

import pytest

from spear_lab.abi.constants import RtasrCtl
from spear_lab.explore import configs as C
from spear_lab.explore.events import (COMMITTED, COMPLETED, FAILED, SPEECH_STARTED, SPEECH_STOPPED,
                                      Segment, open_speech, parse_events, segments_from_events)
from spear_lab.explore.metrics import (boundary_scores, corpus_wer, match_boundaries, normalise,
                                       normalise_english, overlap_counts, percentile, score,
                                       utterance_latencies, wer_counts, word_coverage, word_spans,
                                       WordSpan)
from spear_lab.explore.replay import EventTap, RunRecord
from spear_lab.explore.results import Results, aggregate, best, satisfies
from spear_lab.fds.segmentation import Segmentation


def seg(start, end, t_closed=None, t_completed=None, text="", onset=None, offset=None):
    return Segment("i", start, end, start if onset is None else onset, end if offset is None else offset,
                   "server_vad", None, t_closed, t_closed, t_completed, text, None)


# -- text ------------------------------------------------------------------------------------

def test_normalise_keeps_apostrophes_and_drops_punctuation():
    assert normalise("Hello,  World! It's   FINE.") == "hello world it's fine"


def test_wer_counts_one_deletion_in_six_words():
    w = wer_counts("The cat sat on the mat.", "the cat sat on mat")
    assert (w["errors"], w["ref_words"], w["hyp_words"], w["deletions"]) == (1, 6, 5, 1)
    assert w["wer"] == pytest.approx(1 / 6)


def test_wer_of_empty_hypothesis_is_one():
    w = wer_counts("a b c", "")
    assert (w["wer"], w["deletions"]) == (1.0, 3)


def test_normalised_wer_forgives_spelling_conventions_and_raw_does_not():
    # Whisper's English normaliser: "Mr." -> "mister", "two" -> "2", "'s" -> " is"
    assert normalise_english("Mr. Smith's 2 cats") == normalise_english("mister smith's two cats") \
        == "mister smith is 2 cats"
    w = wer_counts("Mr. Smith's 2 cats", "mister smith's two cats")
    assert (w["wer"], w["errors"], w["ref_words"]) == (0.0, 0, 5)
    # raw: "mr smith's 2 cats" against "mister smith's two cats": 2 substitutions in 4 words
    assert (w["wer_raw"], w["errors_raw"], w["ref_words_raw"]) == (0.5, 2, 4)


def test_normalised_wer_still_counts_real_errors():
    # British spelling and a filler are forgiven; "bread" -> "bed" is not
    w = wer_counts("The colour of the bread", "um the color of the bed")
    assert (w["errors"], w["substitutions"], w["ref_words"]) == (1, 1, 5)
    assert (w["errors_raw"], w["wer_raw"]) == (3, 3 / 5)     # colour/color, bread/bed, +um


def test_corpus_wer_sums_counts_over_pairs():
    w = corpus_wer(["go forward ten meters", "he was not an ill disposed young man"],
                   ["Go forward 10 meters.", "he was not an old sposed young man"])
    # 0 errors in 4 words; "ill disposed" -> "old sposed": 2 substitutions in 8 words
    assert (w["errors"], w["ref_words"], w["wer"]) == (2, 12, 2 / 12)
    # raw: "ten" -> "10" counts too
    assert (w["errors_raw"], w["ref_words_raw"]) == (3, 12)
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        corpus_wer(["a", "b"], ["a"])


# -- word times ------------------------------------------------------------------------------

def test_word_spans_share_duration_by_characters():
    # "ab" (2 chars) and "abcd" (4 chars) over 0..900 ms: 300 ms and 600 ms
    spans = word_spans([(0.0, 900.0, "ab abcd"), (1000.0, 1100.0, "x")])
    assert spans == [WordSpan("ab", 0.0, 300.0, 0), WordSpan("abcd", 300.0, 900.0, 0),
                     WordSpan("x", 1000.0, 1100.0, 1)]


# -- boundaries ------------------------------------------------------------------------------

def test_match_boundaries_one_to_one_within_tolerance():
    # 0<->10 (10 ms), 1000<->1240 (240 ms); 1300 is 300 ms from 1000: out of tolerance
    assert match_boundaries([0, 1000, 2000], [10, 1240, 1300, 5000], 250) == [(0, 0, 10), (1, 1, 240)]


def test_match_boundaries_closest_pair_wins():
    # 60 is 60 ms from 0 and 40 ms from 100: it goes to 100
    assert match_boundaries([0, 100], [60], 100) == [(1, 0, 40)]


def test_boundary_scores_exact():
    ref = [(0, 1000), (2000, 3000)]
    det = [(100, 900), (1900, 2600), (2700, 3050)]
    # onsets: 0<->100, 2000<->1900 (2700 unmatched); offsets: 1000<->900, 3000<->3050 (2600 unmatched)
    s = boundary_scores(ref, det, 200)
    assert s["boundary_hits"] == 4
    assert s["boundary_precision"] == pytest.approx(4 / 6)
    assert s["boundary_recall"] == 1.0
    assert s["boundary_f1"] == pytest.approx(0.8)
    assert s["onset_error_ms"] == 100.0 and s["offset_error_ms"] == 75.0


def test_boundary_scores_nothing_detected():
    s = boundary_scores([(0, 1000)], [], 250)
    assert s["boundary_hits"] == 0 and s["boundary_recall"] == 0.0
    assert math.isnan(s["boundary_precision"]) and math.isnan(s["boundary_f1"])


# -- clipped words ---------------------------------------------------------------------------

def test_word_coverage_clipped_and_missed():
    words = [WordSpan("a", 0, 100, 0), WordSpan("b", 100, 300, 0), WordSpan("c", 300, 400, 0),
             WordSpan("d", 500, 600, 0)]
    cov = word_coverage(words, [(50, 350)])
    # a sticks out at the start, c at the end, d is outside every segment
    assert (cov["clipped"], cov["missed"]) == ([0, 2], [3])
    assert (cov["clipped_words"], cov["missed_words"]) == (2, 1)
    # 50 ms of tolerance lets a and c count as inside
    assert word_coverage(words, [(50, 350)], tol_ms=50)["clipped_words"] == 0


def test_word_split_between_two_segments_is_clipped():
    words = [WordSpan("long", 0, 400, 0)]
    assert word_coverage(words, [(0, 200), (200, 500)])["clipped_words"] == 1


def test_overlap_counts_split_and_merge():
    ref = [(0, 1000), (1200, 2000), (3000, 4000)]
    segs = [(0, 500), (600, 1500), (1600, 2100)]
    # utterance 0: two segments (split); utterance 1: two (split); utterance 2: none.
    # segment (600, 1500) overlaps utterances 0 and 1 (merged)
    assert overlap_counts(ref, segs) == {"split_utterances": 2, "merged_segments": 1,
                                         "unsegmented_utterances": 1}


# -- latency ---------------------------------------------------------------------------------

def test_latency_is_audio_delay_plus_processing():
    ref = [(0, 1000), (2000, 3000), (5000, 5500)]
    segs = [seg(0, 1500, 1.0, 1.25),            # (1500-1000) + 250 = 750
            seg(1800, 2600, 2.0, 2.1),
            seg(2700, 3600, 3.0, 3.5)]          # covers 3000: (3600-3000) + 500 = 1100
    assert utterance_latencies(ref, segs) == [750.0, 1100.0, None]


def test_latency_of_clipped_end_uses_last_overlapping_segment():
    # nothing covers 1000; the last segment overlapping the utterance ends at 800:
    # (800 - 1000) + 100 = -100 (the transcript came before the speaker finished)
    assert utterance_latencies([(0, 1000)], [seg(0, 800, 1.0, 1.1)]) == [pytest.approx(-100.0)]


def test_latency_none_when_not_completed():
    assert utterance_latencies([(0, 1000)], [seg(0, 1500, 1.0, None)]) == [None]


def test_percentile_linear_interpolation():
    assert percentile([750, 1100], 50) == 925.0
    assert percentile([750, 1100], 95) == pytest.approx(1082.5)
    assert math.isnan(percentile([], 50))


# -- events -> segments ----------------------------------------------------------------------

def ev(t, etype, **fields):
    return (t, {"type": etype, **fields})


def test_server_vad_segments_remove_padding_and_silence():
    events = [
        ev(0.10, SPEECH_STARTED, item_id="a", audio_start_ms=200),
        ev(0.30, SPEECH_STOPPED, item_id="a", audio_end_ms=1800),
        ev(0.31, COMMITTED, item_id="a"),
        ev(0.50, COMPLETED, item_id="a", transcript="hello there"),
        ev(0.60, SPEECH_STARTED, item_id="b", audio_start_ms=2500),
        ev(0.70, SPEECH_STOPPED, item_id="b", audio_end_ms=3600),
        ev(0.71, COMMITTED, item_id="b"),
        ev(0.90, FAILED, item_id="b", error={"message": "audio_unintelligible"}),
    ]
    a, b = segments_from_events(events, prefix_padding_ms=300, silence_ms=500)
    assert (a.start_ms, a.end_ms, a.speech_start_ms, a.speech_end_ms) == (200, 1800, 500, 1300)
    assert (a.t_closed, a.t_completed, a.transcript, a.source) == (0.30, 0.50, "hello there", "server_vad")
    assert a.processing_ms == pytest.approx(200.0)
    assert (b.transcript, b.failed) == ("", "audio_unintelligible")


def test_onset_when_padding_was_cut_by_the_previous_item():
    events = [
        ev(0.1, SPEECH_STARTED, item_id="a", audio_start_ms=0),        # padding cut by the start
        ev(0.2, SPEECH_STOPPED, item_id="a", audio_end_ms=1000),
        ev(0.2, COMMITTED, item_id="a"),
        ev(0.3, SPEECH_STARTED, item_id="b", audio_start_ms=1000),     # cut by item a's end
        ev(0.4, SPEECH_STOPPED, item_id="b", audio_end_ms=2000),
        ev(0.4, COMMITTED, item_id="b"),
    ]
    a, b = segments_from_events(events, prefix_padding_ms=300, silence_ms=200)
    assert (a.speech_start_ms, a.speech_end_ms) == (150, 800)          # onset in [0, 300): 150
    assert (b.speech_start_ms, b.speech_end_ms) == (1150, 1800)


def test_commit_segments_use_event_position_then_host_positions():
    events = [
        ev(1.0, COMMITTED, item_id="x"),
        ev(1.2, COMPLETED, item_id="x", transcript="one"),
        ev(2.0, COMMITTED, item_id="y", audio_end_ms=2500),   # the server's own position wins
        ev(2.2, COMPLETED, item_id="y", transcript="two"),
        ev(3.0, COMMITTED, item_id="z"),                      # no position left: end of audio
        ev(3.1, COMPLETED, item_id="z", transcript=""),
    ]
    x, y, z = segments_from_events(events, commit_positions_ms=[1000.0, 9999.0], audio_ms=4000.0)
    assert [(s.start_ms, s.end_ms, s.source) for s in (x, y, z)] == [
        (0.0, 1000.0, "commit"), (1000.0, 2500.0, "commit"), (2500.0, 4000.0, "commit")]
    assert (x.t_closed, x.t_completed) == (1.0, 1.2)


def test_uncommitted_speech_is_not_a_segment():
    events = [ev(0.1, SPEECH_STARTED, item_id="a", audio_start_ms=0)]
    assert segments_from_events(events) == []
    assert open_speech(events) == 1


def test_parse_events_drops_bulky_fields_and_garbage():
    raw = [(0.5, b'{"type":"x","logprobs":[1],"usage":{"a":1},"item_id":"i"}'), (0.6, b"not json"),
           (0.7, b"[1,2]")]
    assert parse_events(raw) == [(0.5, {"type": "x", "item_id": "i"})]


# -- score: the whole record on a small synthetic case ---------------------------------------

def test_score_synthetic_case():
    ref = [(1000.0, 2000.0, "one two"), (3000.0, 4000.0, "three")]
    segs = [seg(700, 2500, 1.0, 1.2, "one two", onset=1000, offset=2000),
            seg(3100, 4500, 2.0, 2.4, "tree", onset=3400, offset=4000)]
    m = score(ref, "one two three", segs, tol_ms=250)
    assert (m["wer_raw_errors"], m["ref_words_raw"]) == (1, 3)  # three -> tree
    # Whisper's normaliser writes number words as digits: "one two three" -> "123" (one
    # word) against "12 tree" -> 1 substitution + 1 insertion
    assert (m["wer_errors"], m["ref_words"]) == (2, 1)
    assert m["segments"] == 2 and m["segment_error"] == 0
    # onsets 1000 (hit), 3400 (400 ms off: miss); offsets 2000, 4000 (hits)
    assert m["boundary_hits"] == 3
    assert m["boundary_precision"] == pytest.approx(0.75) and m["boundary_recall"] == pytest.approx(0.75)
    # "three" spans 3000..4000 but the second segment starts at 3100: clipped
    assert (m["clipped_words"], m["missed_words"]) == (1, 0)
    # latencies: (2500-2000)+200 = 700, (4500-4000)+400 = 900
    assert m["latencies_ms"] == [pytest.approx(700.0), pytest.approx(900.0)]
    assert m["latency_p50_ms"] == pytest.approx(800.0)
    assert m["hypothesis"] == "one two tree"


def test_score_without_regions_gives_wer_only():
    m = score(None, "a b", [seg(0, 10, 0.1, 0.2, "a b")])
    assert m["wer"] == 0.0 and math.isnan(m["clipped_words"]) and m["latencies_ms"] == []


# -- configurations --------------------------------------------------------------------------

def test_config_segmentation_json_is_accepted_by_the_abi():
    cfgs = [C.server_vad(200, 0.3, 100), C.manual(),
            C.client_commit(flush_interval_ms=1000, min_flush_gap_ms=0),
            C.client_commit(max_buffer_bytes=48000, silence_ms=400, min_flush_gap_ms=0)]
    for cfg in cfgs:
        parsed = Segmentation.parse(cfg.segmentation())
        assert parsed is not None and parsed.strategy == cfg.strategy
    vad = Segmentation.parse(cfgs[0].segmentation()).vad
    assert (vad.silence_ms, vad.threshold, vad.prefix_padding_ms) == (200, 0.3, 100)
    cc = Segmentation.parse(cfgs[3].segmentation()).client_commit
    assert (cc.max_buffer_bytes, cc.silence_ms, cc.min_flush_gap_ms) == (48000, 400, 0)


def test_config_names_and_pacing():
    assert C.server_vad(200, 0.3, 100).name == "vad s200 t0.3 p100"
    assert C.manual().name == "manual"
    assert C.client_commit(flush_interval_ms=1000).name == "commit every1000ms"
    assert C.client_commit(flush_interval_ms=1000).needs_realtime()
    assert C.client_commit(max_buffer_bytes=48000, min_flush_gap_ms=0).needs_realtime()
    assert not C.server_vad().needs_realtime() and not C.manual().needs_realtime()
    assert C.server_vad(700, 0.5, 250).effective_vad() == (250.0, 700.0)


def test_grid_is_a_cartesian_product_last_axis_fastest():
    g = C.grid(silence_ms=[200, 500], threshold=[0.3, 0.6, 0.9])
    assert [(c.silence_ms, c.threshold) for c in g] == [
        (200, 0.3), (200, 0.6), (200, 0.9), (500, 0.3), (500, 0.6), (500, 0.9)]
    assert all(c.prefix_padding_ms == 300 for c in g)
    with pytest.raises(TypeError):
        C.grid(silense_ms=[1])
    with pytest.raises(ValueError):
        C.server_vad(threshold=1.5)


def test_config_round_trips_through_dict():
    cfg = C.server_vad(300, 0.4, 200, label="mine")
    assert C.SegConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.key() == C.server_vad(300, 0.4, 200).key()   # the label does not change the replay


# -- results, best, pooling ------------------------------------------------------------------

ROWS = [
    {"config": "A", "recording": "r", "clipped_words": 0, "latency_p95_ms": 2000.0, "wer": 0.1},
    {"config": "B", "recording": "r", "clipped_words": 1, "latency_p95_ms": 1200.0, "wer": 0.2},
    {"config": "C", "recording": "r", "clipped_words": 1, "latency_p95_ms": 900.0, "wer": 0.15},
    {"config": "D", "recording": "r", "clipped_words": 3, "latency_p95_ms": float("nan"), "wer": 0.0},
]


def test_best_respects_constraint_and_breaks_ties():
    # A is best on clipped words but too slow; B and C tie on 1 clipped word, C has the lower WER
    got = best(ROWS, minimise="clipped_words", constraint={"latency_p95_ms": ("<=", 1500)})
    assert got["config"] == "C"
    assert best(ROWS, minimise="clipped_words")["config"] == "A"
    assert best(ROWS, maximise="wer")["config"] == "B"
    assert best(ROWS, minimise="clipped_words", constraint={"latency_p95_ms": 500}) is None


def test_satisfies_operators_and_nan():
    assert satisfies(ROWS[0], {"wer": ("<", 0.2), "clipped_words": ("==", 0)})
    assert not satisfies(ROWS[3], {"latency_p95_ms": ("<=", 1e9)})      # NaN fails
    with pytest.raises(ValueError):
        satisfies(ROWS[0], {"wer": ("~", 1)})


def test_aggregate_pools_counts_and_latencies():
    r1 = {"config": "A", "recording": "x", "wer_errors": 1, "ref_words": 10, "segments": 2,
          "ref_segments": 2, "boundary_hits": 4, "clipped_words": 1, "latencies_ms": [100.0, 300.0],
          "ok": True, "wall_s": 1.0, "audio_s": 5.0}
    r2 = {"config": "A", "recording": "y", "wer_errors": 3, "ref_words": 10, "segments": 3,
          "ref_segments": 2, "boundary_hits": 2, "clipped_words": 2, "latencies_ms": [200.0],
          "ok": True, "wall_s": 1.0, "audio_s": 5.0}
    a = aggregate([r1, r2])
    assert a["wer"] == pytest.approx(0.2)                       # 4 errors / 20 words
    assert math.isnan(a["wer_raw"])                             # no raw counts given
    a = aggregate([{**r1, "wer_raw_errors": 2, "ref_words_raw": 10},
                   {**r2, "wer_raw_errors": 4, "ref_words_raw": 11}])
    assert a["wer_raw"] == pytest.approx(6 / 21)
    assert a["boundary_precision"] == pytest.approx(6 / 10)     # 6 hits / (2 x 5 segments)
    assert a["boundary_recall"] == pytest.approx(6 / 8)
    assert a["clipped_words"] == 3 and a["latency_p50_ms"] == 200.0
    assert a["speed"] == 5.0 and a["recordings"] == 2


def test_results_pool_by_default_with_several_recordings():
    rows = [{**r, "recording": rec, "wer_errors": 0, "ref_words": 1, "latencies_ms": [r["latency_p95_ms"]]}
            for rec in ("r1", "r2") for r in ROWS[:3]]
    res = Results(rows)
    assert res.recording_names == ["r1", "r2"] and res.config_names == ["A", "B", "C"]
    got = res.best("clipped_words", constraint={"latency_p95_ms": ("<=", 1500)})
    # B and C tie on clipped words and pooled WER; C has the lower p95 latency
    assert got["recordings"] == 2 and got["clipped_words"] == 2 and got["config"] == "C"
    assert [r["config"] for r in res.where(recording="r2").records] == ["A", "B", "C"]


# -- the host-side tap -----------------------------------------------------------------------

def test_event_tap_records_events_and_commit_positions(host):
    fd = host.rtasr_create()
    tap = EventTap(host.table)
    host.table.listeners.append(tap)
    assert host.rtasr_write(fd, b"\x00" * 9600) == 9600        # 200 ms of pcm16 at 24 kHz
    assert host.rtasr_ctl(fd, RtasrCtl.FLUSH) == 0
    entry = host.table.get(fd)
    entry.push_event(b'{"type":"input_audio_buffer.committed","item_id":"a"}')
    assert [e for _, e in tap.events] == [b'{"type":"input_audio_buffer.committed","item_id":"a"}']
    assert [p for _, p in tap.commits] == [200.0]


def test_run_record_json_round_trip():
    rec = RunRecord("r", "d", C.server_vad().to_dict(), "fast", 1000.0,
                    events=[(0.5, {"type": COMMITTED, "item_id": "a"})], summary={"exit": 0}, exit_code=0)
    back = RunRecord.from_json(json.loads(json.dumps(rec.to_json())))
    assert back == rec and back.ok


def test_score_reports_delay_and_processing_separately():
    ref = [(0.0, 1000.0, "a"), (2000.0, 3000.0, "b")]
    segs = [seg(0, 1500, 1.0, 1.25, "a"), seg(1900, 3200, 2.0, 2.1, "b")]
    m = score(ref, "a b", segs)
    # delays 500 and 200 ms of audio; processing 250 and 100 ms of wall time
    assert m["seg_delays_ms"] == [500.0, 200.0]
    assert m["seg_delay_p50_ms"] == 350.0
    assert m["processing_p50_ms"] == pytest.approx(175.0)
    assert m["latencies_ms"] == [pytest.approx(750.0), pytest.approx(300.0)]
    pooled = aggregate([{**m, "config": "x", "recording": "r1"}, {**m, "config": "x", "recording": "r2"}])
    assert pooled["seg_delay_p50_ms"] == 350.0 and len(pooled["seg_delays_ms"]) == 4


def test_run_record_errors():
    base = dict(recording="r", digest="d", config=C.server_vad().to_dict(), pace="fast", audio_ms=1000.0,
                exit_code=0)
    full = {"bytes": 48000, "dropped": 0, "dropped_events": 0, "drain_timeout": 0}
    assert RunRecord(**base, summary=full).error() is None
    assert RunRecord(**base, summary={**full, "bytes": 9600}).error() == "only 200 of 1000 ms of audio sent"
    assert RunRecord(**base, summary={**full, "dropped": 3}).error() == "lost 3 mic frames, 0 events"
    assert RunRecord(**base, summary={**full, "drain_timeout": 1}).error().startswith("drain timeout")
    assert RunRecord(**{**base, "exit_code": 3}, summary=full).error() == "exit 3"
    assert not RunRecord(**base, summary=full, problems=["hangup: x"]).ok


def test_refused_empty_commit_uses_up_its_host_position():
    events = [
        ev(1.0, COMMITTED, item_id="x"),
        ev(1.1, "error", error={"code": "input_audio_buffer_commit_empty", "message": "buffer too small"}),
        ev(2.0, COMMITTED, item_id="y"),
    ]
    x, y = segments_from_events(events, commit_positions_ms=[1000.0, 1020.0, 3000.0], audio_ms=4000.0)
    assert [(s.start_ms, s.end_ms) for s in (x, y)] == [(0.0, 1000.0), (1000.0, 3000.0)]


