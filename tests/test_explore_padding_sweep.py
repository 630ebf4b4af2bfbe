"""Acceptance (issue 12): a prefix_padding_ms sweep {0, 100, 300} on real human speech,
through the real path (file microphone -> realtime_asr guest -> rtasr fd -> WebSocket ->
embedded server with Silero VAD and Whisper), shows clipped words falling as the padding
grows, and the recogniser hears what the padding gives it back."""

from __future__ import annotations

import pytest

from spear_lab import explore

PADDINGS = (0, 100, 300)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEAR_LAB_CACHE", str(tmp_path / "cache"))


def test_prefix_padding_sweep_on_real_speech_clips_fewer_words_as_padding_grows():
    rec = explore.join_recordings(explore.real_speech("librivox"), pauses_ms=1200,
                                  name="librivox-1200")
    cfgs = [explore.server_vad(500, 0.5, pad) for pad in PADDINGS]
    res = explore.sweep(rec, cfgs, concurrency=1, progress=False, calibrate=False,
                        realtime=False, recognition_cache="off")
    assert all(r["ok"] for r in res.records), [r["error"] for r in res.records]
    rows = {r["prefix_padding_ms"]: r for r in res.records}
    clipped = [rows[p]["clipped_words"] for p in PADDINGS]
    print("clipped words", clipped, "wer", [round(rows[p]["wer"], 3) for p in PADDINGS])
    assert clipped == sorted(clipped, reverse=True), clipped  # never more with more padding
    assert clipped[0] > clipped[-1], clipped  # and padding visibly helps
    assert all(rows[p]["segments"] == 5 for p in PADDINGS)  # one turn per utterance
    assert rows[300]["wer"] <= 0.15, rows[300]["hypothesis"]
