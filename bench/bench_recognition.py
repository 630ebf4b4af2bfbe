"""Recognition quality and speed: engine x corpus, through the full path.

For each engine (whisper, pocketsphinx) and corpus, every recording is replayed by
the ``realtime_asr`` guest through an rtasr fd, the WebSocket transport and the embedded
server (server_vad, silence 500 ms), as fast as the server accepts; the recognition
cache is off. Printed per cell:

* ``WER``  - normalised WER (Whisper's EnglishTextNormalizer) of the completed
  transcripts, and the raw WER beside it;
* ``RTF``  - wall time of the replay / audio duration (lower is faster);
* ``dec50`` - p50 time (ms) of one engine decode of an utterance, measured beside the
  run on the same utterance audio, in this process (the engine as the server uses it).

Corpora: real human speech (the five LibriVox utterances of Debian's
pocketsphinx-testdata, joined with 1 s pauses), three espeak-ng voices other than the
test voice (en-gb, en-us+m3, en-us+f2 at 165 wpm) and our own corpus (the test voice).

Goals for whisper tiny.en: real speech <= 0.08; mean of the three voices <= 0.25.

    PYTHONPATH=. python bench/bench_recognition.py [--engines whisper,pocketsphinx]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from spear_lab import Session, Trace
from spear_lab.explore import Replayer, server_vad, sweep
from spear_lab.explore.corpus import RATE, generate, join_recordings
from spear_lab.explore.realspeech import real_speech
from spear_lab.host import HostConfig
from spear_lab.server.audio import Resampler
from spear_lab.testaudio import SENTENCES

VOICES = [("en-gb", 165), ("en-us+m3", 165), ("en-us+f2", 165)]


def corpora() -> dict[str, object]:
    """name -> Recording."""
    out = {"real speech": join_recordings(real_speech("librivox"), pauses_ms=1000,
                                          name="bench-librivox")}
    for voice, speed in VOICES:
        out[f"{voice} {speed}"] = generate(SENTENCES[:8], pauses_ms=1000, voice=voice,
                                           speed=speed, name=f"bench-{voice}-{speed}")
    out["our corpus"] = generate(SENTENCES[:8], pauses_ms=1000, name="bench-ours")
    return out


def utterance_audio(rec) -> list[np.ndarray]:
    """Each reference utterance's samples at 16 kHz (what a server decodes)."""
    res = Resampler(RATE, 16000)
    pcm16 = res.process(rec.pcm)
    out = []
    for u in rec.utterances:
        a, b = int(u.start * 16000 / RATE), int(u.end * 16000 / RATE)
        out.append(pcm16[max(0, a - 4800):b + 4800])
    return out


def decode_times_ms(engine_name: str, clips: list[np.ndarray]) -> list[float]:
    from spear_lab.server.engines import engine_spec
    engine = engine_spec(engine_name).build()
    times = []
    for pcm in clips:
        t = time.perf_counter()
        s = engine.open_stream()
        s.accept(pcm)
        s.finish()
        times.append((time.perf_counter() - t) * 1000)
    engine.close()
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="whisper,pocketsphinx")
    args = ap.parse_args(argv)
    recs = corpora()
    print(f"{'engine':<13} {'corpus':<15} {'WER':>6} {'raw':>6} {'RTF':>6} {'dec50':>7}")
    summary = {}
    for engine in args.engines.split(","):
        session = Session(HostConfig(stub_fallback=False, local_server={"engine": engine}),
                          name=f"bench-{engine}", trace=Trace(recording=False))
        replayer = Replayer(session=session, concurrency=1)
        try:
            for name, rec in recs.items():
                res = sweep(rec, server_vad(silence_ms=500), replayer=replayer, cache=False,
                            realtime=False, calibrate=False, progress=False,
                            recognition_cache="off")
                row = res.records[0]
                dec = decode_times_ms(engine, utterance_audio(rec))
                rtf = row["wall_s"] / row["audio_s"]
                summary[(engine, name)] = row["wer"]
                print(f"{engine:<13} {name:<15} {row['wer']:6.3f} {row['wer_raw']:6.3f} "
                      f"{rtf:6.3f} {np.median(dec):7.0f}", flush=True)
        finally:
            replayer.close()
            session.close()
    if "whisper" in args.engines:
        real = summary[("whisper", "real speech")]
        voices = float(np.mean([summary[("whisper", f"{v} {s}")] for v, s in VOICES]))
        print(f"whisper: real speech {real:.3f} (goal <= 0.08: {'met' if real <= 0.08 else 'NOT met'}); "
              f"three voices mean {voices:.3f} (goal <= 0.25: {'met' if voices <= 0.25 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
