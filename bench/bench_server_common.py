"""Shared helpers of the server benchmarks (not a benchmark itself).

Speech with known sentence ends, a server in a child process (so the client's load
does not share the server's interpreter), and a real-time streaming client that
records when each event arrives.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import connect

from spear_lab.testaudio import SENTENCES, Track, speech_track
from spear_lab.trace.stats import percentile

ROOT = Path(__file__).resolve().parents[1]
MORE = ["my phone number is easy to remember", "turn left at the next traffic light",
        "the children played in the park all afternoon", "can you send me the report by friday",
        "it is going to rain later this evening", "he drank a cup of hot coffee"]
CHUNK_MS = 100


def bench_track() -> Track:
    """Twelve sentences with 1.0-1.6 s pauses (about 45 s)."""
    texts = [*SENTENCES[:6], *MORE]
    pauses = [1.0 + 0.1 * (i % 7) for i in range(len(texts) - 1)]
    return speech_track(texts, pauses, rate=24000, lead_s=0.5, tail_s=2.0)


@contextlib.contextmanager
def server_process(workers: int | None = None, extra: list[str] | None = None):
    """Yield the URL of ``python -m spear_lab.server`` run in a child process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "spear_lab.server", "serve", "--port", "0"]
    if workers:
        cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(cmd + (extra or []), stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        if not line.startswith("spear-lab realtime server: "):
            raise RuntimeError(f"server did not start: {line!r}")
        yield line.split(": ", 1)[1].split()[0], proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class StreamRun:
    """Wall-clock record of one real-time stream. ``t0``: wall time of audio 0."""

    t0: float = 0.0
    sent: list[tuple[float, float]] = field(default_factory=list)  # (audio_end_ms, wall)
    events: list[tuple[float, dict]] = field(default_factory=list)  # (wall, event)


async def stream_realtime(url: str, track: Track, silence_ms: int, offset_s: float = 0.0,
                          model: str = "gpt-4o-transcribe") -> StreamRun:
    """Send ``track`` in 100 ms chunks on a real-time schedule; record events until
    one ``completed`` per sentence has arrived (or 30 s after the audio ended)."""
    run = StreamRun()
    n = len(track.segments)
    pcm = track.pcm.tobytes()
    step = track.rate * 2 * CHUNK_MS // 1000
    async with connect(url, proxy=None, max_size=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "session.update", "session": {
            "type": "transcription", "audio": {"input": {
                "transcription": {"model": model},
                "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                   "prefix_padding_ms": 300, "silence_duration_ms": silence_ms}}}}}))
        await ws.recv()
        await asyncio.sleep(offset_s)
        done = asyncio.Event()

        async def reader():
            completed = 0
            async for m in ws:
                ev = json.loads(m)
                run.events.append((time.perf_counter(), ev))
                if ev["type"].endswith("transcription.completed"):
                    completed += 1
                    if completed == n:
                        done.set()
                        return
        task = asyncio.create_task(reader())
        run.t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(pcm), step)):
            chunk = pcm[i:i + step]
            due = run.t0 + (k + 1) * CHUNK_MS / 1000  # a microphone delivers it then
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(chunk).decode()}))
            run.sent.append(((i + len(chunk)) / 2 / track.rate * 1000, time.perf_counter()))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), 30)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return run


def utterances(run: StreamRun, track: Track) -> list[dict]:
    """Per sentence: latency parts (ms) from the end of speech to ``completed``."""
    stops = [(w, e) for w, e in run.events if e["type"] == "input_audio_buffer.speech_stopped"]
    done = {e["item_id"]: (w, e) for w, e in run.events
            if e["type"].endswith("transcription.completed")}
    out = []
    for (s, e_s, text) in track.segments:
        end_ms = e_s * 1000
        cand = [(w, ev) for w, ev in stops if ev["audio_end_ms"] > end_ms]
        if not cand:
            continue
        w_stop, stop = cand[0]
        if stop["item_id"] not in done:
            continue
        w_done, comp = done[stop["item_id"]]
        sent_wall = next(w for a, w in run.sent if a >= stop["audio_end_ms"])
        out.append({
            "text": text, "transcript": comp["transcript"],
            "total": (w_done - (run.t0 + e_s)) * 1000,
            "vad_wait": stop["audio_end_ms"] - end_ms,
            "chunking": (sent_wall - (run.t0 + stop["audio_end_ms"] / 1000)) * 1000,
            "transport": (w_stop - sent_wall) * 1000,
            "recognition": (w_done - w_stop) * 1000,
        })
    return out


def machine_load() -> str:
    """Load averages and busy processes outside this benchmark (shared machines)."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def pct(values, q) -> float:
    """The ``q``-th percentile of ``values`` (the project's :func:`percentile`)."""
    return percentile(values, q)
