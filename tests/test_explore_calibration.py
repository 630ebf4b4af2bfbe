"""The latency calibration measures the recogniser, never a recognition-cache hit: run
twice with a shared recognition cache set for the process, the second run still takes
real processing time."""

from __future__ import annotations

from spear_lab import explore
from spear_lab.server.reccache import ENV


def test_calibration_is_not_answered_from_the_recognition_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path / "recognitions"))
    first = explore.calibrate_processing(cache=False)
    second = explore.calibrate_processing(cache=False)
    assert first["ok"] and second["ok"], (first, second)
    assert not (tmp_path / "recognitions").exists() or not any((tmp_path / "recognitions").rglob("*.json"))
    # a cache hit answers in ~1 ms; recognising a segment takes tens of ms at least
    assert min(second["values"]) >= 20, second
