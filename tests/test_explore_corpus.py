"""Segmentation explorer corpora: the espeak-ng generator knows its ground truth, user
recordings load with their regions, generated audio is deterministic and cached."""

import wave

import numpy as np
import pytest

from spear_lab.explore import corpus as K
from spear_lab.testaudio import write_wav

SENTS = ["the weather is very nice today", "please call me back tonight"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEAR_LAB_CACHE", str(tmp_path / "cache"))


def frame_rms(pcm, start, end, frame=240):
    x = pcm[start:end].astype(np.float64)
    n = len(x) // frame * frame
    return np.sqrt((x[:n].reshape(-1, frame) ** 2).mean(axis=1))


def test_clean_regions_are_exactly_where_the_energy_is():
    rec = K.generate(SENTS, pauses_ms=400, lead_ms=300, tail_ms=500)
    (a0, b0), (a1, b1) = [(u.start, u.end) for u in rec.utterances]
    assert a0 == 7200                        # 300 ms of lead at 24 kHz
    assert a1 - b0 == 9600                   # exactly 400 ms between the audible parts
    assert len(rec.pcm) - b1 == 12000        # 500 ms of tail
    outside = np.concatenate([rec.pcm[:a0], rec.pcm[b0:a1], rec.pcm[b1:]])
    assert not outside.any()                 # digital silence outside the regions
    for a, b in ((a0, b0), (a1, b1)):
        # the region's first and last samples are speech (above the trim level) ...
        peak = int(np.abs(rec.pcm[a:b].astype(np.int32)).max())
        assert abs(int(rec.pcm[a])) > K.TRIM_REL * peak and abs(int(rec.pcm[b - 1])) > K.TRIM_REL * peak
        # ... and most 10 ms frames inside carry energy
        rms = frame_rms(rec.pcm, a, b)
        assert (rms > 100).mean() > 0.8
    assert rec.text == " ".join(SENTS)
    assert rec.regions_ms()[0] == (300.0, b0 / 24.0)


def test_noise_is_mixed_at_the_requested_snr_and_is_deterministic():
    clean = K.generate(SENTS, pauses_ms=400, cache=False)
    for kind in ("white", "pink"):
        noisy = K.generate(SENTS, pauses_ms=400, snr_db=10, noise=kind, seed=3, cache=False)
        again = K.generate(SENTS, pauses_ms=400, snr_db=10, noise=kind, seed=3, cache=False)
        assert np.array_equal(noisy.pcm, again.pcm)
        assert [(u.start, u.end) for u in noisy.utterances] == [(u.start, u.end) for u in clean.utterances]
        speech = np.concatenate([clean.pcm[u.start:u.end] for u in clean.utterances]).astype(np.float64)
        noise = noisy.pcm.astype(np.float64) - clean.pcm.astype(np.float64)
        snr = 10 * np.log10(np.mean(speech ** 2) / np.mean(noise ** 2))
        assert snr == pytest.approx(10.0, abs=0.1)
    other = K.generate(SENTS, pauses_ms=400, snr_db=10, seed=4, cache=False)
    assert not np.array_equal(other.pcm, noisy.pcm)


def test_generated_recordings_are_cached(tmp_path):
    first = K.generate(SENTS, pauses_ms=[500])
    assert first.path is not None and first.path.is_file()
    second = K.generate(SENTS, pauses_ms=[500])
    assert second.path == first.path and second.digest == first.digest
    assert second.utterances == first.utterances
    with wave.open(str(first.path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)


def test_noise_levels_share_speech_and_name_themselves():
    recs = K.noise_levels([None, 20], SENTS[:1], pauses_ms=300)
    assert [r.name for r in recs] == ["clean", "pink20dB"]
    assert recs[0].utterances == recs[1].utterances


def test_load_recording_resamples_and_pairs_lines_with_regions(tmp_path):
    rate = 16000
    t = np.arange(rate * 2) / rate
    mono = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    path = tmp_path / "talk.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(mono, 2).astype("<i2").tobytes())
    (tmp_path / "talk.txt").write_text("Hello there.\nGeneral Kenobi!\n")
    (tmp_path / "talk.csv").write_text("start,end\n0.10,0.80\n1.00,1.90\n")
    rec = K.load_recording(path, tmp_path / "talk.txt", tmp_path / "talk.csv")
    assert rec.rate == 24000 and abs(len(rec.pcm) - 48000) <= 2
    assert [(u.text, u.start, u.end) for u in rec.utterances] == [
        ("Hello there.", 2400, 19200), ("General Kenobi!", 24000, 45600)]
    assert rec.wav().is_file() and rec.wav() != path      # converted copy in the cache
    assert rec.name == "talk"


def test_load_recording_regions_with_text_column_and_without_regions(tmp_path):
    path = write_wav(tmp_path / "a.wav", np.zeros(24000, np.int16))
    (tmp_path / "r.csv").write_text("0.0,0.4,one two\n0.5,0.9,three\n")
    rec = K.load_recording(path, "ignored text", tmp_path / "r.csv")
    assert [u.text for u in rec.utterances] == ["one two", "three"]
    assert rec.path == path                               # already 24 kHz mono: used as is
    bare = K.load_recording(path, "just some words")
    assert not bare.has_regions and bare.regions_ms() == [] and bare.text == "just some words"


def test_words_are_shared_over_regions_by_duration():
    # 8 equal words over regions of 1 and 3 time units: 2 and 6 words
    words = ["abcd"] * 8
    assert [len(s.split()) for s in K._share_words(words, [1, 3])] == [2, 6]
