"""The local server under load and faults (issue 13), beside a no-fault baseline.

    PYTHONPATH=. python bench/bench_server_faults.py [--sessions 50] [--disconnects 100]
                                                     [--slow-s 30] [--engine NAME]

Runs ``spear-lab serve`` in a child process and, in one run:

0. baseline: a well-behaved probe client alone;
1. ``--sessions`` concurrent real-time sessions (three sentences each, all expected
   to be committed and completed);
2. ``--disconnects`` clients that vanish (TCP abort) mid-utterance, in waves;
3. one client that never reads its events, for ``--slow-s`` seconds.

For each phase: the server process tree's RSS before, at its peak and 10 s after
the phase; the probe's first-reply latency (connect -> ``session.created``, and
``session.update`` -> ``session.updated``) during the phase; the commits and
completions of the well-behaved sessions; the server's CPU from 5 s to 10 s after
the last faulty client left. Goals: RSS after <= baseline + 150 MB, peak <= 1.5 GB,
first reply <= 200 ms, no CPU 5 s after, every utterance completed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
import urllib.request

import psutil
from websockets.asyncio.client import connect

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from bench_server_common import machine_load, server_process  # noqa: E402

from spear_lab.testaudio import SENTENCES, speech_track  # noqa: E402

CHUNK_MS = 100
MB = 1024 * 1024


class Tree:
    """RSS and CPU seconds of a process and its descendants."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0

    def procs(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        total = 0
        for p in self.procs():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        self.peak = max(self.peak, total)
        return total

    def cpu(self) -> float:
        total = 0.0
        for p in self.procs():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    async def sample(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.rss()
            await asyncio.sleep(0.2)


def update(model: str = "gpt-4o-transcribe") -> str:
    return json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {
        "input": {"transcription": {"model": model},
                  "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}}})


def append(pcm: bytes) -> str:
    return json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})


async def probe(url: str) -> dict:
    """A well-behaved client's first replies, in ms."""
    t = time.perf_counter()
    async with connect(url, proxy=None, max_size=None) as ws:
        json.loads(await ws.recv())
        created = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        await ws.send(update())
        while json.loads(await ws.recv())["type"] != "session.updated":
            pass
        return {"created": created, "updated": (time.perf_counter() - t) * 1000}


async def realtime_session(url: str, pcm: bytes, n: int, out: dict) -> None:
    """Stream ``pcm`` in real time; count commits and completions (wait 120 s at most)."""
    step = 24000 * 2 * CHUNK_MS // 1000
    async with connect(url, proxy=None, max_size=None) as ws:
        first = json.loads(await ws.recv())
        if first["type"] == "error":
            out["refused"] += 1
            return
        await ws.send(update())
        done = asyncio.Event()
        counts = {"committed": 0, "completed": 0, "failed": 0}

        async def reader():
            async for m in ws:
                kind = json.loads(m)["type"]
                if kind == "input_audio_buffer.committed":
                    counts["committed"] += 1
                elif kind.endswith("transcription.completed"):
                    counts["completed"] += 1
                elif kind.endswith("transcription.failed"):
                    counts["failed"] += 1
                if counts["completed"] + counts["failed"] >= n:
                    done.set()
        task = asyncio.create_task(reader())
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(pcm), step)):
            await asyncio.sleep(max(0.0, t0 + (k + 1) * CHUNK_MS / 1000 - time.perf_counter()))
            await ws.send(append(pcm[i:i + step]))
        try:
            await asyncio.wait_for(done.wait(), 120)
        except asyncio.TimeoutError:
            pass
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for k, v in counts.items():
            out[k] += v


async def vanishing_client(url: str, pcm: bytes) -> None:
    """Start an utterance, then drop the TCP connection without a close frame."""
    ws = await connect(url, proxy=None, max_size=None)
    first = json.loads(await ws.recv())
    if first["type"] == "error":
        ws.transport.abort()
        return
    await ws.send(update())
    step = 24000 * 2 * CHUNK_MS // 1000
    for i in range(0, len(pcm), step):
        await ws.send(append(pcm[i:i + step]))
        await asyncio.sleep(0.01)
    ws.transport.abort()


async def flooding_client(url: str, pcm: bytes) -> None:
    """Send the audio ten times over as fast as possible (a recognition backlog)."""
    async with connect(url, proxy=None, max_size=None) as ws:
        await ws.recv()
        await ws.send(update())
        step = 24000 * 2
        for _ in range(10):
            for i in range(0, len(pcm), step):
                await ws.send(append(pcm[i:i + step]))


async def slow_reader(url: str, seconds: float) -> str:
    """A client that never reads; it sends a bad event 1000 times a second."""
    ws = await connect(url, proxy=None, max_size=None, max_queue=None)
    ws.transport.pause_reading()
    bad = json.dumps({"type": "bogus", "event_id": "x" * 400})
    t0 = time.perf_counter()
    end = t0 + seconds
    outcome, sent = "still open", 0
    while time.perf_counter() < end:
        try:
            await asyncio.wait_for(ws.send(bad), 1.0)
            sent += 1
        except asyncio.TimeoutError:  # the server closed it (or stopped reading it)
            outcome = f"the server stopped taking its messages after {time.perf_counter() - t0:.1f} s"
            break
        except Exception as exc:  # noqa: BLE001 - closed by the server
            outcome = f"closed after {time.perf_counter() - t0:.1f} s ({type(exc).__name__})"
            break
    ws.transport.abort()
    return f"{outcome}; {sent} events sent, ~{sent * 470 / MB:.1f} MB of error events owed"


async def until_idle(tree: Tree, limit_s: float) -> float:
    """Seconds until the tree uses < 5 % of a core over 0.5 s (``limit_s`` at most)."""
    t0 = time.perf_counter()
    last, t_last = tree.cpu(), t0
    while time.perf_counter() - t0 < limit_s:
        await asyncio.sleep(0.5)
        now, t_now = tree.cpu(), time.perf_counter()
        if (now - last) / (t_now - t_last) < 0.05:
            return t_last - t0
        last, t_last = now, t_now
    return limit_s


async def phase(name: str, tree: Tree, url: str, work, rows: list, settle_s: float = 10.0,
                probe_at_s: float = 1.0) -> None:
    before = tree.rss()
    tree.peak = before
    stop = asyncio.Event()
    sampler = asyncio.create_task(tree.sample(stop))
    task = asyncio.create_task(work())
    await asyncio.sleep(probe_at_s)
    p = await probe(url)  # during the phase
    extra = await task
    ended = time.perf_counter()
    idle_after = await until_idle(tree, 5.0)
    await asyncio.sleep(max(0.0, ended + 5.0 - time.perf_counter()))
    cpu5 = tree.cpu()
    await asyncio.sleep(max(0.0, settle_s - 5.0))
    cpu_after = tree.cpu() - cpu5
    after = tree.rss()
    stop.set()
    await sampler
    rows.append({"phase": name, "before": before / MB, "peak": tree.peak / MB, "after": after / MB,
                 "created": p["created"], "updated": p["updated"],
                 "cpu_5_10": cpu_after, "idle_after": idle_after, "settle": time.perf_counter() - ended, "extra": extra})


async def main_async(args) -> None:
    track = speech_track(SENTENCES[:3], [1.0, 1.2], rate=24000, lead_s=0.5, tail_s=1.5)
    pcm = track.pcm.tobytes()
    half = pcm[:int((track.segments[0][0] + 1.0) * 24000) * 2]  # one second into speech
    extra = ["--engine", args.engine] if args.engine else []
    os.environ["SPEAR_LAB_RECOGNITION_CACHE"] = "off"  # every session's audio is recognised
    with server_process(None, extra) as (url, proc):
        info = json.loads(urllib.request.urlopen(url.replace("ws://", "http://").split("/v1/")[0]
                                                 + "/v1/spear/info", timeout=10).read())
        tree = Tree(proc.pid)
        async with connect(url, proxy=None) as ws:  # warm up
            await ws.recv()
        await asyncio.sleep(2.0)
        rows: list[dict] = []

        async def nothing():
            await asyncio.sleep(3.0)
            return ""
        await phase("baseline (no fault)", tree, url, nothing, rows)

        async def sessions():
            out = {"refused": 0, "committed": 0, "completed": 0, "failed": 0}
            await asyncio.gather(*(realtime_session(url, pcm, 3, out) for _ in range(args.sessions)))
            return (f"{args.sessions} sessions x 3 utterances: {out['committed']} committed, "
                    f"{out['completed']} completed, {out['failed']} failed, {out['refused']} refused")
        await phase(f"{args.sessions} real-time sessions", tree, url, sessions, rows)

        async def disconnects():
            wave = 25
            for i in range(0, args.disconnects, wave):
                await asyncio.gather(*(vanishing_client(url, half)
                                       for _ in range(min(wave, args.disconnects - i))))
            return f"{args.disconnects} abrupt disconnects mid-utterance"
        await phase(f"{args.disconnects} disconnects", tree, url, disconnects, rows, probe_at_s=0.3)

        async def slow():
            return "slow reader: " + await slow_reader(url, args.slow_s)
        await phase(f"slow reader {args.slow_s:.0f} s", tree, url, slow, rows)
        # SIGTERM with a backlog: 20 sessions send their audio as fast as they can
        flood = [asyncio.create_task(flooding_client(url, pcm)) for _ in range(20)]
        await asyncio.sleep(3.0)
        t = time.perf_counter()
        proc.terminate()
        await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30)
        stop_s = time.perf_counter() - t
        await asyncio.gather(*flood, return_exceptions=True)
        left = [p for p in tree.procs() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    base = rows[0]
    print(f"bench_server_faults ({machine_load()}, {psutil.cpu_count()} cores; "
          f"recognition: {json.dumps(info.get('recognition'))}, VAD: {info.get('vad')}, "
          "recognition cache off)")
    print(f"{'phase':28} {'RSS before':>10} {'peak':>7} {'10 s after':>10} {'after-base':>10} "
          f"{'created ms':>10} {'updated ms':>10} {'idle after s':>12} {'CPU s 5-10 s after':>18}")
    for r in rows:
        print(f"{r['phase']:28} {r['before']:10.0f} {r['peak']:7.0f} {r['after']:10.0f} "
              f"{r['after'] - base['before']:+10.0f} {r['created']:10.1f} {r['updated']:10.1f} "
              f"{r['idle_after']:12.1f} {r['cpu_5_10']:18.2f}")
    for r in rows:
        if r["extra"]:
            print(f"  {r['phase']}: {r['extra']}")
    print(f"SIGTERM with a backlog (20 flooding sessions) -> exit: {stop_s:.2f} s; "
          f"server processes left: {len(left)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--disconnects", type=int, default=100)
    p.add_argument("--slow-s", type=float, default=30.0)
    p.add_argument("--engine", default=None, help="server --engine (default: the server's)")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
