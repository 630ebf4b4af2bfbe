"""The whisper engine: verified weights, model choice, decoding, and the server path."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import shutil
import urllib.request
import wave
from pathlib import Path

import jiwer
import numpy as np
import pytest
import websockets

from spear_lab.server import engines, whisper_models
from spear_lab.server.embedded import EmbeddedServer
from spear_lab.server.engines import EngineUnavailable, engine_spec
from spear_lab.server.transcripts import LiveDeltas
from spear_lab.server.whisper import WhisperEngine
from spear_lab.server.whisper_models import (BUNDLED_SHA256, ModelIntegrityError,
                                             bundled_model_dir, resolve_model)

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def _librivox() -> list[tuple[np.ndarray, str]]:
    """The five LibriVox utterances of Debian's pocketsphinx-testdata (16 kHz)."""
    texts = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        words, _, fid = line.rpartition("(")
        texts[fid.strip(" )")] = words.replace("<s>", "").replace("</s>", "").strip()
    out = []
    for path in sorted(LIBRIVOX.glob("*.wav")):
        with wave.open(str(path)) as w:
            assert w.getframerate() == 16000
            out.append((np.frombuffer(w.readframes(w.getnframes()), np.int16), texts[path.stem]))
    return out


@pytest.fixture(scope="module")
def engine() -> WhisperEngine:
    return WhisperEngine(cpu_threads=2)


# ------------------------------------------------------------------ weights

def test_the_bundled_model_is_verified_by_its_pinned_hashes():
    info = resolve_model()
    assert info.name == "tiny.en" and info.source == "bundled"
    assert info.sha256 == BUNDLED_SHA256 and len(BUNDLED_SHA256) == 4
    assert info.describe()["verified_sha256"] is True


def test_a_tampered_model_file_is_refused_naming_the_file_and_both_hashes(tmp_path, monkeypatch):
    src = bundled_model_dir()
    for name in BUNDLED_SHA256:
        if name == "vocabulary.txt":
            data = bytearray((src / name).read_bytes())
            data[100] ^= 1
            (tmp_path / name).write_bytes(bytes(data))
        else:
            (tmp_path / name).symlink_to(src / name)
    monkeypatch.setattr(whisper_models, "bundled_model_dir", lambda: tmp_path)
    with pytest.raises(ModelIntegrityError) as err:
        resolve_model()
    msg = str(err.value)
    assert "vocabulary.txt" in msg and BUNDLED_SHA256["vocabulary.txt"] in msg
    got = msg.split("has SHA-256 ")[1].split(",")[0]
    assert len(got) == 64 and got != BUNDLED_SHA256["vocabulary.txt"]
    with pytest.raises(ModelIntegrityError):  # the server refuses it before any worker starts
        engine_spec("whisper")


def test_any_ctranslate2_model_directory_works(tmp_path):
    model = tmp_path / "my-model"
    shutil.copytree(bundled_model_dir(), model, symlinks=True)
    info = resolve_model(str(model))
    assert info.source == "directory" and info.path == model.resolve() and not info.sha256
    eng = WhisperEngine(str(model))
    assert eng.describe()["model"] == "my-model"


def test_a_model_name_not_in_the_local_cache_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(EngineUnavailable, match="nothing is downloaded"):
        resolve_model("base.en")
    with pytest.raises(EngineUnavailable, match="not a CTranslate2 Whisper model directory"):
        resolve_model(str(tmp_path))


# ------------------------------------------------------------------ the choice

def test_auto_prefers_whisper_and_falls_back_to_pocketsphinx_with_a_notice(monkeypatch, caplog):
    assert engine_spec("auto").factory == engines.WHISPER.factory
    assert engine_spec("faster-whisper").factory == engines.WHISPER.factory
    monkeypatch.setattr(engines, "whisper_available", lambda: "no faster-whisper here")
    with caplog.at_level(logging.WARNING, "spear_lab.server.engines"):
        spec = engine_spec("auto")
    assert spec.factory == engines.POCKETSPHINX.factory
    assert "no faster-whisper here" in caplog.text


def test_asking_for_whisper_where_it_cannot_load_is_an_error(monkeypatch):
    def missing(**_):
        raise EngineUnavailable("the whisper engine needs faster-whisper")
    monkeypatch.setattr(WhisperEngine, "check", classmethod(lambda cls, **kw: missing()))
    with pytest.raises(EngineUnavailable, match="needs faster-whisper"):
        engine_spec("whisper")
    with pytest.raises(ValueError, match="unknown recognition engine 'vosk'"):
        engine_spec("vosk")


# ------------------------------------------------------------------ decoding

def test_real_human_speech_is_recognised_well(engine):
    from whisper_normalizer.english import EnglishTextNormalizer
    norm = EnglishTextNormalizer()
    clips = _librivox()
    hyps = [engine.recognize(pcm).text for pcm, _ in clips]
    wer = jiwer.wer([norm(t) for _, t in clips], [norm(h) for h in hyps])
    assert wer <= 0.10, (wer, hyps)
    rec = engine.recognize(clips[1][0])
    assert rec.words and all(w.logprob <= 0 for w in rec.words)
    assert [w.start_ms for w in rec.words] == sorted(w.start_ms for w in rec.words)


@pytest.mark.parametrize("kind", ["silence", "white", "pink", "hum"])
def test_silence_and_noise_give_an_empty_transcript(engine, kind):
    rng = np.random.default_rng(7)
    n = 3 * 16000
    if kind == "silence":
        x = np.zeros(n)
    elif kind == "white":
        x = rng.standard_normal(n) * 3000
    elif kind == "pink":
        spec = np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.arange(1, n // 2 + 2))
        x = np.fft.irfft(spec, n)
        x *= 3000 / x.std()
    else:
        x = 4000 * np.sin(2 * np.pi * 50 * np.arange(n) / 16000)
    assert engine.recognize(x.astype(np.int16)).text == ""


def test_partials_come_from_pocketsphinx_and_the_final_from_whisper(engine):
    pcm, text = _librivox()[1]
    stream = engine.open_stream(partials=True)
    for i in range(0, len(pcm), 3200):
        stream.accept(pcm[i:i + 3200])
    assert stream.partial().split()  # a streaming hypothesis while "speech goes on"
    final = stream.finish().text
    assert final.lower().startswith("he was not")
    plain = engine.open_stream()
    plain.accept(pcm)
    assert plain.partial() == "" and plain.finish().text == final


def test_live_deltas_always_add_up_to_the_completed_transcript():
    live = LiveDeltas()
    emitted = []
    for partial in ("he was", "he was not an", "he was not an illness", "he was not an illness those"):
        emitted += live.partial(partial)
    assert "".join(emitted) == "he was not an illness"  # stable in two partials: sent
    pieces, completed = live.final("He was not an ill-disposed young man.")
    assert "".join(emitted + pieces) == completed  # what was sent cannot be taken back:
    assert completed == "he was not an illness young man."  # the final's rest follows it
    live = LiveDeltas()
    live.partial("the quick brown")
    live.partial("the quick brown fox jumps")
    pieces, completed = live.final("The quick brown fox jumps over the lazy dog.")
    assert completed == "the quick brown fox jumps over the lazy dog."
    assert "the quick brown" + "".join(pieces) == completed


# ------------------------------------------------------------------ through the server

PROFILES = ["gpt-4o-transcribe", "gpt-4o-mini-transcribe", "whisper-1", "gpt-live-transcribe",
            "gpt-realtime-whisper"]


async def _session(url: str, pcm16k: np.ndarray, model: str, td: dict | None) -> list[dict]:
    pcm = np.repeat(pcm16k, 3)[::2]  # 16 -> 24 kHz by sample-and-hold is enough for a check
    events = []
    async with websockets.connect(url, proxy=None, max_size=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "session.update", "session": {
            "type": "transcription", "audio": {"input": {
                "transcription": {"model": model}, "turn_detection": td}}}}))
        for i in range(0, len(pcm), 4800):
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(pcm[i:i + 4800].tobytes()).decode()}))
        if td is None:
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        try:
            while True:
                events.append(json.loads(await asyncio.wait_for(ws.recv(), 6)))
        except asyncio.TimeoutError:
            pass
    return events


@pytest.fixture(scope="module")
def whisper_server():
    with EmbeddedServer(engine="whisper", workers=1) as srv:
        yield srv


def _speech_with_pauses() -> np.ndarray:
    gap = np.zeros(16000, np.int16)
    parts = [gap]
    for pcm, _ in _librivox()[1:3]:
        parts += [pcm, gap]
    return np.concatenate(parts)


@pytest.mark.parametrize("model", PROFILES)
def test_deltas_concatenate_to_completed_for_every_profile(whisper_server, model):
    from spear_lab.server.config import MANUAL_COMMIT_MODELS
    manual = model in MANUAL_COMMIT_MODELS  # OpenAI refuses server_vad for these
    events = asyncio.run(_session(whisper_server.url, _speech_with_pauses(), model,
                                  None if manual else {"type": "server_vad",
                                                       "silence_duration_ms": 500}))
    assert not [e for e in events if e["type"] == "error"]
    done = [e for e in events if e["type"].endswith("transcription.completed")]
    assert len(done) == (1 if manual else 2), [e["type"] for e in events]
    for ev in done:
        deltas = [e["delta"] for e in events if e["type"].endswith("transcription.delta")
                  and e["item_id"] == ev["item_id"]]
        assert deltas and "".join(deltas) == ev["transcript"]
    text = " ".join(e["transcript"] for e in done).lower()
    assert "young man" in text and "selfish" in text, text


def test_semantic_vad_and_manual_commits_work_with_whisper(whisper_server):
    for td in ({"type": "semantic_vad", "eagerness": "high"}, None):
        events = asyncio.run(_session(whisper_server.url, _speech_with_pauses(),
                                      "gpt-4o-transcribe", td))
        text = " ".join(e["transcript"] for e in events
                        if e["type"].endswith("transcription.completed")).lower()
        assert "young man" in text and "selfish" in text, (td, text)


def test_noise_alone_gives_no_transcript_through_the_server(whisper_server):
    rng = np.random.default_rng(3)
    noise = (rng.standard_normal(4 * 16000) * 2500).astype(np.int16)
    events = asyncio.run(_session(whisper_server.url, noise, "gpt-4o-transcribe", None))
    done = [e for e in events if e["type"].endswith("transcription.completed")]
    assert len(done) == 1 and done[0]["transcript"] == ""
    assert not [e for e in events if e["type"].endswith("transcription.delta")]


def test_the_model_in_use_is_visible_in_the_server_info(whisper_server):
    url = f"http://127.0.0.1:{whisper_server.port}/v1/spear/info"
    info = json.loads(urllib.request.urlopen(url, timeout=10).read())
    rec = info["recognition"]
    assert rec["engine"] == "whisper" and rec["model"] == "tiny.en"
    assert rec["verified_sha256"] is True and rec["partials"] == "pocketsphinx"
    assert info == whisper_server.server.info()
