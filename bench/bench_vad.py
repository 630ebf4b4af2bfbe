"""Boundary precision/recall of the server's VAD against webrtcvad.

Speech: espeak-ng (en-us+klatt4, 190 wpm) sentences joined by pauses of known
length (0.7-1.5 s), resampled with ``sox -D``; noise (white and pink, seeded) added
at 20, 10 and 5 dB SNR. Every detector's frame decisions go through the same turn
segmenter (server_vad rules, silence 500 ms, no padding); a detected speech onset or
offset is a hit when it lies within ``--tol-ms`` of a true one of the same kind
(each true boundary matched once).

    PYTHONPATH=. python bench/bench_vad.py [--tol-ms 200] [--threshold 0.5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import webrtcvad

from spear_lab.server.audio import Resampler
from spear_lab.server.turns import SpeechStart, TurnDetector
from spear_lab.server.vad import LOOKAHEAD_MS, SpeechProbability
from spear_lab.testaudio import SENTENCES, add_noise, speech_track

PAUSES = [0.8, 1.2, 0.7, 1.5, 1.0]


def ours(pcm16k: np.ndarray) -> np.ndarray:
    est = SpeechProbability()
    return np.concatenate([est.process(pcm16k[i:i + 1600]) for i in range(0, len(pcm16k), 1600)])


def webrtc(mode: int):
    def run(pcm16k: np.ndarray) -> np.ndarray:
        vad = webrtcvad.Vad(mode)
        frames = len(pcm16k) // 160
        return np.array([float(vad.is_speech(pcm16k[i * 160:(i + 1) * 160].tobytes(), 16000))
                         for i in range(frames)])
    return run


def segments(probs: np.ndarray, threshold: float, silence_ms: int,
             lookahead_ms: int = LOOKAHEAD_MS) -> list[tuple[int, int]]:
    det = TurnDetector(threshold, 0, silence_ms, lookahead_ms)
    out, start = [], None
    for ev in det.feed(probs) + det.feed(np.zeros(silence_ms // 10 + 1)):
        if isinstance(ev, SpeechStart):
            start = ev.speech_ms
        else:
            out.append((start, ev.last_speech_ms))
    return out


def match(truth: list[float], found: list[float], tol: float) -> list[float]:
    """Errors (ms) of the found boundaries that hit a distinct true one within ``tol``."""
    errors, used = [], set()
    for f in found:
        free = [(abs(f - t), i) for i, t in enumerate(truth) if i not in used]
        if free and min(free)[0] <= tol:
            err, i = min(free)
            used.add(i)
            errors.append(err)
    return errors


def score(segs, truth_segs, tol_ms):
    """(precision, recall, mean |error| ms of hits) of onsets and offsets together."""
    t_on = [s * 1000 for s, _, _ in truth_segs]
    t_off = [e * 1000 for _, e, _ in truth_segs]
    errs = match(t_on, [a for a, _ in segs], tol_ms) + match(t_off, [b for _, b in segs], tol_ms)
    n_found, n_true = 2 * len(segs), 2 * len(truth_segs)
    mean_err = float(np.mean(errs)) if errs else float("nan")
    return (len(errs) / n_found if n_found else 0.0), len(errs) / n_true, mean_err


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tol-ms", type=float, default=200)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--silence-ms", type=int, default=500)
    args = ap.parse_args(argv)
    track24 = speech_track(SENTENCES[:6], PAUSES, rate=24000)
    detectors = {"ours": ours, "webrtc-1": webrtc(1), "webrtc-3": webrtc(3)}
    print(f"{len(track24.segments)} sentences, {track24.duration_s:.1f} s, tolerance "
          f"{args.tol_ms:.0f} ms, silence {args.silence_ms} ms, threshold {args.threshold}")
    print("cells: boundary precision, recall, mean |error| of hits (ms), segments found "
          f"(truth: {len(track24.segments)})")
    print(f"{'noise':<8} {'SNR dB':>6} " + " ".join(f"{n:>22}" for n in detectors))
    cost = {n: 0.0 for n in detectors}
    conditions = [("clean", None)] + [(k, snr) for k in ("white", "pink", "pulsing")
                                      for snr in (20, 10, 5)]
    audio_s = 0.0
    sweep_pcm = {}
    for kind, snr in conditions:
        tr = track24 if snr is None else add_noise(track24, snr, kind, seed=1)
        pcm16 = Resampler(24000, 16000).process(tr.pcm)
        audio_s += tr.duration_s
        if snr == 5:
            sweep_pcm[kind] = pcm16
        cells = []
        for name, fn in detectors.items():
            t0 = time.perf_counter()
            probs = fn(pcm16)
            cost[name] += time.perf_counter() - t0
            segs = segments(probs, args.threshold, args.silence_ms,
                            LOOKAHEAD_MS if name == "ours" else 0)  # webrtc frames: no lookahead
            p, r, err = score(segs, tr.segments, args.tol_ms)
            cells.append(f"{p:4.2f} {r:4.2f} {err:5.0f} {len(segs):3d}")
        print(f"{kind:<8} {'-' if snr is None else snr:>6} " + " ".join(f"{c:>22}" for c in cells))
    print("real-time factor: " + ", ".join(f"{n} {c / audio_s:.4f}" for n, c in cost.items()))
    print()
    print("threshold sweep of ours at 5 dB SNR (precision, recall):")
    thresholds = (0.1, 0.3, 0.5, 0.7, 0.9, 0.97)
    print(f"{'noise':<8} " + " ".join(f"{t:>10}" for t in thresholds))
    for kind, pcm16 in sweep_pcm.items():
        probs = ours(pcm16)
        cells = []
        for thr in thresholds:
            p, r, _ = score(segments(probs, thr, args.silence_ms), track24.segments, args.tol_ms)
            cells.append(f"{p:4.2f} {r:4.2f}")
        print(f"{kind:<8} " + " ".join(f"{c:>10}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
