"""Test speech: trimming, noise kinds, exact pauses and sentence positions, the clip
cache and WAV round trips (espeak-ng and sox are installed in the dev image)."""

import numpy as np
import pytest
from fixtures_audio import write_wav as write_any_wav

from spear_lab import testaudio as T

TWO = ["the weather is very nice today", "please call me back tonight"]


def test_trim_bounds_finds_first_and_last_loud_sample():
    x = np.zeros(100, np.int16)
    x[10], x[50], x[80] = 5, 1000, -300
    assert T.trim_bounds(x, rel=0.01) == (50, 81)      # 5 is below 1 % of 1000
    assert T.trim_bounds(x, rel=0.5) == (50, 51)
    assert T.trim_bounds(np.zeros(10, np.int16)) == (0, 0)
    assert T.trim_bounds(np.zeros(0, np.int16)) == (0, 0)


def test_pink_noise_has_more_low_than_high_frequency_power():
    pcm = (np.sin(np.arange(48000) * 0.05) * 3000).astype(np.int16)
    noisy = T.mix_noise(pcm, [(0, 48000)], 0.0, "pink", 1).astype(np.float64) - pcm
    spec = np.abs(np.fft.rfft(noisy)) ** 2
    f = np.fft.rfftfreq(len(noisy), 1 / 24000)
    assert spec[(f > 50) & (f < 500)].mean() > 10 * spec[(f > 5000) & (f < 10000)].mean()


def test_pulsing_noise_swings_with_the_modulation_and_keeps_the_snr():
    rate, n = 24000, 240000
    pcm = (np.sin(np.arange(n) * 0.05) * 3000).astype(np.int16)
    noise = T.mix_noise(pcm, [(0, n)], 10.0, "pulsing", 0, rate=rate).astype(np.float64) - pcm
    phase = np.sin(2 * np.pi * 0.3 * np.arange(n) / rate)
    # +6 dB at the crest, -6 dB in the trough: about 12 dB (x16) apart
    assert np.mean(noise[phase > 0.9] ** 2) > 6 * np.mean(noise[phase < -0.9] ** 2)
    snr = 10 * np.log10(np.mean(pcm.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert snr == pytest.approx(10.0, abs=0.05)
    with pytest.raises(ValueError, match="unknown noise kind"):
        T.mix_noise(pcm, [(0, n)], 10.0, "brown")
    with pytest.raises(ValueError, match="speech region"):
        T.mix_noise(pcm, [], 10.0)


def test_speech_track_places_sentences_after_exact_silences(tmp_path):
    rate = 16000
    track = T.make_speech(TWO, tmp_path / "sub" / "two.wav", rate, pause_s=0.4, lead_s=0.3, tail_s=0.5)
    (s0, e0, t0), (s1, e1, t1) = track.segments
    assert (t0, t1) == tuple(TWO) and track.texts == TWO
    assert s0 == 0.3 and s1 - e0 == pytest.approx(0.4, abs=1 / rate)
    assert track.duration_s - e1 == pytest.approx(0.5, abs=1 / rate)
    a0, b0, a1, b1 = (round(x * rate) for x in (s0, e0, s1, e1))
    assert not np.concatenate([track.pcm[:a0], track.pcm[b0:a1], track.pcm[b1:]]).any()
    assert track.pcm[a0] != 0 and track.pcm[b1 - 1] != 0
    assert track.nbytes == 2 * len(track.pcm)
    pcm, file_rate = T.read_wav(track.path)
    assert file_rate == rate and np.array_equal(pcm, track.pcm)
    with pytest.raises(ValueError, match="pause lengths"):
        T.speech_track(TWO, [0.4, 0.5])


def test_add_noise_keeps_segments_and_is_seeded():
    track = T.Track(np.tile(np.array([0, 2000, 0, -2000], np.int16), 6000), 24000,
                    [(0.1, 0.5, "a"), (0.6, 0.9, "b")], path=None)
    noisy = T.add_noise(track, 5, "white", seed=7)
    assert noisy.segments == track.segments and noisy.path is None
    assert np.array_equal(noisy.pcm, T.add_noise(track, 5, "white", seed=7).pcm)
    assert not np.array_equal(noisy.pcm, T.add_noise(track, 5, "white", seed=8).pcm)


def test_synthesize_caches_clips_by_their_parameters(tmp_path):
    clip = T.synthesize(TWO[0], 16000, cache=tmp_path)
    assert clip.dtype == np.int16 and len(list(tmp_path.glob("*.npy"))) == 1
    assert np.array_equal(T.synthesize(TWO[0], 16000, cache=tmp_path), clip)
    assert np.array_equal(T.synthesize(TWO[0], 16000), clip)    # the cache holds what espeak says
    T.synthesize(TWO[0], 24000, cache=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2
    # peak about -3 dBFS (sox normalises before its final rate conversion)
    assert 20 * np.log10(np.abs(clip.astype(np.int32)).max() / 32768) == pytest.approx(-3, abs=0.3)


def test_read_wav_averages_channels(tmp_path):
    path = write_any_wav(tmp_path / "st.wav", np.array([[100, 300], [-10, -30]], "<i2"), 8000)
    pcm, rate = T.read_wav(path)
    assert rate == 8000 and pcm.tolist() == [200, -20]
