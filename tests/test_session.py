"""The Session: guest lifecycle (start / await / run / stop), the traced Python ABI,
host policy for mic and backend, no audio lost while the caller blocks, and no leaks."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spear_lab.abi import EPOLLIN, EPOLLOUT, EpollOp, Errno, RtasrCtl
from spear_lab.host import HostConfig
from spear_lab.session.policy import ENV_BACKEND, ENV_SEGMENTATION, ENV_TRANSPORT
from spear_lab.session import GuestHandle, Session, backend_env, mic_policy, segmentation_env
from spear_lab.testaudio import make_speech

FRAME_BYTES = 960  # 20 ms of 24 kHz mono pcm16
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    return make_speech(["the quick brown fox jumps over the lazy dog",
                        "please call me back when you get home tonight"], path, pause_s=0.8)


def summary_line(stdout: str) -> dict[str, int]:
    line = [ln for ln in stdout.splitlines() if ln.startswith("summary:")][-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line)}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def io_tasks(session: Session) -> int:
    async def count() -> int:
        me = asyncio.current_task()
        return sum(1 for t in asyncio.all_tasks() if t is not me and not t.done())
    return session.io.run(count(), timeout=5)


# -- lifecycle ----------------------------------------------------------------------------

def test_start_returns_at_once_and_stop_wakes_a_blocked_guest():
    with Session() as s:
        h = s.start("block")
        assert isinstance(h, GuestHandle) and h.name == "block"
        assert not h.done and h.state() == "running" and s.guests == [h]
        with pytest.raises(TimeoutError):
            h.wait(0.2)
        res = h.stop()
        assert res.stopped and res.trap == "stopped" and h.state() == "stopped"
        assert s.guests == []
        # its calls are recorded under the guest's instance name (the wait that the stop
        # interrupted trapped, so it has no result to record)
        assert [r["name"] for r in s.trace.hostcalls("block")] == ["spear_epoll_create"]


def test_await_handle_and_run_async_in_asyncio():
    async def main():
        with Session() as s:
            h = s.start("epoll_basics")
            res = await h
            assert res.ok and h.done and h.result is res
            res2 = await s.run_async("epoll_basics")
            assert res2.ok
            # a blocked guest is stopped when the timeout passes; the loop stays free
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            t = asyncio.create_task(ticker())
            res3 = await s.run_async("block", timeout=0.3)
            t.cancel()
            assert res3.stopped and ticks > 5
            return [h.name for h in s.handles]

    assert asyncio.run(main()) == ["epoll_basics", "epoll_basics-2", "block"]


def test_run_blocks_in_a_script():
    with Session() as s:
        res = s.run("epoll_tour", timeout=30)
        assert res.exit_code == 0, res.stdout
        assert "summary: steps=" in res.stdout and "mismatches=0" in res.stdout
        res = s.run("block", timeout=0.3)  # stopped when the timeout passes
        assert res.stopped


PUMP_SCRIPT = """
import asyncio
from spear_lab.session import Session

async def cell():
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    t = asyncio.create_task(ticker())
    with Session() as s:
        # a synchronous call inside a running loop, as in a notebook cell
        res = s.run("block", timeout=0.5)
        s.sleep(0.2)
    t.cancel()
    print(res.stopped, ticks)

asyncio.run(cell())
"""


def test_run_pumps_the_callers_running_loop():
    # In a subprocess: nest-asyncio2 patches asyncio process-wide, as it does in a kernel.
    out = subprocess.run([sys.executable, "-c", PUMP_SCRIPT], capture_output=True, text=True,
                         timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    stopped, ticks = out.stdout.split()
    assert stopped == "True"
    assert int(ticks) > 5  # the loop's other tasks ran while run() and sleep() blocked


def test_guest_sources_args_and_errors():
    wat = """(module (import "spear" "spear_epoll_create" (func $c (result i32)))
               (memory (export "memory") 1)
               (func (export "_start") (drop (call $c))))"""
    with Session() as s:
        res = s.run(wat, name="tiny")
        assert res.ok and res.name == "tiny"
        assert s.trace.hostcalls("tiny")[0]["rc"] == 1000
        res = s.run("backpressure", ["--frames", "20", "--report-every", "10"], timeout=30)
        assert res.ok and summary_line(res.stdout)["written"] == 20
        with pytest.raises(FileNotFoundError, match="built-in"):
            s.start("no_such_guest")
        with pytest.raises(ValueError, match="invalid WAT"):
            s.start("(module (func")
    with pytest.raises(RuntimeError, match="closed"):
        s.start("block")


def test_python_abi_is_traced_and_api_wrappers_work():
    with Session() as s:
        abi = s.abi
        ep = abi.spear_epoll_create()
        fd = abi.rtasr_create()
        assert abi.spear_epoll_ctl(ep, EpollOp.ADD, fd, EPOLLIN | EPOLLOUT) == 0
        assert abi.rtasr_ctl(fd, RtasrCtl.SET_PARAM, b'{"key":"max_send_queue_bytes","value":16}') == 0
        assert abi.rtasr_write(fd, bytes(16)) == 16
        assert abi.rtasr_write(fd, b"x") == -Errno.EAGAIN
        assert abi.spear_epoll_wait(ep, 8, 0) == []
        rows = s.trace.hostcalls("python")
        assert [r["errno"] for r in rows if r["name"] == "rtasr_write"] == ["16", "-EAGAIN"]
        assert rows[3]["args"] == [fd, 1, '{"key":"max_send_queue_bytes","value":16}']
        assert rows[4]["args"] == [fd, "<16 bytes>"] or rows[4]["args"][1] == "\x00" * 16
        assert abi.table is s.host.table  # non-hostcall attributes fall through
        asr = s.rtasr(stub_event_interval_ms=20)
        asr.connect()
        ev = asr.read(timeout_ms=3000)
        assert ev["type"] == "transcription.delta"
        assert any(r["name"] == "rtasr_read" and r["rc"] > 0 for r in s.trace.hostcalls("python"))
        assert "fd table of python" in s.fds._repr_html_()
        html = s._repr_html_()
        assert "Session" in html and "rtasr_write" in html


def test_policy_helpers():
    assert backend_env("stub") == {ENV_TRANSPORT: "stub", ENV_BACKEND: "stub"}
    assert backend_env("local") == {ENV_TRANSPORT: "websocket", ENV_BACKEND: "local"}
    seg = {"strategy": "server_vad", "vad": {"silence_ms": 300}}
    assert json.loads(segmentation_env(seg)[ENV_SEGMENTATION]) == seg
    assert segmentation_env(json.dumps(seg)) == segmentation_env(seg)
    with pytest.raises(ValueError):
        segmentation_env({"strategy": "nope"})
    cfg = HostConfig()
    mic_policy(cfg, "stub")
    assert cfg.mic_device == "stub"
    with pytest.raises(ValueError, match="not found"):
        mic_policy(cfg, "file:/no/such.wav")
    with pytest.raises(ValueError):
        mic_policy(cfg, "speaker")


def test_backend_segmentation_and_mic_reach_the_guest(speech):
    seg = {"strategy": "client_commit", "client_commit": {"flush_interval_ms": 1000}}
    with Session() as s:
        res = s.run("realtime_asr", backend="stub", segmentation=seg, mic=f"file:{speech.path}",
                    env={"SPEAR_MAX_FRAMES": "10"}, timeout=60)
        assert s.config.mic_device == f"file:{speech.path}" and s.config.mic_file == str(speech.path)
    assert res.exit_code == 0, res.stdout
    lines = res.stdout.splitlines()
    assert lines[0].startswith("config backend=stub") and "transport=stub" in lines[0]
    assert json.loads(next(ln for ln in lines if ln.startswith("segmentation "))[13:])["strategy"] == "client_commit"
    assert summary_line(res.stdout)["frames"] == 10


# -- the claim: a blocking cell loses no audio --------------------------------------

def test_blocking_the_caller_loses_no_audio(speech):
    """A guest streams a real-time file mic through the stub while the caller computes for
    3 s in pure Python (holding the GIL as much as Python lets it).

    The mic queue is kept small (25 frames = 500 ms), so any stall of the guest thread or of
    the I/O loop longer than that would drop frames (the source is drift-free: after a
    stall it pushes the missed frames at once).  Nothing runs on the caller's thread, so the
    3 s block is as good as 10 s: the only thing shared is the GIL, and the block contends
    for it the same way every 5 ms switch interval.
    """
    mic = {"sample_rate_hz": 24000, "channels": 1, "format": "pcm16", "frame_ms": 20,
           "source": "file", "max_queue_bytes": 25 * FRAME_BYTES}
    with Session(mic=f"file:{speech.path}") as s:
        h = s.start("realtime_asr", backend="stub",
                    env={"SPEAR_MIC": json.dumps(mic), "SPEAR_RTASR_PARAMS": '{"stub_mode":"realistic"}'})
        deadline = time.perf_counter() + 3.0
        n = 0
        while time.perf_counter() < deadline:  # the "cell": pure-Python work
            n += sum(i * i for i in range(1000)) & 1
        still_streaming = not h.done
        res = s.wait(h, timeout=60)
        summary = s.trace.summary()
        reads = [r for r in s.trace.hostcalls(h.name, "mic_read") if r["rc"] > 0]
        writes = [r for r in s.trace.hostcalls(h.name, "rtasr_write") if r["rc"] > 0]
    assert still_streaming
    assert res.exit_code == 0, res.stdout
    expected_frames = -(-speech.nbytes // FRAME_BYTES)  # the last frame is zero-padded
    stats = summary_line(res.stdout)
    assert stats["dropped"] == 0 and stats["eagain"] == 0
    assert stats["frames"] == expected_frames == len(reads) == len(writes)
    assert sum(r["rc"] for r in writes) == expected_frames * FRAME_BYTES
    assert summary["drops"]["dropped_frames"] == 0 and summary["drops"]["eagain_writes"] == 0
    assert summary["transcript"]["completed"] == stats["completed"] >= 2


# -- nothing outlives its owner --------------------------------------------------------------

def test_fifty_start_stop_cycles_leave_nothing(speech):
    with Session(mic=f"file:{speech.path}") as s:
        # warm up once (I/O loop, imports, stub and file source), then take the baseline
        assert s.io.loop.is_running()
        warm = s.start("realtime_asr", backend="stub", env={"SPEAR_MAX_FRAMES": "5"})
        assert s.wait(warm, timeout=30).exit_code == 0
        gc.collect()
        threads0, fds0 = threading.active_count(), open_fds()
        for i in range(50):
            guest = "realtime_asr" if i % 2 == 0 else "block"
            h = s.start(guest, backend="stub")
            if i % 5 == 0:
                time.sleep(0.05)  # sometimes let it get going (mic, transport tasks)
            res = h.stop()
            assert res.stopped or res.exit_code is not None
        assert s.guests == []
        gc.collect()
        assert threading.active_count() == threads0, [t.name for t in threading.enumerate()]
        assert open_fds() <= fds0
        # every transport and mic task has ended
        end = time.monotonic() + 5
        while io_tasks(s) and time.monotonic() < end:
            time.sleep(0.02)
        assert io_tasks(s) == 0
        assert all(not h.host.table.open_fds() for h in s.handles)
        io_thread_name = s.io.name
    assert not any(t.name == io_thread_name for t in threading.enumerate())


def test_fifty_sessions_leave_nothing():
    def cycle():
        with Session() as s:
            h = s.start("block")
            asr = s.rtasr()
            asr.connect()  # a stub transport task on the I/O loop
            d = s.dashboard(live=True)  # a refresher thread (no loop here), figures
        return s, h, d

    cycle()  # warm-up: matplotlib opens its font files once
    gc.collect()
    threads0, fds0 = threading.active_count(), open_fds()
    for _ in range(50):
        s, h, d = cycle()
        assert s.closed and h.done and d.refresher.mode == "stopped"
    gc.collect()
    assert threading.active_count() == threads0, [t.name for t in threading.enumerate()]
    assert open_fds() <= fds0


def test_closing_stops_the_embedded_server(speech):
    def cycle():
        with Session(mic=f"file:{speech.path}") as s:
            res = s.run("realtime_asr", backend="local", env={"SPEAR_MAX_FRAMES": "40"}, timeout=60)
            assert res.exit_code == 0, res.stdout
            assert "transport=websocket" in res.stdout.splitlines()[0]
            assert s.io.running
        assert not s.io.running

    cycle()  # warm-up: the recogniser's model files, imports
    gc.collect()
    threads0, fds0 = threading.active_count(), open_fds()
    cycle()
    gc.collect()
    assert threading.active_count() == threads0, [t.name for t in threading.enumerate()]
    assert open_fds() <= fds0
