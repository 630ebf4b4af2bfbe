"""The client-side protocol builders (sans I/O): exact bytes, splitting, URLs, headers."""

from __future__ import annotations

import base64
import json

import pytest

from spear_lab.fds import rtasr
from spear_lab.fds.segmentation import Segmentation, turn_detection
from spear_lab.transports import protocol
from spear_lab.transports.protocol import BETA, GA, SessionRequest

GA_SERVER_VAD = (
    b'{"session":{"audio":{"input":{"format":{"rate":24000,"type":"audio/pcm"},"noise_reduction":null,'
    b'"transcription":{"model":"gpt-4o-mini-transcribe"},"turn_detection":{"prefix_padding_ms":300,'
    b'"silence_duration_ms":500,"threshold":0.5,"type":"server_vad"}}},"type":"transcription"},'
    b'"type":"session.update"}'
)
BETA_MANUAL = (
    b'{"session":{"input_audio_format":"pcm16","input_audio_noise_reduction":null,'
    b'"input_audio_transcription":{"model":"whisper-1"},"turn_detection":null},'
    b'"type":"transcription_session.update"}'
)


def test_ga_session_update_default_segmentation():
    td = turn_detection(Segmentation())
    assert protocol.session_update(GA, SessionRequest("gpt-4o-mini-transcribe"), td) == GA_SERVER_VAD


def test_beta_session_update_manual():
    assert protocol.session_update(BETA, SessionRequest("whisper-1"), None) == BETA_MANUAL


def test_session_config_from_params_all_fields():
    cfg = SessionRequest.from_params(
        {"language": "de", "prompt": "Namen: Ada", "noise_reduction": "far_field",
         "include": ["item.input_audio_transcription.logprobs"], "other": 1}, "gpt-4o-transcribe")
    out = json.loads(protocol.session_update(GA, cfg, None))
    assert out["session"]["audio"]["input"]["transcription"] == {
        "language": "de", "model": "gpt-4o-transcribe", "prompt": "Namen: Ada"}
    assert out["session"]["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
    assert out["session"]["include"] == ["item.input_audio_transcription.logprobs"]
    beta = json.loads(protocol.session_update(BETA, cfg, None))["session"]
    assert beta["input_audio_noise_reduction"] == {"type": "far_field"}
    assert beta["input_audio_transcription"]["language"] == "de"
    assert beta["include"] == ["item.input_audio_transcription.logprobs"]


def test_session_config_ignores_wrong_types():
    cfg = SessionRequest.from_params({"language": 3, "prompt": None, "noise_reduction": 5, "include": [1]}, "m")
    assert cfg == SessionRequest("m")
    obj = SessionRequest.from_params({"noise_reduction": {"type": "near_field"}, "include": "x"}, "m")
    assert obj.noise_reduction == {"type": "near_field"} and obj.include == ("x",)


def test_turn_detection_updates_carry_only_turn_detection():
    assert protocol.turn_detection_update(GA, None) == (
        b'{"session":{"audio":{"input":{"turn_detection":null}},"type":"transcription"},"type":"session.update"}')
    assert protocol.turn_detection_update(BETA, {"type": "server_vad"}) == (
        b'{"session":{"turn_detection":{"type":"server_vad"}},"type":"transcription_session.update"}')


def test_control_texts_match_the_fd():
    assert protocol.COMMIT == rtasr.COMMIT and protocol.CLEAR == rtasr.CLEAR


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 6, 7, 959, 960, 4801])
def test_append_round_trip(n):
    audio = bytes((i * 7 + 3) % 256 for i in range(n))
    events = list(protocol.append_events(audio))
    assert len(events) == (1 if n else 0)
    decoded = b""
    for ev in events:
        obj = json.loads(ev)
        assert obj["type"] == "input_audio_buffer.append"
        assert len(obj["audio"]) % 4 == 0  # standard base64 with padding
        decoded += base64.b64decode(obj["audio"], validate=True)
    assert decoded == audio


def test_append_split_respects_the_event_limit():
    limit = 200
    audio = bytes(range(256)) * 3
    events = list(protocol.append_events(audio, max_event_bytes=limit))
    assert len(events) > 1
    assert all(len(ev) <= limit for ev in events)
    pieces = [base64.b64decode(json.loads(ev)["audio"]) for ev in events]
    assert b"".join(pieces) == audio
    assert all(len(p) % 6 == 0 for p in pieces[:-1])  # whole samples, whole base64 quanta


def test_default_append_chunk_fits_15_mib():
    chunk = protocol.append_chunk_bytes()
    assert chunk % 6 == 0
    size = len(b'{"audio":"","type":"input_audio_buffer.append"}') + chunk // 3 * 4
    assert size <= 15 * 1024 * 1024 < size + 8  # as large as possible
    with pytest.raises(ValueError):
        protocol.append_chunk_bytes(40)


@pytest.mark.parametrize("text,ok", [
    (b'{"type":"input_audio_buffer.commit"}', True),
    (b'{"event_id":"e","type":"x"}', True),
    (b'[1,2]', False),
    (b'"session.update"', False),
    (b'{"foo":1}', False),
    (b'{"type":5}', False),
    (b'not json', False),
])
def test_invalid_event_reason(text, ok):
    assert (protocol.invalid_event_reason(text) is None) == ok
    assert (protocol.event_type(text) is not None) == ok


def test_error_event_shape():
    ev = json.loads(protocol.error_event("The 'type' field is missing."))
    assert ev == {"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_event",
                                             "message": "The 'type' field is missing.", "param": None}}


def test_handshake_headers():
    assert protocol.handshake_headers(GA, None) == []
    assert protocol.handshake_headers(GA, "k") == [("Authorization", "Bearer k")]
    assert protocol.handshake_headers(BETA, None) == [("OpenAI-Beta", "realtime=v1")]
    with pytest.raises(ValueError):
        protocol.handshake_headers("v2", None)


@pytest.mark.parametrize("base,url", [
    ("https://api.openai.com/v1", "wss://api.openai.com/v1/realtime?intent=transcription"),
    ("http://127.0.0.1:8765", "ws://127.0.0.1:8765/v1/realtime?intent=transcription"),
    ("ws://127.0.0.1:8765/", "ws://127.0.0.1:8765/v1/realtime?intent=transcription"),
    ("wss://h/v1/realtime?model=gpt-realtime", "wss://h/v1/realtime?model=gpt-realtime"),
    ("ws://[::1]:9/base", "ws://[::1]:9/base/v1/realtime?intent=transcription"),
])
def test_realtime_url(base, url):
    assert protocol.realtime_url(base) == url


@pytest.mark.parametrize("bad", ["ftp://h/x", "ws:///nohost", "embedded"])
def test_realtime_url_rejects(bad):
    with pytest.raises(ValueError):
        protocol.realtime_url(bad)


def test_redact_url_drops_query_and_userinfo():
    assert protocol.redact_url("wss://user:pw@h:9/v1/realtime?api_key=zzz") == "wss://h:9/v1/realtime"
