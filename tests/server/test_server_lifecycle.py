"""Lifecycle: nothing outlives a connection or a server; one session never stalls another."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path

import psutil
import pytest
from srvkit import COMPLETED, FAILED, Client, b64, ga_update, silence

from spear_lab.server.embedded import EmbeddedServer
from spear_lab.server.engines import EngineSpec
from spear_lab.server.protocol import TranscriptionSession

HERE = Path(__file__).resolve().parent


def on_server_loop(srv: EmbeddedServer, coro_fn):
    return asyncio.run_coroutine_threadsafe(coro_fn(), srv._loop).result(10)


def spear_tasks(srv: EmbeddedServer) -> list[str]:
    async def names():
        return sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("spear-send")
                      or t.get_name().startswith("spear-results") or t.get_name().startswith("spear-idle"))
    return on_server_loop(srv, names)


def wait_for(pred, attempts: int = 200) -> None:
    """Poll ``pred`` (bounded: 200 x 50 ms) - a wait, not a timing assertion."""
    import time
    for _ in range(attempts):
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_disconnect_mid_utterance_leaves_nothing_running(one_sentence):
    with EmbeddedServer(workers=1) as srv:
        async def run():
            c = await Client.open(srv.url)
            await c.recv()
            await c.send(ga_update({"type": "server_vad", "silence_duration_ms": 500}))
            await c.recv()
            await c.stream(one_sentence[:len(one_sentence) // 2 // 2 * 2])
            await c.until("input_audio_buffer.speech_started")
            assert spear_tasks(srv)  # the session is live
            workers = srv.server.recognizer._workers
            assert sum(len(w.streams) for w in workers) == 1  # an utterance in recognition
            c.ws.transport.abort()  # drop the connection, no close frame
        asyncio.run(run())
        workers = srv.server.recognizer._workers
        wait_for(lambda: not srv.server._connections)
        assert spear_tasks(srv) == []
        assert all(not w.lanes and not w.streams for w in workers)
        assert all(w.proc.returncode is None for w in workers)  # workers stay for new sessions

        async def again():  # and the server still works
            c = await Client.open(srv.url)
            await c.recv()
            await c.send(ga_update(None))
            await c.recv()
            await c.stream(one_sentence)
            await c.send({"type": "input_audio_buffer.commit"})
            ev = (await c.until(COMPLETED))[-1]
            await c.close()
            return ev
        assert "quick" in asyncio.run(again())["transcript"]


def test_stop_leaves_no_thread_socket_or_process(no_leaks):
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    srv = EmbeddedServer(workers=2).start()
    port = srv.port
    workers = [p.pid for p in me.children(recursive=True) if p.pid not in before]
    assert len(workers) == 2

    async def touch():
        c = await Client.open(srv.url)
        await c.recv()
        await c.stream(silence(300))  # leave the connection open on purpose
        return c
    client_loop = asyncio.new_event_loop()
    c = client_loop.run_until_complete(touch())
    srv.stop()
    srv.stop()  # idempotent
    assert not srv.running
    with pytest.raises(RuntimeError):
        _ = srv.url
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert not [p for p in me.children(recursive=True) if p.pid in workers]
    client_loop.run_until_complete(c.ws.close())
    client_loop.close()


def test_start_async_on_the_callers_loop():
    children = {p.pid for p in psutil.Process().children(recursive=True)}

    async def run():
        before = asyncio.all_tasks()
        async with EmbeddedServer(workers=1) as srv:
            assert srv.url.startswith("ws://127.0.0.1:") and srv.url.endswith(
                "/v1/realtime?intent=transcription")
            c = await Client.open(srv.url)
            assert (await c.recv())["type"] == "session.created"
            await c.close()
            with pytest.raises(RuntimeError):
                srv.stop()  # would block its own loop
        await asyncio.sleep(0)
        return asyncio.all_tasks() - before
    assert asyncio.run(run()) == set()
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= children


def test_start_on_a_hosts_io_loop(no_leaks):
    class Io:  # like spear_lab.host.ioloop.IoLoop: a loop running in its own thread
        def __init__(self):
            self.loop = asyncio.new_event_loop()
            self.thread = threading.Thread(target=self.loop.run_forever)
            self.thread.start()

        def close(self):
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            self.loop.close()
    io = Io()
    try:
        srv = EmbeddedServer(io=io, workers=1).start()
        assert srv._loop is io.loop and srv._thread is None
        assert asyncio.run(first_event(srv.url))["type"] == "session.created"
        srv.stop()

        async def tasks():
            return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert asyncio.run_coroutine_threadsafe(tasks(), io.loop).result(5) == []
    finally:
        io.close()


async def first_event(url: str) -> dict:
    c = await Client.open(url)
    try:
        return await c.recv()
    finally:
        await c.close()


def test_double_start_is_an_error():
    with EmbeddedServer(workers=1) as srv:
        with pytest.raises(RuntimeError):
            srv.start()


def test_worker_death_fails_the_item_and_a_new_worker_takes_over(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    spec = EngineSpec("srvkit:CrashOnceEngine", {"marker": str(tmp_path / "crashed")})
    with EmbeddedServer(workers=1, engine=spec) as srv:
        async def utterance(c):
            await c.stream(silence(400))
            await c.send({"type": "input_audio_buffer.commit"})
            return (await c.until(lambda e: e["type"] in (COMPLETED, FAILED), 60))[-1]

        async def run():
            c = await Client.open(srv.url)
            await c.recv()
            await c.send(ga_update(None))
            await c.recv()
            first = await utterance(c)
            await c.close()
            wait_for(lambda: not srv.server.recognizer._workers[0].dead)
            c = await Client.open(srv.url)
            await c.recv()
            await c.send(ga_update(None))
            await c.recv()
            second = await utterance(c)
            await c.close()
            return first, second
        first, second = asyncio.run(run())
    assert first["type"] == FAILED and "worker exited" in first["error"]["message"]
    assert second["type"] == COMPLETED and second["transcript"] == "6400 samples"


def test_a_busy_session_does_not_stall_another(server, speech, monkeypatch):
    """While session A makes the server decode a 15 MiB append and then recognise three
    sentences, session B keeps getting answers (counted, not timed)."""
    async def b_pings(stop: asyncio.Event) -> int:
        c = await Client.open(server.url)
        await c.recv()
        n = 0
        while not stop.is_set():
            await c.send({"type": "input_audio_buffer.clear"})
            assert (await c.recv())["type"] == "input_audio_buffer.cleared"
            n += 1
            await asyncio.sleep(0.01)
        await c.close()
        return n

    async def a_big_append(stop: asyncio.Event) -> None:
        c = await Client.open(server.url)
        await c.recv()
        await c.send(ga_update(None, transcription=None))
        await c.recv()
        await asyncio.sleep(0.2)
        await c.send({"type": "input_audio_buffer.append", "audio": b64(bytes(15 * 1024 * 1024))})
        await c.send({"type": "input_audio_buffer.commit"})
        await c.until("input_audio_buffer.committed", 60)
        stop.set()
        await c.close()

    async def a_recognition(stop: asyncio.Event) -> None:
        c = await Client.open(server.url)
        await c.recv()
        await c.send(ga_update({"type": "server_vad", "silence_duration_ms": 500}))
        await c.recv()
        three = speech.pcm[:int((speech.segments[2][1] + 1) * 24000)].tobytes()
        await c.stream(three, 48000)
        for _ in range(3):
            await c.until(COMPLETED, 60)
        stop.set()
        await c.close()

    threads = []
    real_prepare = TranscriptionSession.prepare

    def spy(self, data):
        if len(data) > 1_000_000:
            threads.append(threading.current_thread())
        return real_prepare(self, data)
    monkeypatch.setattr(TranscriptionSession, "prepare", spy)

    async def run(a):
        stop = asyncio.Event()
        n, _ = await asyncio.gather(b_pings(stop), a(stop))
        return n
    assert asyncio.run(run(a_big_append)) >= 5
    assert len(threads) == 1 and threads[0] is not server._thread  # decoded off the loop
    assert asyncio.run(run(a_recognition)) >= 20


def test_an_engine_that_cannot_load_fails_start_cleanly(no_leaks):
    from spear_lab.server.engines import RecognitionError
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    bad = EngineSpec("spear_lab.server.engines:PocketSphinxEngine", {"no_such_option": 1})
    with pytest.raises(RecognitionError, match="no_such_option"):
        EmbeddedServer(engine=bad, workers=1).start()
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= children
