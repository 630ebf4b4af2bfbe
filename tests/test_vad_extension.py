"""The embedded server's VAD probabilities on the host side: the transport asks for them
only for the ``local`` backend, keeps them from the guest and gives them to the Trace."""

from __future__ import annotations

import json

import pytest

from spear_lab import explore
from spear_lab.session import Session
from spear_lab.trace import TraceCaps
from spear_lab.transports import protocol
from spear_lab.transports.protocol import VAD_PROBABILITIES, SessionRequest

TWO_SENTENCES = ["the weather is very nice today", "please call me back when you get home tonight"]


def test_vocabulary_matches_the_server():
    from spear_lab.server.config import VAD_PROBABILITIES as server_name

    assert VAD_PROBABILITIES == server_name == "spear.vad.probabilities"


def test_with_include_keeps_the_guests_values():
    cfg = SessionRequest(model="m", include=("item.input_audio_transcription.logprobs",))
    out = protocol.with_include(cfg, VAD_PROBABILITIES)
    assert out.include == ("item.input_audio_transcription.logprobs", VAD_PROBABILITIES)
    assert protocol.with_include(out, VAD_PROBABILITIES) is out
    assert protocol.with_include(SessionRequest(model="m"), VAD_PROBABILITIES).include == (VAD_PROBABILITIES,)


def test_host_only_event():
    ev = {"type": VAD_PROBABILITIES, "event_id": "event_1", "audio_start_ms": 64, "frame_ms": 32,
          "probabilities": [0.1, 0.97]}
    raw = json.dumps(ev, separators=(",", ":")).encode()
    assert protocol.host_only_event(raw) == ev
    assert protocol.host_only_event(b'{"type":"input_audio_buffer.committed","item_id":"x"}') is None
    assert protocol.host_only_event(raw.replace(b'"frame_ms":32,', b"")) is None  # malformed
    assert protocol.host_only_event(b'{"type":"spear.vad.probabilities"') is None  # not JSON


@pytest.fixture(scope="module")
def recording():
    return explore.generate(TWO_SENTENCES, pauses_ms=[800], lead_ms=400, tail_ms=1500)


def _wire_events(trace) -> list[dict]:
    return [json.loads(e["text"]) for e in trace.events() if e["what"] == "event"]


def test_guest_sees_the_openai_stream_and_the_trace_gets_probabilities(recording):
    with Session(mic=f"file:{recording.wav()}", trace_caps=TraceCaps(event_text=1 << 20)) as s:
        res = s.run("realtime_asr", backend="local", timeout=120)
        assert res.exit_code == 0, res.stdout
        trace = s.trace
    events = _wire_events(trace)  # exactly what was queued for the guest
    types = [e["type"] for e in events]
    assert "input_audio_buffer.speech_started" in types and "session.updated" in types
    assert not [t for t in types if t.startswith("spear.")]
    assert all(VAD_PROBABILITIES not in e["text"] for e in trace.events())
    for e in events:
        if e["type"] in ("session.created", "session.updated"):
            assert VAD_PROBABILITIES not in e["session"]["include"]
    frames = trace.vad()
    assert frames and {f["frame_ms"] for f in frames} == {32.0}  # the default VAD: Silero
    assert [f["audio_ms"] for f in frames] == [32.0 * i for i in range(len(frames))]
    assert len(frames) * 32 >= recording.duration_ms - 200
    # speech frames where the utterances are, quiet ones in the lead-in
    (a, b), _ = recording.regions_ms()
    inside = [f["probability"] for f in frames if a + 100 <= f["audio_ms"] <= b - 100]
    lead = [f["probability"] for f in frames if f["audio_ms"] + 32 <= a - 100]
    assert sum(p > 0.5 for p in inside) > 0.8 * len(inside) and max(lead) < 0.5
    started = [e for e in events if e["type"] == "input_audio_buffer.speech_started"]
    first = started[0]["audio_start_ms"] + 300  # padding removed: the first speech frame
    assert next(f for f in frames if f["probability"] >= 0.5)["audio_ms"] == pytest.approx(first, abs=32)
    assert {r["kind"] for r in trace.records(("vad",))} == {"vad"}


def test_only_the_embedded_backend_is_asked():
    from test_ws_support import ws_fd

    from spear_lab import Host
    from spear_lab.host import HostConfig
    from spear_lab.transports.backends import route

    h = Host(HostConfig(backends={"backends": {"lab": {"url": "ws://127.0.0.1:9"},
                                              "local": {"url": "embedded"}}}))
    try:
        lab = route(h.table.get(ws_fd(h, backend="lab")), h.context, h.context.connector.embedded)
        local = route(h.table.get(ws_fd(h, backend="local")), h.context, h.context.connector.embedded)
        guest = route(h.table.get(ws_fd(h, backend="lab", include=VAD_PROBABILITIES)), h.context, h.context.connector.embedded)
    finally:
        h.shutdown()
    assert not lab.vad_probabilities and lab.config.include is None
    assert local.vad_probabilities and local.config.include == (VAD_PROBABILITIES,)
    assert local._hide_vad
    # a guest may ask a server of its own; the host then neither adds nor hides anything
    assert not guest.vad_probabilities and guest.config.include == (VAD_PROBABILITIES,)
