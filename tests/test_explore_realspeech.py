"""Real human speech (Debian pocketsphinx-testdata): the loader's counts, transcripts, rates
and regions; joining real utterances with exact regions and noise at a measured SNR."""

import shutil

import numpy as np
import pytest

from spear_lab import explore
from spear_lab.explore import corpus as K
from spear_lab.explore import realspeech as R
from spear_lab.testaudio import babble

pytestmark = pytest.mark.skipif(not (R.DATA_DIR / "librivox" / "transcription").is_file(),
                                reason="Debian package pocketsphinx-testdata not installed")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEAR_LAB_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def librivox():
    return R.real_speech("librivox", cache=False)


# -- the loader -------------------------------------------------------------------------------

def test_librivox_has_five_utterances_with_the_files_transcripts(librivox):
    assert [r.name for r in librivox] == ["librivox-0870", "librivox-0880", "librivox-0890",
                                          "librivox-0920", "librivox-0930"]
    assert librivox[1].text == "he was not an ill disposed young man"
    assert librivox[3].text.startswith("had he married a more a amiable woman")  # as read
    assert sum(len(r.text.split()) for r in librivox) == 71
    for r in librivox:
        assert r.rate == K.RATE == 24000 and r.pcm.dtype == np.int16 and len(r.utterances) == 1
        assert r.meta["source_rate"] == 16000 and r.meta["package"] == "pocketsphinx-testdata"
    # 24.7 s of audio at 16 kHz, resampled to 24 kHz (1.5x the samples)
    assert sum(len(r.pcm) for r in librivox) / 24000 == pytest.approx(24.7, abs=0.1)
    assert len(librivox[0].pcm) == pytest.approx(113600 * 1.5, abs=2)


def test_cards_and_goforward_sets():
    cards = R.real_speech("cards")
    assert [r.text for r in cards] == ["ten of clubs", "four queen of clubs", "seven of clubs",
                                       "five five", "eight of spades four of clubs seven of hearts"]
    (go,) = R.real_speech("goforward")
    assert go.text == "go forward ten meters"
    assert len(go.pcm) / go.rate == pytest.approx(44580 / 16000, abs=0.001)


def test_regions_lie_inside_the_audio_and_cut_room_tone(librivox):
    for r in librivox + R.real_speech("cards") + R.real_speech("goforward"):
        (u,) = r.utterances
        assert 0 <= u.start < u.end <= len(r.pcm)
        assert u.end - u.start > 0.5 * len(r.pcm)            # most of each clip is speech
    # the LibriVox clips carry 0.2-0.3 s of room tone before the first word
    for r in librivox:
        assert 0.1 * 24000 <= r.utterances[0].start <= 0.3 * 24000


def test_regions_hold_every_word_pocketsphinx_aligns(librivox):
    # a forced alignment of the exact transcript, by a real recogniser, puts every word
    # inside the region (within one 10 ms frame)
    from pocketsphinx import Decoder

    dec = Decoder(loglevel="FATAL")
    for r in librivox:
        dec.set_align_text(r.text)
        dec.start_utt()
        dec.process_raw(K._resample(r.pcm, 24000, 16000).tobytes(), full_utt=True)
        dec.end_utt()
        words = [s for s in dec.seg() if s.word not in ("<s>", "</s>", "<sil>", "(NULL)")]
        assert len(words) == len(r.text.split())
        (u,) = r.utterances
        first_ms, last_ms = words[0].start_frame * 10, (words[-1].end_frame + 1) * 10
        assert u.start / 24 <= first_ms + 10, (r.name, first_ms)
        assert last_ms <= u.end / 24 + 10, (r.name, last_ms)


def test_a_missing_package_is_named(tmp_path, monkeypatch):
    installed = R.DATA_DIR
    monkeypatch.setattr(R, "DATA_DIR", tmp_path / "nothing")
    with pytest.raises(R.SpeechDataMissing, match=r"apt-get install pocketsphinx-testdata") as e:
        explore.real_speech("librivox")
    assert isinstance(e.value, FileNotFoundError)
    # a partial install: the transcription is there, a clip is not
    part = tmp_path / "part"
    shutil.copytree(installed / "librivox", part / "librivox")
    (part / "librivox" / "sense_and_sensibility_01_austen_64kb-0890.wav").unlink()
    with pytest.raises(R.SpeechDataMissing, match=r"0890\.wav is missing.*pocketsphinx-testdata"):
        R.real_speech("librivox", data_dir=part)
    with pytest.raises(ValueError, match="unknown real-speech set"):
        R.real_speech("timit")


def test_a_malformed_transcription_is_refused(tmp_path):
    shutil.copytree(R.DATA_DIR / "cards", tmp_path / "cards")
    (tmp_path / "cards" / "cards.transcription").write_text("<s> ten of clubs </s>\n")
    with pytest.raises(ValueError, match="not a transcription line"):
        R.real_speech("cards", data_dir=tmp_path)


def test_the_cache_gives_the_same_audio(librivox):
    first = R.real_speech("librivox")
    again = R.real_speech("librivox")
    for a, b, c in zip(first, again, librivox):
        assert np.array_equal(a.pcm, b.pcm) and np.array_equal(a.pcm, c.pcm)
        assert a.utterances == b.utterances == c.utterances


# -- joining ----------------------------------------------------------------------------------

def test_joined_regions_are_exactly_where_the_clips_were_placed(librivox):
    pauses = [300, 700, 1100, 1500]
    rec = explore.join_recordings(librivox, pauses_ms=pauses, lead_ms=250, tail_ms=1000)
    assert rec.name == "librivox-clean" and rec.has_regions and rec.rate == 24000
    assert [u.text for u in rec.utterances] == [r.text for r in librivox]
    pos = 250 * 24
    assert not rec.pcm[:pos].any()
    for k, (u, src) in enumerate(zip(rec.utterances, librivox)):
        (su,) = src.utterances
        assert u.start == pos and u.end - u.start == su.end - su.start
        assert np.array_equal(rec.pcm[u.start:u.end], src.pcm[su.start:su.end])
        gap = pauses[k] * 24 if k < len(pauses) else 1000 * 24
        assert not rec.pcm[u.end:u.end + gap].any()
        pos = u.end + gap
    assert pos == len(rec.pcm)
    # the joined recording is cached: the same call reads it back from the WAV
    again = explore.join_recordings(librivox, pauses_ms=pauses, lead_ms=250, tail_ms=1000)
    assert again.path is not None and again.path.is_file()
    assert np.array_equal(again.pcm, rec.pcm) and again.utterances == rec.utterances


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
def test_noise_is_mixed_at_the_requested_snr_and_is_seeded(librivox, kind):
    clean = explore.join_recordings(librivox[:3], pauses_ms=600, cache=False)
    speech = np.concatenate([clean.pcm[u.start:u.end] for u in clean.utterances]).astype(np.float64)
    for snr in (10.0, 0.0):
        noisy = explore.join_recordings(librivox[:3], pauses_ms=600, snr_db=snr, noise=kind, seed=4,
                                        cache=False)
        assert noisy.utterances == clean.utterances and noisy.name == f"librivox-{kind}{snr:g}dB"
        noise = noisy.pcm.astype(np.float64) - clean.pcm
        measured = 10 * np.log10(np.mean(speech ** 2) / np.mean(noise ** 2))
        assert measured == pytest.approx(snr, abs=0.5)
    again = explore.join_recordings(librivox[:3], pauses_ms=600, snr_db=0.0, noise=kind, seed=4,
                                    cache=False)
    other = explore.join_recordings(librivox[:3], pauses_ms=600, snr_db=0.0, noise=kind, seed=5,
                                    cache=False)
    assert np.array_equal(again.pcm, noisy.pcm) and not np.array_equal(other.pcm, noisy.pcm)


def test_babble_is_speech_like_not_stationary(tmp_path):
    # six talkers at once still rise and fall far more than white noise does: the spread
    # of 50 ms frame levels (dB) is several times larger
    n = 10 * 24000
    b = babble(n, seed=1, cache=tmp_path)
    assert len(b) == n and np.sqrt(np.mean(b ** 2)) == pytest.approx(1.0)
    white = np.random.default_rng(0).standard_normal(n)

    def spread(x):
        frames = x[: n // 1200 * 1200].reshape(-1, 1200)
        return float(np.std(10 * np.log10(np.mean(frames ** 2, axis=1))))

    assert spread(b) > 3 * spread(white)
    assert np.array_equal(b, babble(n, seed=1, cache=tmp_path))


def test_join_refuses_what_it_cannot_place(librivox):
    with pytest.raises(ValueError, match="at least one"):
        explore.join_recordings([])
    with pytest.raises(ValueError, match="need 4 pause lengths"):
        explore.join_recordings(librivox, pauses_ms=[500, 500])
    no_regions = K.Recording("mine", librivox[0].pcm, 24000, [K.Utterance("words")])
    with pytest.raises(ValueError, match="'mine' has no speech regions"):
        explore.join_recordings([no_regions])
    other_rate = K.Recording("slow", librivox[0].pcm, 16000, [K.Utterance("w", 0, 10)])
    with pytest.raises(ValueError, match="16000 Hz"):
        explore.join_recordings([other_rate])
