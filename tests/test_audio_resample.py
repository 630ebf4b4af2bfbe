"""pcm16 helpers, remixing and the resampler, checked against analytic signals."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_audio import tone_frequency

from spear_lab.audio import (
    Resampler,
    float_to_pcm16,
    frame_bytes,
    pcm16_to_float,
    remix,
    resample,
    resample_pcm16,
)

PAIRS = [(48000, 24000), (44100, 24000), (16000, 24000), (48000, 16000), (8000, 48000),
         (44100, 16000), (22050, 24000), (44100, 24001)]


def tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def snr_db(y: np.ndarray, ref: np.ndarray, edge: int = 100) -> float:
    core = slice(edge, len(ref) - edge)
    err = y[core] - ref[core]
    return 10 * np.log10(np.mean(ref[core] ** 2) / max(np.mean(err ** 2), 1e-30))


# -- pcm16 and remix -----------------------------------------------------------------------------


def test_pcm16_round_trip_is_exact():
    ints = np.arange(-32768, 32768, dtype="<i2")
    x = pcm16_to_float(ints.tobytes(), 1)
    assert x.shape == (65536, 1) and x.min() == -1.0 and x.max() < 1.0
    assert float_to_pcm16(x) == ints.tobytes()
    st = pcm16_to_float(ints.tobytes() + b"\x01", 2)  # trailing partial frame ignored
    assert st.shape == (32768, 2)
    assert float_to_pcm16(st) == ints.tobytes()


def test_float_to_pcm16_clips_and_rounds():
    got = np.frombuffer(float_to_pcm16(np.array([-2.0, -1.0, 0.99999, 2.0, 0.5 / 32768 * 1.01])), "<i2")
    assert list(got) == [-32768, -32768, 32767, 32767, 1]


def test_frame_bytes():
    assert frame_bytes(24000, 20, 1) == 960
    assert frame_bytes(1000, 10, 1) == 20
    assert frame_bytes(44100, 10, 2) == 1764


def test_remix():
    x = np.array([[0.2, 0.4, 0.6, 0.8], [1.0, 0.0, -1.0, 0.5]])
    assert np.allclose(remix(x, 1)[:, 0], [0.5, 0.125])
    assert np.allclose(remix(x, 2), [[0.3, 0.7], [0.5, -0.25]])
    assert remix(x, 4) is x
    m = np.array([[0.1], [0.2]])
    assert np.allclose(remix(m, 3), [[0.1] * 3, [0.2] * 3])
    assert np.allclose(remix(x[:, :2], 4), [[0.2, 0.2, 0.4, 0.4], [1.0, 1.0, 0.0, 0.0]])
    with pytest.raises(ValueError):
        remix(x, 0)


# -- resampling ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["sinc", "linear"])
@pytest.mark.parametrize("pair", PAIRS)
def test_tone_frequency_preserved(pair, method):
    fr, to = pair
    for freq in (440.0, 1000.0, 3000.0):
        y = resample(tone(freq, fr), fr, to, method)
        assert len(y) == -(-fr * to // fr)  # ceil(n * to / from) with n = fr
        assert abs(tone_frequency(y, to) - freq) < 0.5


@pytest.mark.parametrize("pair", PAIRS)
def test_sinc_matches_the_analytic_tone(pair):
    fr, to = pair
    freq = 1234.5
    y = resample(tone(freq, fr), fr, to)
    ref = tone(freq, to)
    assert snr_db(y, ref) > 60


def test_sinc_removes_what_linear_aliases():
    """A 10 kHz tone cannot exist at 16 kHz: sinc removes it, linear folds it to 6 kHz."""
    x = tone(10000.0, 48000)
    sinc = resample(x, 48000, 16000)[200:-200]
    lin = resample(x, 48000, 16000, "linear")[200:-200]
    assert np.sqrt(np.mean(sinc ** 2)) < 1e-3
    assert np.sqrt(np.mean(lin ** 2)) > 0.1
    assert abs(tone_frequency(lin, 16000) - 6000.0) < 1.0


@pytest.mark.parametrize("method", ["sinc", "linear"])
@pytest.mark.parametrize("pair", [(44100, 24000), (16000, 24000), (48000, 16000), (44100, 24001)])
def test_chunking_does_not_change_the_output(pair, method):
    fr, to = pair
    rng = np.random.default_rng(7)
    x = rng.uniform(-0.5, 0.5, size=(fr // 2, 2))
    whole = resample(x, fr, to, method)
    r = Resampler(fr, to, 2, method)
    parts, i = [], 0
    while i < len(x):
        k = int(rng.integers(0, 2000))
        parts.append(r.process(x[i:i + k]))
        i += k
    parts.append(r.flush())
    chunked = np.concatenate(parts)
    assert chunked.shape == whole.shape == (-(-len(x) * to // fr), 2)
    assert np.allclose(chunked, whole, atol=1e-12)
    assert r.samples_in == len(x) and r.samples_out == len(whole)


def test_channels_are_independent():
    fr, to = 44100, 16000
    x = np.stack([tone(500.0, fr), tone(2500.0, fr)], axis=1)
    y = resample(x, fr, to)
    assert abs(tone_frequency(y[:, 0], to) - 500.0) < 0.5
    assert abs(tone_frequency(y[:, 1], to) - 2500.0) < 0.5
    assert snr_db(y[:, 1], tone(2500.0, to)) > 60


def test_identity_and_errors():
    x = np.linspace(-1, 1, 100)
    assert np.array_equal(resample(x, 24000, 24000), x)
    with pytest.raises(ValueError):
        Resampler(0, 24000)
    with pytest.raises(ValueError):
        Resampler(24000, 16000, method="cubic")
    r = Resampler(48000, 24000)
    r.flush()
    with pytest.raises(RuntimeError):
        r.process(x)


def test_resample_pcm16():
    pcm = np.round(tone(1000.0, 48000) * 32767).astype("<i2")
    st = np.stack([pcm, -pcm], axis=1)
    out = np.frombuffer(resample_pcm16(st.tobytes(), 48000, 24000, 2), "<i2").reshape(-1, 2)
    assert out.shape == (24000, 2)
    assert np.array_equal(out[:, 0], -out[:, 1])
    assert abs(tone_frequency(out[:, 0].astype(float), 24000) - 1000.0) < 0.5
    assert resample_pcm16(pcm.tobytes(), 16000, 16000) == pcm.tobytes()
