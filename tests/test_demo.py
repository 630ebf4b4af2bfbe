"""``spear-lab demo``, the main job: real human speech through the whole path."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def demo(*args):
    p = subprocess.run([sys.executable, "-m", "spear_lab.cli", "demo", *args],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    return p.returncode, p.stdout, p.stderr


def test_demo_transcribes_real_speech_with_a_low_word_error_rate():
    rc, out, err = demo("--speech", "real")
    assert rc == 0, err
    assert "5 LibriVox utterances (human read speech)" in out
    m = re.search(r"spear-lab demo: (\d+) segments; WER ([\d.]+) normalised \(raw ([\d.]+)\)", out)
    assert m, out
    assert int(m.group(1)) == 5 and float(m.group(2)) <= 0.10, out
    assert len(re.findall(r"^completed item_\w+: \S", out, re.M)) == 5


def test_demo_on_the_bundled_recording():
    rc, out, err = demo("--speech", "bundled")
    assert rc == 0, err
    m = re.search(r"spear-lab demo: (\d+) segments; WER ([\d.]+)", out)
    assert m and int(m.group(1)) == 4 and float(m.group(2)) <= 0.35, out
