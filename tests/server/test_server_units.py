"""Units: audio decoding/resampling, VAD, turn rules, transcripts, engines."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from spear_lab.server import audio, transcripts as tx
from spear_lab.server.audio import InputDecoder, Resampler, fold_spectrum
from spear_lab.server.engines import (PocketSphinxEngine,
                                      Recognition, Word)
from spear_lab.server.turns import SpeechStart, SpeechStop, TurnDetector
from spear_lab.server.vad import SpeechProbability


# ---------------------------------------------------------------- audio

def sox(args: list[str], data: bytes) -> bytes:
    return subprocess.run(["sox", "-D", *args], input=data, check=True, capture_output=True).stdout


@pytest.mark.parametrize("enc,fn", [("u-law", audio.ulaw_to_linear), ("a-law", audio.alaw_to_linear)])
def test_g711_decoding_matches_sox(enc, fn):
    codes = bytes(range(256))
    ref = np.frombuffer(sox(["-t", "raw", "-e", enc, "-c", "1", "-r", "8000", "-", "-t", "raw",
                             "-e", "signed", "-b", "16", "-"], codes), "<i2")
    assert np.array_equal(fn(codes), ref)


def test_resampler_matches_sox_and_ignores_chunking(one_sentence):
    x = np.frombuffer(one_sentence, "<i2")
    whole = Resampler(24000, 16000).process(x)
    r = Resampler(24000, 16000)
    pieces = np.concatenate([r.process(x[i:i + 333]) for i in range(0, len(x), 333)])
    assert np.array_equal(whole, pieces)
    assert abs(len(whole) - len(x) * 2 // 3) <= 1
    ref = np.frombuffer(sox(["-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r", "24000", "-",
                             "-t", "raw", "-r", "16000", "-"], one_sentence), "<i2")
    lag = round(Resampler(24000, 16000).delay_ms * 16)
    n = min(len(ref), len(whole) - lag) - 100
    corr = np.corrcoef(ref[100:n].astype(float), whole[100 + lag:n + lag].astype(float))[0, 1]
    assert corr > 0.99


def test_resampler_passband_and_stopband():
    t = np.arange(24000) / 24000
    r = Resampler(24000, 16000)
    tone = r.process((10000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16))
    assert 9500 < np.abs(tone[1000:]).max() < 10500
    alias = Resampler(24000, 16000).process((10000 * np.sin(2 * np.pi * 10000 * t)).astype(np.int16))
    assert np.abs(alias[1000:]).max() < 300  # 10 kHz is above the new Nyquist


def test_input_decoder_carries_odd_bytes_and_counts_input_time():
    d = InputDecoder("pcm16")
    data = (np.arange(4800, dtype=np.int16) * 3).tobytes()
    a = np.concatenate([d.decode(data[:4801]), d.decode(data[4801:])])
    b = InputDecoder("pcm16").decode(data)
    assert np.array_equal(a, b) and d.ms_in == pytest.approx(200.0)
    assert InputDecoder("g711_alaw").decode(bytes(800)).shape == (1600,)
    with pytest.raises(ValueError):
        InputDecoder("mp3")


def test_fold_spectrum_mirrors_and_is_chunk_invariant():
    x = (1000 * np.sin(2 * np.pi * 1000 * np.arange(1600) / 16000)).astype(np.int16)
    y = fold_spectrum(x, 0)
    spec = np.abs(np.fft.rfft(y))
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    assert spec[np.argmin(abs(freqs - 7000))] > 0.5 * spec[np.argmin(abs(freqs - 1000))]
    assert np.array_equal(np.concatenate([fold_spectrum(x[:801], 0), fold_spectrum(x[801:], 801)]), y)


# ---------------------------------------------------------------- VAD

def test_vad_probabilities_are_probabilities_and_chunk_invariant(speech):
    pcm = Resampler(24000, 16000).process(speech.pcm)
    p1 = SpeechProbability().process(pcm)
    est = SpeechProbability()
    p2 = np.concatenate([est.process(pcm[i:i + 777]) for i in range(0, len(pcm), 777)])
    assert np.allclose(p1, p2)
    assert ((p1 >= 0) & (p1 <= 1)).all()
    assert len(p1) == 1 + (len(pcm) - 400) // 160


def test_vad_is_high_in_speech_and_low_in_pauses(speech):
    from spear_lab.testaudio import add_noise
    for tr, inside_min in ((speech, 0.9), (add_noise(speech, 10, "white", seed=2), 0.7)):
        p = SpeechProbability().process(Resampler(24000, 16000).process(tr.pcm))
        t = np.arange(len(p)) * 0.01 + 0.0125  # frame centres (s)
        inside = np.zeros(len(p), bool)
        pause = np.ones(len(p), bool)
        for s, e, _ in tr.segments:
            inside |= (t > s + 0.1) & (t < e - 0.1)
            pause &= ~((t > s - 0.3) & (t < e + 0.3))
        pause &= t > 0.3
        assert (p[inside] >= 0.5).mean() > inside_min  # (noise masks weak consonants)
        assert p[pause].mean() < 0.05 and (p[pause] >= 0.5).sum() == 0


def test_turn_detector_rules():
    shifted = TurnDetector(threshold=0.5, prefix_padding_ms=300, end_wait_ms=200)
    assert shifted.feed([0.0] * 50 + [0.9]) == [SpeechStart(515, 215)]  # 15 ms window lookahead
    det = TurnDetector(threshold=0.5, prefix_padding_ms=300, end_wait_ms=200, lookahead_ms=0)
    probs = [0.0] * 50 + [0.9] * 30 + [0.1] * 19
    assert det.feed(probs) == [SpeechStart(500, 200)]
    assert det.feed([0.2]) == [SpeechStop(800, 1000)]  # 20 frames of 10 ms after the last speech
    assert det.feed([0.49] * 100) == []
    det.reset(floor_ms=1900)
    assert det.feed([0.5]) == [SpeechStart(2000, 1900)]  # padding stops at the floor
    det.skip(10)
    assert not det.in_speech and det.position_ms == 2110


# ---------------------------------------------------------------- transcripts

def test_profiles():
    assert tx.profile_for("whisper-1") == tx.Profile("single", "duration")
    assert tx.profile_for("gpt-realtime-whisper").deltas == "live"
    assert tx.profile_for("gpt-4o-mini-transcribe").deltas == "after_commit"
    assert tx.profile_for("anything-else").deltas == "after_commit"


def test_split_deltas_and_usage():
    assert tx.split_deltas("a bc d") == ["a", " bc", " d"]
    assert tx.split_deltas("a bc d", "a") == [" bc", " d"]
    assert tx.split_deltas("x", "a") == []
    u = tx.usage("tokens", 2500, "hello world", "words")
    assert u["input_token_details"] == {"text_tokens": 2, "audio_tokens": 25}
    assert u["total_tokens"] == 25 + 2 + 3
    assert tx.usage("duration", 1234, "", None) == {"type": "duration", "seconds": 1.234}


def test_logprob_entries():
    rec = Recognition("hé you", (Word("hé", -0.5, 0, 10), Word("you", -1.0, 10, 20)))
    lp = tx.logprobs(rec)
    assert lp[0] == {"token": "hé", "logprob": -0.5, "bytes": list("hé".encode())}
    assert lp[1]["token"] == " you"


# ---------------------------------------------------------------- engines

def test_pocketsphinx_stream_is_reproducible_and_carries_state(one_sentence):
    pcm = Resampler(24000, 16000).process(np.frombuffer(one_sentence, "<i2"))
    eng = PocketSphinxEngine()

    def run(state=None, chunk=1600):
        s = eng.open_stream(state=state)
        for i in range(0, len(pcm), chunk):
            s.accept(pcm[i:i + chunk])
        partial = s.partial()
        return partial, s.finish()
    p1, r1 = run()
    p2, r2 = run(chunk=555)
    assert r1 == r2 and p1
    assert "quick brown fox" in r1.text
    assert [w.text for w in r1.words] == r1.text.split()
    assert all(w.logprob <= 0 and w.end_ms > w.start_ms for w in r1.words)
    assert isinstance(r1.state, str) and r1.state != eng.initial_cmn
    _, r3 = run(state=r1.state)
    assert r3.text  # adapted state is accepted
    s = eng.open_stream()
    s.close()
    s.close()
    assert eng.open_stream().finish().text == ""  # empty utterance
