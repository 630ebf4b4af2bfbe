"""Corpora from folders and CSV manifests: resampling, channel mixing, bad files rejected by
name without losing the rest."""

import wave

import numpy as np
import pytest

from spear_lab import explore
from spear_lab.testaudio import RATE


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEAR_LAB_CACHE", str(tmp_path / "cache"))


def tone(rate, seconds=1.0, f=440.0):
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * f * t))


def write(path, x, rate, channels=1, width=2):
    x = np.repeat(x[:, None], channels, axis=1).ravel()
    if width == 2:
        raw = np.rint(x * 32767).astype("<i2").tobytes()
    elif width == 3:
        v = np.rint(x * 8388607).astype(np.int32)
        raw = np.stack([v & 255, (v >> 8) & 255, (v >> 16) & 255], axis=1).astype(np.uint8).tobytes()
    else:
        raise ValueError(width)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)


def test_load_corpus_from_a_directory(tmp_path):
    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    write(d / "a.wav", tone(16000), 16000)                          # 16 kHz mono
    (d / "a.txt").write_text("hello world\n")
    write(d / "sub" / "b.wav", tone(44100, 2.0), 44100, channels=2)  # 44.1 kHz stereo
    (d / "sub" / "b.txt").write_text("first part\nsecond part\n")
    (d / "sub" / "b.regions.csv").write_text("start,end\n0.1,0.8\n1.0,1.9\n")
    write(d / "c.wav", tone(8000), 8000, channels=3, width=3)       # 8 kHz, 3 channels, 24-bit
    (d / "c.txt").write_text("three channels")
    (d / "notext.wav").write_bytes((d / "a.wav").read_bytes())      # no transcript
    (d / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")   # not a WAV
    (d / "broken.txt").write_text("x")
    write(d / "late.wav", tone(24000), 24000)
    (d / "late.txt").write_text("one\ntwo")
    (d / "late.csv").write_text("0.1,0.5\n0.6,3.0\n")                 # ends after the 1 s audio
    corpus = explore.load_corpus(d, progress=False)
    assert [r.name for r in corpus] == ["a", "c", "sub/b"]
    a, _, b = corpus
    assert all(r.rate == RATE for r in corpus)
    assert len(a.pcm) == pytest.approx(RATE, abs=10) and a.text == "hello world"
    assert b.duration_ms == pytest.approx(2000, abs=5) and b.has_regions
    assert [u.text for u in b.utterances] == ["first part", "second part"]
    assert b.regions_ms()[1] == pytest.approx((1000.0, 1900.0))
    # the tone survives resampling and mixing (peak ~0.3 of full scale)
    for r in corpus:
        assert 0.25 < np.abs(r.pcm.astype(float)).max() / 32767 < 0.35, r.name
    problems = {p.split("/")[-1]: why for p, why in corpus.problems}
    assert set(problems) == {"notext.wav", "broken.wav", "late.wav"}
    assert "notext.txt" in problems["notext.wav"]
    assert "WAV" in problems["broken.wav"]
    assert "after the audio" in problems["late.wav"]
    with pytest.raises(ValueError, match="broken.wav"):
        explore.load_corpus(d, strict=True, progress=False)


def test_load_corpus_from_a_manifest(tmp_path):
    write(tmp_path / "x.wav", tone(22050), 22050)
    (tmp_path / "x.txt").write_text("from a file")
    write(tmp_path / "y.wav", tone(48000), 48000, channels=2)
    (tmp_path / "m.csv").write_text("wav,text,name\nx.wav,x.txt,first\ny.wav,inline words,\n"
                                    "missing.wav,gone,\n")
    corpus = explore.load_corpus(tmp_path / "m.csv", progress=False)
    assert [(r.name, r.text) for r in corpus] == [("first", "from a file"), ("y", "inline words")]
    assert corpus.problems == [(str(tmp_path / "missing.wav"), "file not found")]
    (tmp_path / "bad.csv").write_text("path,words\nx.wav,hi\n")
    with pytest.raises(ValueError, match="'wav' and 'text'"):
        explore.load_corpus(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError):
        explore.load_corpus(tmp_path / "nowhere")
