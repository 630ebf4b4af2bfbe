"""Silero VAD: the estimator, its frame geometry in turn detection, the server option,
and the ``spear.vad.probabilities`` wire extension (real model, real WebSocket)."""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np
import pytest

from spear_lab.server import silero
from spear_lab.server.app import RealtimeServer, ServerOptions
from spear_lab.server.audio import Resampler
from spear_lab.server.cli import main as serve_main
from spear_lab.server.config import VAD_PROBABILITIES
from spear_lab.server.embedded import EmbeddedServer
from spear_lab.server.protocol import TranscriptionSession
from spear_lab.server.silero import SileroSpeechProbability, SileroUnavailable
from spear_lab.server.turns import SpeechStart, SpeechStop, TurnDetector
from spear_lab.server.vad import SpeechProbability, new_estimator, resolve_vad
from spear_lab.testaudio import add_noise

from srvkit import Client, b64, ga_update

pytestmark = pytest.mark.skipif(silero.unavailable_reason() is not None,
                                reason=f"Silero unavailable: {silero.unavailable_reason()}")


@pytest.fixture(scope="module")
def speech16(speech) -> np.ndarray:
    return Resampler(24000, 16000).process(speech.pcm)


def _frames(est, pcm: np.ndarray, sizes) -> np.ndarray:
    out, i, k = [], 0, 0
    while i < len(pcm):
        n = sizes[k % len(sizes)]
        out.append(est.process(pcm[i:i + n]))
        i, k = i + n, k + 1
    return np.concatenate(out)


# ---------------------------------------------------------------- the estimator

def test_geometry_and_frame_count(speech16):
    est = SileroSpeechProbability()
    assert (est.frame_ms, est.lookahead_ms) == (32, 0)
    assert (SpeechProbability.frame_ms, SpeechProbability.lookahead_ms) == (10, 15)
    assert len(est.process(np.zeros(511, np.int16))) == 0
    assert len(est.process(np.zeros(1, np.int16))) == 1
    probs = est.process(speech16[:16000])
    assert len(probs) == (512 + 16000) // 512 - 1 and est.frames == 1 + len(probs)
    assert probs.dtype == np.float64 and ((probs >= 0) & (probs <= 1)).all()


def test_chunking_independent_and_deterministic(speech16):
    pcm = speech16[:16000 * 8]
    whole = SileroSpeechProbability().process(pcm)
    assert len(whole) == len(pcm) // 512
    for sizes in ([1], [7, 513, 160, 2000], [480], [100000]):
        got = _frames(SileroSpeechProbability(), pcm[:20000] if sizes == [1] else pcm, sizes)
        assert np.array_equal(got, whole[:len(got)]), sizes
    assert np.array_equal(SileroSpeechProbability().process(pcm), whole)


def test_estimators_share_the_model_not_the_state(speech16):
    a, b = SileroSpeechProbability(), SileroSpeechProbability()
    assert a._session is b._session is silero.shared_session()
    a.process(speech16[:16000 * 3])  # a's state must not leak into b
    assert np.array_equal(b.process(speech16[:16000]),
                          SileroSpeechProbability().process(speech16[:16000]))


def test_silence_low_speech_high(speech, speech16):
    probs = SileroSpeechProbability().process(speech16)
    t = (np.arange(len(probs)) + 0.5) * 0.032
    inside = np.zeros(len(probs), bool)
    gap = np.ones(len(probs), bool)
    for s, e, _ in speech.segments:
        inside |= (t > s + 0.1) & (t < e - 0.1)
        gap &= ~((t > s - 0.15) & (t < e + 0.25))
    assert np.mean(probs[inside] > 0.5) > 0.85
    assert np.mean(probs[gap] < 0.5) > 0.95
    quiet = SileroSpeechProbability().process(np.zeros(16000 * 3, np.int16))
    assert quiet.max() < 0.1
    rng = np.random.default_rng(3)
    hiss = (rng.standard_normal(16000 * 3) * 300).astype(np.int16)
    assert np.mean(SileroSpeechProbability().process(hiss)) < 0.2


# ---------------------------------------------------------------- geometry in the turns

def test_turn_detector_with_32ms_frames():
    det = TurnDetector.for_estimator(SileroSpeechProbability(), threshold=0.5,
                                     prefix_padding_ms=100, end_wait_ms=200)
    assert (det.frame_ms, det.lookahead_ms) == (32, 0)
    probs = [0.0] * 10 + [0.9] * 5 + [0.1] * 7
    evs = det.feed(probs)
    # frame 10 stands for [320, 352): speech starts there; the last speech frame ends at 480
    assert evs[0] == SpeechStart(320, 220)
    # stop once 200 ms passed after 480: the frame ending at 704 (7 frames of 32 ms)
    assert evs[1] == SpeechStop(480, 704) and len(evs) == 2
    assert det.position_ms == 22 * 32
    stat = TurnDetector.for_estimator(SpeechProbability())
    assert (stat.frame_ms, stat.lookahead_ms) == (10, 15)
    with pytest.raises(ValueError):
        TurnDetector(frame_ms=0)


def test_session_uses_estimator_geometry():
    assert TranscriptionSession(vad="silero")._turns.frame_ms == 32
    assert TranscriptionSession()._turns.frame_ms == 10  # the sans-I/O default is unchanged
    with pytest.raises(ValueError, match="unknown VAD"):
        new_estimator("webrtc")


# ---------------------------------------------------------------- option, auto, explicit error

@pytest.fixture
def model_missing(monkeypatch):
    """Silero as on a machine without the model file: a package that lacks it."""
    monkeypatch.setattr(silero, "_session", None)
    monkeypatch.setattr(silero, "MODEL_PACKAGE", "json")
    return "json"


def test_option_resolution():
    assert resolve_vad("auto") == "silero"
    assert resolve_vad("silero") == "silero"
    assert resolve_vad("statistical") == "statistical"
    with pytest.raises(ValueError, match="vad must be one of"):
        resolve_vad("webrtc")
    assert RealtimeServer(ServerOptions(vad="statistical", workers=1)).vad == "statistical"
    assert RealtimeServer(ServerOptions(workers=1)).vad == "silero"


def test_auto_falls_back_with_one_notice(model_missing, caplog):
    with caplog.at_level(logging.WARNING, logger="spear_lab.server.vad"):
        assert resolve_vad("auto") == "statistical"
    notes = [r.getMessage() for r in caplog.records if r.name == "spear_lab.server.vad"]
    assert len(notes) == 1 and "silero_vad_v6.onnx" in notes[0] and "statistical" in notes[0]


def test_explicit_silero_that_cannot_load_is_an_error(model_missing, capsys):
    with pytest.raises(SileroUnavailable, match="silero_vad_v6.onnx"):
        resolve_vad("silero")
    with pytest.raises(SileroUnavailable, match="model not found"):
        RealtimeServer(ServerOptions(vad="silero", workers=1))
    with pytest.raises(SileroUnavailable):
        EmbeddedServer(vad="silero", workers=1).start()
    assert serve_main(["serve", "--port", "0", "--vad", "silero"]) == 2
    assert "Silero VAD model not found" in capsys.readouterr().err


# ---------------------------------------------------------------- the wire extension

async def _run(url: str, pcm: bytes, include: list[str] | None) -> list[dict]:
    c = await Client.open(url)
    try:
        await c.recv()
        # no transcription: the VAD alone is under test (no recogniser needed)
        upd = ga_update({"type": "server_vad", "silence_duration_ms": 500}, transcription=None)
        if include is not None:
            upd["session"]["include"] = include
        await c.send(upd)
        updated = await c.recv()
        assert updated["type"] == "session.updated", updated
        await c.stream(pcm)
        await c.until("input_audio_buffer.committed", timeout=60)
        await c.send(ga_update())  # barrier: flushes any probabilities not yet reported
        await c.until("session.updated")
        return c.events
    finally:
        await c.close()


def test_probabilities_on_the_wire_only_when_asked(server, one_sentence):
    pcm16 = Resampler(24000, 16000).process(np.frombuffer(one_sentence, np.int16))
    expected = SileroSpeechProbability().process(pcm16)
    events = asyncio.run(_run(server.url, one_sentence, [VAD_PROBABILITIES]))
    vad = [e for e in events if e["type"] == VAD_PROBABILITIES]
    assert len(vad) >= 3  # batched: ~0.5 s each, not one per frame
    assert all(set(e) == {"type", "event_id", "audio_start_ms", "frame_ms", "probabilities"}
               for e in vad)
    assert all(e["frame_ms"] == 32 for e in vad)
    pos = 0
    for e in vad:  # contiguous, in audio ms
        assert e["audio_start_ms"] == pos
        pos += 32 * len(e["probabilities"])
    probs = [p for e in vad for p in e["probabilities"]]
    assert len(probs) == len(expected)
    assert np.allclose(probs, np.round(expected, 3), atol=1e-9)
    kinds = [e["type"] for e in events]
    started = kinds.index("input_audio_buffer.speech_started")
    start_ms = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    before = [p for e in vad[:sum(1 for k in kinds[:started] if k == VAD_PROBABILITIES)]
              for p in e["probabilities"]]
    # the frame that started speech was reported before speech_started
    assert len(before) * 32 >= start_ms["audio_start_ms"] + 300 and max(before) >= 0.5
    assert max(probs) > 0.9 and min(probs) < 0.1

    plain = asyncio.run(_run(server.url, one_sentence, None))
    assert not [e for e in plain if e["type"].startswith("spear.")]
    logprobs = asyncio.run(_run(server.url, one_sentence,
                                ["item.input_audio_transcription.logprobs"]))
    assert not [e for e in logprobs if e["type"].startswith("spear.")]


def test_include_validation_stays_strict(server):
    async def go():
        c = await Client.open(server.url)
        try:
            await c.recv()
            upd = ga_update()
            upd["session"]["include"] = [VAD_PROBABILITIES, "spear.vad.other"]
            await c.send(upd)
            return await c.recv()
        finally:
            await c.close()
    err = asyncio.run(go())
    assert err["type"] == "error" and err["error"]["param"] == "session.include[1]"
    assert err["error"]["message"] == ("Invalid value: 'spear.vad.other'. Supported values are: "
                                       "'item.input_audio_transcription.logprobs'.")


def test_threshold_is_silero_probability(speech):
    """Sans-I/O: speech starts at the first 32 ms frame whose Silero probability reaches
    ``threshold`` (prefix padding before it), for every threshold."""
    noisy = add_noise(speech, 0, "pink", seed=2).pcm[:24000 * 4]
    probs = SileroSpeechProbability().process(Resampler(24000, 16000).process(noisy))
    for thr in (0.3, 0.5, 0.7, 0.9):
        sess = TranscriptionSession(vad="silero")
        sess.receive(json.dumps(ga_update({"type": "server_vad", "threshold": thr,
                                           "prefix_padding_ms": 100}, transcription=None)))
        evs = []
        for i in range(0, len(noisy), 4800):
            evs += sess.receive(json.dumps({"type": "input_audio_buffer.append",
                                            "audio": b64(noisy[i:i + 4800].tobytes())}))
        started = [a.event for a in evs if getattr(a, "event", {}).get("type")
                   == "input_audio_buffer.speech_started"]
        first = int(np.argmax(probs >= thr))
        assert probs[first] >= thr and started, thr
        assert started[0]["audio_start_ms"] == first * 32 - 100, thr
