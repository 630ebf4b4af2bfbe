"""The sans-I/O session core: every client event and error case, both dialects."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from spear_lab.server import protocol
from spear_lab.server.engines import Recognition, Word
from spear_lab.server.events import (AbortStream, CloseConnection, FeedAudio, FinishStream, Ids, OpenStream,
                                     RequestPartial, Send)
from spear_lab.server.protocol import TranscriptionSession
from srvkit import COMPLETED, DELTA, FAILED, b64, silence

DIALECTS = ["ga", "beta"]


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make(dialect: str = "ga", transcribe: bool = True, **kw) -> TranscriptionSession:
    """A session; ``transcribe``: start with gpt-4o-transcribe on, as if the client's
    first update had set it (OpenAI's GA sessions start with transcription off)."""
    kw.setdefault("monotonic", FakeClock())
    s = TranscriptionSession(dialect, ids=Ids(True), clock=lambda: 1_000_000, **kw)
    if transcribe and s.config.transcription is None:
        s.config = replace(s.config, transcription={"model": "gpt-4o-transcribe",
                                                    "language": None, "prompt": ""})
    return s


def sends(actions) -> list[dict]:
    return [a.event for a in actions if isinstance(a, Send)]


def types(actions) -> list[str]:
    return [e["type"] for e in sends(actions)]


def update(s: TranscriptionSession, td="keep", eid=None, **fields) -> list:
    """A session update in the session's own dialect."""
    if s.dialect == "ga":
        inp = dict(fields)
        if td != "keep":
            inp["turn_detection"] = td
        ev = {"type": "session.update", "session": {"type": "transcription", "audio": {"input": inp}}}
    else:
        sess = {}
        if td != "keep":
            sess["turn_detection"] = td
        if "transcription" in fields:
            sess["input_audio_transcription"] = fields["transcription"]
        if "format" in fields:
            sess["input_audio_format"] = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw",
                                          "audio/pcma": "g711_alaw"}[fields["format"]["type"]]
        ev = {"type": "transcription_session.update", "session": sess}
    if eid:
        ev["event_id"] = eid
    return s.receive(json.dumps(ev))


def append(s: TranscriptionSession, pcm: bytes, chunk: int = 4800) -> list:
    out = []
    for i in range(0, len(pcm), chunk):
        out += s.receive(json.dumps({"type": "input_audio_buffer.append",
                                     "audio": b64(pcm[i:i + chunk])}))
    return out


def the_error(actions) -> dict:
    evs = sends(actions)
    assert [e["type"] for e in evs] == ["error"], evs
    err = evs[0]["error"]
    assert set(err) == {"type", "code", "message", "param", "event_id"}
    assert err["type"] == "invalid_request_error" and err["message"]
    return err


# ---------------------------------------------------------------- session objects

def test_ga_session_created_carries_effective_config():
    s = make("ga", transcribe=False)
    (ev,) = sends(s.start())
    assert ev["type"] == "session.created" and ev["event_id"] == "event_000001"
    sess = ev["session"]
    assert sess["type"] == "transcription"
    assert sess["object"] == "realtime.transcription_session"
    assert sess["id"] == "sess_000001" and sess["expires_at"] == 1_000_000 + 3600
    inp = sess["audio"]["input"]
    assert inp["format"] == {"type": "audio/pcm", "rate": 24000}
    assert inp["transcription"] is None  # as OpenAI's GA sessions start
    assert inp["turn_detection"] == {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                     "silence_duration_ms": 200, "idle_timeout_ms": None}
    assert inp["noise_reduction"] is None and sess["include"] == []


def test_beta_created_shapes_by_url():
    (ev,) = sends(make("beta").start())
    assert ev["type"] == "transcription_session.created"
    sess = ev["session"]
    assert sess["object"] == "realtime.transcription_session"
    assert sess["input_audio_format"] == "pcm16" and sess["client_secret"] is None
    assert sess["turn_detection"]["silence_duration_ms"] == 200
    assert sess["input_audio_transcription"] == {"model": "gpt-4o-transcribe", "language": None,
                                                 "prompt": ""}
    (ev,) = sends(make("beta", beta_object="realtime.session", url_model="gpt-realtime").start())
    assert ev["type"] == "session.created" and ev["session"]["object"] == "realtime.session"


def test_url_model_sets_transcription_model_and_default_silence_option():
    s = make("ga", url_model="whisper-1", default_silence_ms=500)
    inp = sends(s.start())[0]["session"]["audio"]["input"]
    assert inp["transcription"]["model"] == "whisper-1"
    assert inp["turn_detection"]["silence_duration_ms"] == 500


@pytest.mark.parametrize("dialect", DIALECTS)
def test_update_changes_only_given_fields_and_replies_with_full_config(dialect):
    s = make(dialect)
    s.start()
    out = update(s, td={"type": "server_vad", "threshold": 0.7, "silence_duration_ms": 800},
                 eid="client_1")
    (ev,) = sends(out)
    assert ev["type"] == ("session.updated" if dialect == "ga" else "transcription_session.updated")
    assert ev["event_id"] != "client_1"
    td = (ev["session"]["audio"]["input"] if dialect == "ga" else ev["session"])["turn_detection"]
    assert td == {"type": "server_vad", "threshold": 0.7, "prefix_padding_ms": 300,
                  "silence_duration_ms": 800, "idle_timeout_ms": None}
    update(s, transcription={"model": "whisper-1", "language": "en"})
    assert s.config.turn_detection["threshold"] == 0.7  # untouched
    assert s.config.transcription["model"] == "whisper-1"
    update(s, td=None)
    assert s.config.turn_detection is None
    update(s, format={"type": "audio/pcmu"})
    assert s.config.format == "g711_ulaw"


def test_ga_update_all_fields_and_semantic_vad():
    s = make("ga")
    out = s.receive(json.dumps({"type": "session.update", "session": {
        "type": "transcription", "include": ["item.input_audio_transcription.logprobs"],
        "audio": {"input": {
            "format": {"type": "audio/pcma"},
            "transcription": {"model": "gpt-4o-transcribe", "delay": "low", "language": "en"},
            "noise_reduction": {"type": "near_field"},
            "turn_detection": {"type": "semantic_vad", "eagerness": "high"}}}}}))
    sess = sends(out)[0]["session"]
    inp = sess["audio"]["input"]
    assert inp["format"] == {"type": "audio/pcma"}
    assert inp["transcription"]["delay"] == "low"
    assert inp["noise_reduction"] == {"type": "near_field"}
    assert inp["turn_detection"] == {"type": "semantic_vad", "eagerness": "high"}
    assert sess["include"] == ["item.input_audio_transcription.logprobs"]


def test_beta_accepts_beta_shaped_session_update_like_the_spear_reference():
    s = make("beta", beta_object="realtime.session", url_model="gpt-realtime")
    out = s.receive(json.dumps({"type": "session.update", "session": {
        "input_audio_format": "pcm16", "input_audio_transcription": {"model": "gpt-4o-mini-transcribe"},
        "modalities": ["text"]}}))
    (ev,) = sends(out)
    assert ev["type"] == "session.updated" and ev["session"]["object"] == "realtime.session"
    assert ev["session"]["input_audio_transcription"]["model"] == "gpt-4o-mini-transcribe"


# ---------------------------------------------------------------- malformed events

BAD_EVENTS = [
    ("not json at all", "invalid_json", None),
    ("[1, 2]", "invalid_event", None),
    (json.dumps({"event_id": "e1"}), "invalid_event", None),
    (json.dumps({"type": 7, "event_id": "e1"}), "invalid_type", "type"),
    (json.dumps({"type": "no.such.event", "event_id": "e1"}), "invalid_value", "type"),
    (json.dumps({"type": "response.create", "event_id": "e1"}), "invalid_value", "type"),
    (json.dumps({"type": "input_audio_buffer.append", "event_id": "e1"}),
     "missing_required_parameter", "audio"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": 12, "event_id": "e1"}),
     "invalid_type", "audio"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": "!!not base64!!", "event_id": "e1"}),
     "invalid_value", "audio"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": "", "extra": 1, "event_id": "e1"}),
     "unknown_parameter", "extra"),
    (json.dumps({"type": "input_audio_buffer.commit", "event_id": 5}), "invalid_type", "event_id"),
    (json.dumps({"type": "input_audio_buffer.commit", "event_id": "x" * 513}),
     "string_above_max_length", "event_id"),
    (json.dumps({"type": "input_audio_buffer.commit", "event_id": "e1"}),
     "input_audio_buffer_commit_empty", None),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("raw,code,param", BAD_EVENTS)
def test_malformed_events_get_errors_and_echo_event_id(dialect, raw, code, param):
    s = make(dialect)
    s.start()
    err = the_error(s.receive(raw))
    assert err["code"] == code and err["param"] == param
    has_eid = '"event_id": "e1"' in raw
    assert err["event_id"] == ("e1" if has_eid else None)
    # the session is still usable
    assert types(s.receive(json.dumps({"type": "input_audio_buffer.clear"}))) == \
        ["input_audio_buffer.cleared"]


def test_invalid_utf8_binary_message():
    err = the_error(make().receive(b"\xff\xfe{"))
    assert err["code"] == "invalid_json"


def test_commit_empty_message_matches_openai():
    s = make()
    update(s, td=None)
    append(s, silence(50))
    err = the_error(s.receive(json.dumps({"type": "input_audio_buffer.commit", "event_id": "c"})))
    assert err["message"] == ("Error committing input audio buffer: buffer too small. Expected at "
                              "least 100ms of audio, but buffer only has 50.00ms of audio.")
    assert err["event_id"] == "c"


def test_append_size_limit(monkeypatch):
    monkeypatch.setattr(protocol, "MAX_APPEND_BYTES", 1000)
    s = make()
    err = the_error(s.receive(json.dumps({"type": "input_audio_buffer.append",
                                          "audio": b64(bytes(1002)), "event_id": "big"})))
    assert err["code"] == "invalid_value" and err["param"] == "audio" and err["event_id"] == "big"
    assert s.buffered_ms == 0
    assert sends(s.receive(json.dumps({"type": "input_audio_buffer.append",
                                       "audio": b64(bytes(1000))}))) == []
    assert s.buffered_ms == pytest.approx(500 / 24, abs=0.1)


GA_BAD_UPDATES = [
    ({"type": "session.update"}, "missing_required_parameter", "session"),
    ({"type": "session.update", "session": []}, "invalid_type", "session"),
    ({"type": "session.update", "session": {"audio": {}}}, "missing_required_parameter", "session.type"),
    ({"type": "session.update", "session": {"type": "realtime"}}, "invalid_value", "session.type"),
    ({"type": "session.update", "session": {"type": "transcription", "voice": "x"}},
     "unknown_parameter", "session.voice"),
    ({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcm", "rate": 16000}}}}}, "integer_below_min_value", "session.audio.input.format.rate"),
    ({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/flac"}}}}}, "invalid_value", "session.audio.input.format.type"),
    ({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "threshold": 1.5}}}}},
     "invalid_value", "session.audio.input.turn_detection.threshold"),
    ({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "threshold": "high"}}}}},
     "invalid_type", "session.audio.input.turn_detection.threshold"),
    ({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 1.5}}}}},
     "invalid_type", "session.audio.input.turn_detection.silence_duration_ms"),
    ({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "turn_detection": {"type": "server_vad", "idle_timeout_ms": 100}}}}},
     "invalid_value", "session.audio.input.turn_detection.idle_timeout_ms"),
    ({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "turn_detection": {"type": "semantic_vad", "eagerness": "extreme"}}}}},
     "invalid_value", "session.audio.input.turn_detection.eagerness"),
    ({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "turn_detection": {"type": "magic_vad"}}}}}, "invalid_value", "session.audio.input.turn_detection.type"),
    ({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "transcription": {"model": 3}}}}}, "invalid_type", "session.audio.input.transcription.model"),
    ({"type": "session.update", "session": {"type": "transcription", "include": ["everything"]}},
     "invalid_value", "session.include[0]"),
    ({"type": "transcription_session.update", "session": {}}, "invalid_value", "type"),
]


@pytest.mark.parametrize("event,code,param", GA_BAD_UPDATES)
def test_ga_bad_updates_leave_config_unchanged(event, code, param):
    s = make("ga")
    before = s.config
    err = the_error(s.receive(json.dumps({**event, "event_id": "u1"})))
    assert (err["code"], err["param"], err["event_id"]) == (code, param, "u1")
    assert s.config == before


BETA_BAD_UPDATES = [
    ({"session": {"input_audio_format": "mp3"}}, "invalid_value", "session.input_audio_format"),
    ({"session": {"turn_detection": {"type": "server_vad", "prefix_padding_ms": -1}}},
     "invalid_value", "session.turn_detection.prefix_padding_ms"),
    ({"session": {"input_audio_noise_reduction": {"type": "underwater"}}},
     "invalid_value", "session.input_audio_noise_reduction.type"),
    ({"session": {"bogus": 1}}, "unknown_parameter", "session.bogus"),
]


@pytest.mark.parametrize("event,code,param", BETA_BAD_UPDATES)
def test_beta_bad_updates_leave_config_unchanged(event, code, param):
    s = make("beta")
    before = s.config
    err = the_error(s.receive(json.dumps({"type": "transcription_session.update", **event})))
    assert (err["code"], err["param"]) == (code, param)
    assert s.config == before


# ---------------------------------------------------------------- buffer and items

@pytest.mark.parametrize("dialect", DIALECTS)
def test_manual_commit_and_item_chain(dialect):
    s = make(dialect)
    update(s, td=None)
    out = append(s, silence(300))
    assert isinstance(out[0], OpenStream) and all(isinstance(a, FeedAudio) for a in out[1:])
    item1 = out[0].item_id
    out = s.receive(json.dumps({"type": "input_audio_buffer.commit"}))
    evs = sends(out)
    expected = (["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
                if dialect == "ga" else ["input_audio_buffer.committed", "conversation.item.created"])
    assert [e["type"] for e in evs] == expected
    assert evs[0]["item_id"] == item1 and evs[0]["previous_item_id"] is None
    item = evs[1]["item"]
    assert item == {"id": item1, "object": "realtime.item", "type": "message", "status": "completed",
                    "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
    assert isinstance(out[-1], FinishStream) and out[-1].item_id == item1
    # second item chains to the first
    out = append(s, silence(200))
    item2 = out[0].item_id
    evs = sends(s.receive(json.dumps({"type": "input_audio_buffer.commit"})))
    assert evs[0]["item_id"] == item2 and evs[0]["previous_item_id"] == item1
    assert all(e["previous_item_id"] == item1 for e in evs[1:])
    # a commit right after is empty
    assert the_error(s.receive(json.dumps({"type": "input_audio_buffer.commit"})))["code"] == \
        "input_audio_buffer_commit_empty"


def test_fed_audio_is_all_audio_in_16khz():
    s = make()
    update(s, td=None)
    out = append(s, silence(1000), chunk=4801) + s.receive(json.dumps(
        {"type": "input_audio_buffer.commit"}))
    fed = sum(len(a.pcm) for a in out if isinstance(a, FeedAudio))
    assert abs(fed - 16000) <= 1
    assert s.buffered_ms == 0


@pytest.mark.parametrize("dialect", DIALECTS)
def test_clear_drops_the_buffer(dialect):
    s = make(dialect)
    update(s, td=None)
    item = append(s, silence(300))[0].item_id
    out = s.receive(json.dumps({"type": "input_audio_buffer.clear", "event_id": "x"}))
    assert isinstance(out[0], AbortStream) and out[0].item_id == item
    (ev,) = sends(out)
    assert ev["type"] == "input_audio_buffer.cleared" and set(ev) == {"type", "event_id"}
    assert s.buffered_ms == 0
    assert the_error(s.receive(json.dumps({"type": "input_audio_buffer.commit"})))["code"] == \
        "input_audio_buffer_commit_empty"


def test_transcription_null_commits_without_recognition():
    s = make()
    s.receive(json.dumps({"type": "session.update", "session": {
        "type": "transcription", "audio": {"input": {"transcription": None, "turn_detection": None}}}}))
    out = append(s, silence(200)) + s.receive(json.dumps({"type": "input_audio_buffer.commit"}))
    assert not [a for a in out if not isinstance(a, Send)]
    assert types(out)[0] == "input_audio_buffer.committed"


def rec(text: str) -> Recognition:
    words = tuple(Word(w, -0.1 * (i + 1), i * 100, i * 100 + 90) for i, w in enumerate(text.split()))
    return Recognition(text, words)


def committed_item(s: TranscriptionSession, ms: int = 1000) -> str:
    update(s, td=None)
    item = append(s, silence(ms))[0].item_id
    s.receive(json.dumps({"type": "input_audio_buffer.commit"}))
    return item


def test_after_commit_profile_word_deltas_then_completed_with_token_usage():
    s = make()
    item = committed_item(s)
    evs = sends(s.recognized(item, rec("hello there world")))
    assert [e["type"] for e in evs] == [DELTA] * 3 + [COMPLETED]
    assert "".join(e["delta"] for e in evs[:3]) == "hello there world"
    assert all(e["item_id"] == item and e["content_index"] == 0 for e in evs)
    done = evs[-1]
    assert done["transcript"] == "hello there world" and "logprobs" not in done
    u = done["usage"]
    assert u["type"] == "tokens" and u["input_token_details"]["audio_tokens"] == 10
    assert u["total_tokens"] == u["input_tokens"] + u["output_tokens"]
    assert s.recognized(item, rec("again")) == []  # only once


def test_whisper1_single_delta_and_duration_usage():
    s = make()
    update(s, transcription={"model": "whisper-1"})
    item = committed_item(s, 1500)
    evs = sends(s.recognized(item, rec("one two")))
    assert [e["type"] for e in evs] == [DELTA, COMPLETED]
    assert evs[0]["delta"] == "one two"
    assert evs[1]["usage"] == {"type": "duration", "seconds": 1.5}


def test_logprobs_when_included():
    s = make()
    s.receive(json.dumps({"type": "session.update", "session": {
        "type": "transcription", "include": ["item.input_audio_transcription.logprobs"]}}))
    item = committed_item(s)
    evs = sends(s.recognized(item, rec("hi you")))
    assert evs[0]["logprobs"] == [{"token": "hi", "logprob": -0.1, "bytes": list(b"hi")}]
    assert evs[1]["logprobs"][0]["token"] == " you"
    assert [lp["token"] for lp in evs[-1]["logprobs"]] == ["hi", " you"]
    assert all(lp["logprob"] <= 0 for lp in evs[-1]["logprobs"])


def test_failed_event():
    s = make()
    item = committed_item(s)
    (ev,) = sends(s.failed(item, "engine crashed"))
    assert ev["type"] == FAILED and ev["item_id"] == item and ev["content_index"] == 0
    assert ev["error"] == {"type": "server_error", "code": "transcription_failed",
                           "message": "engine crashed", "param": None}
    assert s.recognized(item, rec("late")) == []


def test_live_profile_emits_stable_words_while_speaking():
    s = make()
    update(s, td=None, transcription={"model": "gpt-realtime-whisper"})
    out = append(s, silence(700))
    item = out[0].item_id
    assert any(isinstance(a, RequestPartial) for a in out)
    assert sends(s.partial(item, "the")) == []
    d1 = sends(s.partial(item, "the quick"))
    assert [e["delta"] for e in d1] == ["the"]
    d2 = sends(s.partial(item, "the quick brown fox"))
    assert [e["delta"] for e in d2] == [" quick"]
    assert sends(s.partial(item, "a quick brown fox jumps")) == []  # revision: nothing taken back
    s.receive(json.dumps({"type": "input_audio_buffer.commit"}))
    evs = sends(s.recognized(item, rec("the quick brown fox jumps")))
    assert [e.get("delta") for e in evs[:-1]] == [" brown", " fox", " jumps"]
    assert evs[-1]["type"] == COMPLETED


# ---------------------------------------------------------------- server VAD on speech

def vad_run(s: TranscriptionSession, pcm: bytes, chunk: int = 4800) -> list[dict]:
    return sends(append(s, pcm, chunk))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_server_vad_event_order_and_timestamps(dialect, one_sentence, speech):
    s = make(dialect)
    update(s, td={"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                  "silence_duration_ms": 500})
    out = append(s, one_sentence)
    evs = sends(out)
    kinds = [e["type"] for e in evs]
    item_ev = ["conversation.item.added", "conversation.item.done"] if dialect == "ga" else \
        ["conversation.item.created"]
    assert kinds == ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                     "input_audio_buffer.committed"] + item_ev
    start, stop = evs[0], evs[1]
    s0, e0, _ = speech.segments[0]
    true_start_ms, true_end_ms = 500, 500 + (e0 - s0) * 1000
    assert abs(start["audio_start_ms"] - (true_start_ms - 300)) <= 60
    assert abs(stop["audio_end_ms"] - (true_end_ms + 500)) <= 100
    assert start["item_id"] == stop["item_id"] == evs[2]["item_id"]
    assert isinstance(out[-1], FinishStream)
    fed = sum(len(a.pcm) for a in out if isinstance(a, FeedAudio))
    assert abs(fed / 16 - (stop["audio_end_ms"] - start["audio_start_ms"])) <= 1


def test_vad_positions_do_not_depend_on_chunking(one_sentence):
    def positions(chunk):
        s = make()
        evs = vad_run(s, one_sentence, chunk)
        return [(e["type"], e.get("audio_start_ms"), e.get("audio_end_ms")) for e in evs
                if "speech" in e["type"]]
    ref = positions(4800)
    assert len(ref) == 2
    assert positions(1234) == ref
    assert positions(len(one_sentence)) == ref


def test_server_vad_on_sentences(speech):
    s = make()
    update(s, td={"type": "server_vad", "silence_duration_ms": 500})
    evs = vad_run(s, speech.pcm.tobytes())
    starts = [e["audio_start_ms"] for e in evs if e["type"] == "input_audio_buffer.speech_started"]
    stops = [e["audio_end_ms"] for e in evs if e["type"] == "input_audio_buffer.speech_stopped"]
    assert len(starts) == len(stops) == len(speech.segments)
    for (a, b, _), st, sp in zip(speech.segments, starts, stops):
        assert abs(st - (a * 1000 - 300)) <= 60
        assert abs(sp - (b * 1000 + 500)) <= 100
    commits = [e for e in evs if e["type"] == "input_audio_buffer.committed"]
    assert [c["previous_item_id"] for c in commits[1:]] == [c["item_id"] for c in commits[:-1]]


def test_higher_threshold_means_stricter_speech(speech):
    from spear_lab.testaudio import add_noise
    noisy = add_noise(speech, 5, "pink", seed=3).pcm.tobytes()
    counts = {}
    for thr in (0.5, 0.99):
        s = make()
        update(s, td={"type": "server_vad", "threshold": thr, "silence_duration_ms": 500})
        evs = vad_run(s, noisy)
        counts[thr] = sum(e["type"] == "input_audio_buffer.speech_started" for e in evs)
    assert counts[0.5] == len(speech.segments)
    assert counts[0.99] <= counts[0.5]


def test_g711_ulaw_timestamps_match_pcm16(one_sentence, tmp_path):
    import subprocess
    raw = tmp_path / "s.raw"
    raw.write_bytes(one_sentence)
    ulaw = subprocess.run(["sox", "-D", "-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r",
                           "24000", str(raw), "-t", "raw", "-e", "u-law", "-r", "8000", "-"],
                          check=True, capture_output=True).stdout
    ref = [e for e in vad_run(make(), one_sentence) if "speech" in e["type"]]
    s = make()
    update(s, format={"type": "audio/pcmu"})
    got = [e for e in vad_run(s, ulaw, 800) if "speech" in e["type"]]
    assert len(got) == len(ref) == 2
    assert abs(got[0]["audio_start_ms"] - ref[0]["audio_start_ms"]) <= 40
    assert abs(got[1]["audio_end_ms"] - ref[1]["audio_end_ms"]) <= 60


def test_manual_commit_during_speech_and_clear_in_vad_mode(one_sentence):
    s = make()
    half = len(one_sentence) // 2 // 2 * 2
    evs = vad_run(s, one_sentence[:half])
    assert [e["type"] for e in evs] == ["input_audio_buffer.speech_started"]
    item = evs[0]["item_id"]
    out = s.receive(json.dumps({"type": "input_audio_buffer.commit"}))
    assert sends(out)[0]["item_id"] == item and isinstance(out[-1], FinishStream)
    # clear during the next stretch of speech aborts it
    evs = append(s, one_sentence[half:half + 9600])
    started = [e for e in sends(evs) if e["type"] == "input_audio_buffer.speech_started"]
    assert len(started) == 1 and started[0]["item_id"] != item  # speech goes on: a new item
    assert started[0]["audio_start_ms"] >= half // 48  # padding stops at the commit
    out = s.receive(json.dumps({"type": "input_audio_buffer.clear"}))
    assert [a.item_id for a in out if isinstance(a, AbortStream)] == [started[0]["item_id"]]
    assert types(out) == ["input_audio_buffer.cleared"]


def test_idle_timeout_in_audio_time():
    s = make()
    update(s, td={"type": "server_vad", "idle_timeout_ms": 5000})
    evs = vad_run(s, silence(5200))
    assert [e["type"] for e in evs] == ["input_audio_buffer.timeout_triggered",
                                        "input_audio_buffer.committed", "conversation.item.added",
                                        "conversation.item.done"]
    t = evs[0]
    assert t["audio_start_ms"] == 0 and 5000 <= t["audio_end_ms"] <= 5100
    assert evs[1]["item_id"] == t["item_id"]


def test_idle_timeout_by_wall_clock():
    clock = FakeClock()
    s = make(monotonic=clock)
    update(s, td={"type": "server_vad", "idle_timeout_ms": 5000})
    append(s, silence(500))
    assert s.tick() == []
    assert s.idle_deadline() == pytest.approx(105.0)
    clock.t += 5.0
    evs = sends(s.tick())
    assert evs[0]["type"] == "input_audio_buffer.timeout_triggered"
    assert evs[0]["audio_end_ms"] == 500
    assert s.tick() == []  # re-armed


def test_semantic_vad_waits_longer_after_an_unfinished_phrase(one_sentence):
    def stop_ms(partial_text):
        s = make()
        update(s, td={"type": "semantic_vad", "eagerness": "high"})
        half = len(one_sentence) // 2 // 2 * 2
        evs = vad_run(s, one_sentence[:half])
        item = evs[0]["item_id"]
        s.partial(item, partial_text)
        evs = vad_run(s, one_sentence[half:] + silence(3000))
        (stop,) = [e for e in evs if e["type"] == "input_audio_buffer.speech_stopped"]
        return stop["audio_end_ms"]
    done, unfinished = stop_ms("the quick brown fox"), stop_ms("the quick brown fox and")
    assert unfinished - done == pytest.approx(2000 - 400, abs=20)


def test_close_aborts_everything():
    s = make()
    update(s, td=None)
    item = append(s, silence(300))[0].item_id
    assert [a.item_id for a in s.close()] == [item]


# ---------------------------------------------------------------- fuzzing

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
_types = st.sampled_from(["session.update", "transcription_session.update",
                          "input_audio_buffer.append", "input_audio_buffer.commit",
                          "input_audio_buffer.clear", "response.create", "x"])
_vad = st.none() | _json | st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["server_vad", "semantic_vad"]) | _json,
    "threshold": _json, "prefix_padding_ms": _json, "silence_duration_ms": _json,
    "eagerness": _json, "idle_timeout_ms": _json})
_transcription = st.none() | _json | st.fixed_dictionaries({}, optional={
    "model": _json, "language": _json, "prompt": _json, "delay": _json, "keywords": _json})
_ga_session = st.fixed_dictionaries({"type": st.just("transcription")}, optional={
    "audio": st.fixed_dictionaries({}, optional={"input": st.fixed_dictionaries({}, optional={
        "format": _json | st.fixed_dictionaries({"type": _json}, optional={"rate": _json}),
        "transcription": _transcription, "turn_detection": _vad, "noise_reduction": _json})}),
    "include": _json}) | _json
_beta_session = st.fixed_dictionaries({}, optional={
    "input_audio_format": _json, "input_audio_transcription": _transcription,
    "turn_detection": _vad, "input_audio_noise_reduction": _json, "include": _json}) | _json


@settings(max_examples=300, deadline=None)
@given(dialect=st.sampled_from(DIALECTS), kind=_types, data=st.data(),
       audio=st.none() | st.binary(max_size=64).map(b64) | _json, eid=st.none() | _json)
def test_no_event_crashes_the_session(dialect, kind, data, audio, eid):
    s = make(dialect)
    session = data.draw(_ga_session if dialect == "ga" else _beta_session)
    ev = {"type": kind, "session": session, "audio": audio, "event_id": eid}
    ev = {k: v for k, v in ev.items() if v is not None}
    for msg in (json.dumps(ev), json.dumps({"type": kind, **({"session": session}
                                                             if "update" in kind else {})})):
        out = s.receive(msg)
        assert isinstance(out, list)
        for e in sends(out):
            assert e["type"] != "error" or e["error"]["code"] != "server_error", e
    assert types(s.receive(json.dumps({"type": "input_audio_buffer.clear"}))) == \
        ["input_audio_buffer.cleared"]


# ---------------------------------------------------------------- OpenAI profile (issue 13)

def test_idle_timeout_fires_once_per_idle_period(one_sentence):
    s = make()
    update(s, td={"type": "server_vad", "idle_timeout_ms": 5000})
    evs = vad_run(s, silence(16000))  # three timeouts' worth of silence
    assert [e["type"] for e in evs].count("input_audio_buffer.timeout_triggered") == 1
    evs = vad_run(s, one_sentence + silence(6000))  # speech ends the idle period
    kinds = [e["type"] for e in evs]
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index(
        "input_audio_buffer.timeout_triggered")
    assert kinds.count("input_audio_buffer.timeout_triggered") == 1


def test_idle_timeout_never_commits_under_100_ms():
    clock = FakeClock()
    s = make(monotonic=clock)
    update(s, td={"type": "server_vad", "idle_timeout_ms": 5000})
    append(s, silence(60))
    clock.t += 6.0
    assert s.tick() == [] and s.idle_deadline() is None  # nothing to commit: no event, no spin
    evs = sends(append(s, silence(60)))  # 120 ms now: the overdue timeout fires
    assert [e["type"] for e in evs][:2] == ["input_audio_buffer.timeout_triggered",
                                            "input_audio_buffer.committed"]
    assert evs[0]["audio_end_ms"] - evs[0]["audio_start_ms"] >= 100
    clock.t += 6.0
    assert s.tick() == [] and s.idle_deadline() is None  # fired already this idle period


@pytest.mark.parametrize("dialect", DIALECTS)
def test_partial_updates_merge(dialect):
    s = make(dialect)
    update(s, transcription={"model": "whisper-1", "prompt": "names: Ada"},
           td={"type": "server_vad", "threshold": 0.8, "silence_duration_ms": 900})
    update(s, transcription={"language": "de"})
    assert s.config.transcription == {"model": "whisper-1", "language": "de", "prompt": "names: Ada"}
    update(s, td={"prefix_padding_ms": 100})  # no type: the current one
    assert s.config.turn_detection == {"type": "server_vad", "threshold": 0.8, "prefix_padding_ms": 100,
                                       "silence_duration_ms": 900, "idle_timeout_ms": None}
    update(s, td={"type": "server_vad", "silence_duration_ms": 300})
    assert s.config.turn_detection["threshold"] == 0.8
    update(s, td={"type": "semantic_vad"})  # another type starts from its defaults
    assert s.config.turn_detection == {"type": "semantic_vad", "eagerness": "auto"}
    update(s, td=None)
    assert s.config.turn_detection is None
    err = the_error(update(s, td={"silence_duration_ms": 300}))  # nothing to merge into
    assert err["code"] == "invalid_value" and err["param"].endswith("turn_detection.type")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_lenient_updates_replace(dialect):
    s = make(dialect, lenient=True)
    update(s, transcription={"model": "whisper-1", "prompt": "names: Ada"},
           td={"type": "server_vad", "threshold": 0.8})
    update(s, transcription={"language": "de"})
    assert s.config.transcription == {"model": "gpt-4o-transcribe", "language": "de", "prompt": ""}
    update(s, td={"type": "server_vad", "silence_duration_ms": 300})
    assert s.config.turn_detection["threshold"] == 0.5


def test_ga_starts_without_transcription_beta_and_lenient_with():
    assert make("ga", transcribe=False).config.transcription is None
    assert make("ga", transcribe=False, lenient=True).config.transcription["model"] == "gpt-4o-transcribe"
    assert make("beta", transcribe=False).config.transcription["model"] == "gpt-4o-transcribe"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_unknown_model_is_invalid_model_and_closes_4000(dialect):
    s = make(dialect)
    before = s.config
    out = update(s, transcription={"model": "gpt-9-transcribe"}, eid="m")
    err = sends(out)[0]["error"]
    assert (err["code"], err["event_id"]) == ("invalid_model", "m")
    assert err["message"] == 'Model "gpt-9-transcribe" is not supported in transcription mode.'
    assert [(a.code, a.reason) for a in out if isinstance(a, CloseConnection)] == [
        (4000, "invalid_request_error.invalid_model")]
    assert s.config == before
    lenient = make(dialect, lenient=True)
    update(lenient, transcription={"model": "gpt-9-transcribe"})
    assert lenient.config.transcription["model"] == "gpt-9-transcribe"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_realtime_whisper_needs_turn_detection_null(dialect):
    s = make(dialect)
    err = the_error(update(s, transcription={"model": "gpt-realtime-whisper"},
                           td={"type": "server_vad"}))
    assert err["message"] == "Turn detection is not supported for this transcription model."
    assert err["param"].endswith("turn_detection")
    update(s, transcription={"model": "gpt-realtime-whisper"})  # omitted: off
    assert s.config.turn_detection is None
    assert the_error(update(s, td={"type": "semantic_vad"}))["param"].endswith("turn_detection")
    lenient = make(dialect, lenient=True)
    update(lenient, transcription={"model": "gpt-realtime-whisper"}, td={"type": "server_vad"})
    assert lenient.config.turn_detection["type"] == "server_vad"


@pytest.mark.parametrize("rate,code,words", [
    (16000, "integer_below_min_value", "Expected a value >= 24000, but got 16000"),
    (48000, "integer_above_max_value", "Expected a value <= 24000, but got 48000")])
def test_unsupported_rate_codes(rate, code, words):
    s = make()
    err = the_error(update(s, format={"type": "audio/pcm", "rate": rate}))
    assert err["code"] == code and words in err["message"]
    assert err["param"] == "session.audio.input.format.rate"
    err = the_error(update(make(lenient=True), format={"type": "audio/pcm", "rate": rate}))
    assert err["code"] == "invalid_value"


def test_clear_drops_a_dangling_half_sample():
    """3 bytes then CLEAR: the odd byte belongs to the cleared audio, so what follows is
    decoded on its own sample boundaries: the same samples as after 2 bytes and CLEAR."""
    import numpy as np

    tone = (np.sin(np.arange(2400) / 5.0) * 8000).astype("<i2").tobytes()

    def fed(s) -> bytes:
        out = append(s, tone)
        return b"".join(a.pcm.tobytes() for a in out if isinstance(a, FeedAudio))

    fresh = make()
    update(fresh, td=None)
    append(fresh, b"\x01\x02")
    fresh.receive(json.dumps({"type": "input_audio_buffer.clear"}))
    cleared = make()
    update(cleared, td=None)
    append(cleared, b"\x01\x02\x03")
    cleared.receive(json.dumps({"type": "input_audio_buffer.clear"}))
    got, want = fed(cleared), fed(fresh)
    assert want and got == want
