"""Bounded resources and clean lifecycle (issue 13): the worker's inbox and engine
slots, the scrubbed worker environment, the session cap, the outbox cap, the
recognition backlog, cancellation of a vanished session's work."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed

from spear_lab.server import wire
from spear_lab.server.childenv import looks_secret, worker_environ
from spear_lab.server.embedded import EmbeddedServer
from spear_lab.server.engines import EngineSpec
from spear_lab.server.recognizers import ThreadRecognizer
from spear_lab.server.worker import Inbox, _Worker
from srvkit import COMPLETED, FAILED, Client, SlowEngine, ga_update, silence

HERE = Path(__file__).resolve().parent


def frames(data: bytes) -> list[tuple[int, int, dict]]:
    out, i = [], 0
    while i < len(data):
        op, key, n = wire.HEADER.unpack_from(data, i)
        i += wire.HEADER.size
        out.append((op, key, json.loads(data[i:i + n]) if n else {}))
        i += n
    return out


# ---------------------------------------------------------------- worker process parts

def test_inbox_cancellation_overtakes_queued_work():
    r, w = os.pipe()
    inbox = Inbox(os.fdopen(r, "rb"), cap=14_000)
    a, b = (1 << 16) | 1, (2 << 16) | 1
    pcm = bytes(3200)
    with os.fdopen(w, "wb") as f:
        for key in (a, b):
            f.write(wire.encode(wire.OPEN, key, {}))
        for _ in range(2):
            f.write(wire.encode(wire.FEED, a, pcm) + wire.encode(wire.FEED, b, pcm))
        f.write(wire.encode(wire.FINISH, a) + wire.encode(wire.ABORT, a))
        f.write(wire.encode(wire.FEED, b, pcm) * 3)  # past the cap: dropped, marked
        f.write(wire.encode(wire.DROP_LANE, 3 << 16))
    assert inbox.ended.wait(10)  # everything read before the first get
    got = [inbox.get(10) for _ in range(8)]
    ops = [(op, key) for op, key, _ in got]
    assert ops[:4] == [(wire.OPEN, b), (wire.FEED, b), (wire.FEED, b), (wire.ABORT, a)]
    assert ops[4][0] == ops[5][0] == wire.FEED and ops[6][0] == 100  # 100: the overload marker
    assert ops[7] == (wire.DROP_LANE, 3 << 16)
    assert inbox.get(10)[0] == wire.SHUTDOWN  # end of input


def test_worker_caps_engine_streams_and_keeps_the_rest_as_audio(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    out = io.BytesIO()
    w = _Worker(EngineSpec("srvkit:FailingEngine", {"fail_on": []}), out, live=2)
    keys = [(lane << 16) | 1 for lane in (1, 2, 3)]
    pcm = np.zeros(1600, "<i2").tobytes()
    for k in keys:
        w.handle(wire.OPEN, k, json.dumps({}).encode())
        w.handle(wire.FEED, k, pcm)
    assert [w.streams[k].es is not None for k in keys] == [True, True, False]
    assert len(w.streams[keys[2]].kept) == 1
    w.handle(wire.ABORT, keys[0], b"")  # a slot frees: the waiting stream takes it
    assert w.streams[keys[2]].es is not None and w.streams[keys[2]].kept == []
    for k in keys[1:]:
        w.handle(wire.FINISH, k, b"")
    finals = [p for op, _k, p in frames(out.getvalue()) if op == wire.FINAL]
    assert [f["text"] for f in finals] == ["1600 samples", "1600 samples"]
    assert w.streams == {}


def test_worker_fails_a_stream_past_its_length_cap(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setattr("spear_lab.server.worker.MAX_STREAM_SECONDS", 1)
    out = io.BytesIO()
    w = _Worker(EngineSpec("srvkit:FailingEngine", {"fail_on": []}), out, live=1)
    w.handle(wire.OPEN, 1, b"{}")
    w.handle(wire.FEED, 1, np.zeros(17000, "<i2").tobytes())
    w.handle(wire.FINISH, 1, b"")
    ((op, _k, payload),) = frames(out.getvalue())
    assert op == wire.FAILED and "longer than 1 s" in payload["message"]


def test_worker_environment_has_no_credentials():
    env = {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "OPENAI_API_KEY": "sk-1",
           "SPEAR_LAB_SERVER_API_KEY": "k", "SPEAR_LAB_RECOGNITION_CACHE": "memory",
           "HF_TOKEN": "t", "LAB_SERVICE": "x", "AWS_SECRET_ACCESS_KEY": "s", "GITHUB_PAT": "p"}
    assert worker_environ(env) == {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C",
                                   "SPEAR_LAB_RECOGNITION_CACHE": "memory"}
    assert worker_environ(env, extra_drop=["HOME"]).keys() == {"PATH", "LC_ALL",
                                                              "SPEAR_LAB_RECOGNITION_CACHE"}
    assert looks_secret("MY_APIKEY") and looks_secret("DB_PASSWORD") and not looks_secret("KEYBOARD")


def test_workers_get_no_backend_credential(monkeypatch):
    """Every credential a backend names (the host's registry, read here in the test
    only: the server knows nothing of it) is absent from a worker's environment."""
    from spear_lab.transports.backends import Backend, default_registry
    names = {b.credential_env for b in default_registry() if b.credential_env}
    names.add(Backend("lab", "ws://127.0.0.1:1", credential_env="LAB_SERVICE_CRED").credential_env)
    for n in names:
        monkeypatch.setenv(n, "secret-value")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    with EmbeddedServer(workers=1, engine=EngineSpec("srvkit:EnvEngine")) as srv:
        async def run():
            c = await Client.open(srv.url)
            await c.recv()
            await c.send(ga_update(None))
            await c.recv()
            await c.stream(silence(300))
            await c.send({"type": "input_audio_buffer.commit"})
            ev = (await c.until(COMPLETED))[-1]
            await c.close()
            return ev["transcript"].split()
        seen = asyncio.run(run())
    assert "PATH" in seen and "PYTHONPATH" in seen
    assert not names & set(seen), names & set(seen)


# ---------------------------------------------------------------- connection bounds

def test_session_cap_refuses_with_an_error_and_1013():
    with EmbeddedServer(workers=1, max_sessions=2) as srv:
        async def run():
            a, b = await Client.open(srv.url), await Client.open(srv.url)
            await a.recv(), await b.recv()
            c = await Client.open(srv.url)
            ev = await c.recv()
            with pytest.raises(ConnectionClosed) as info:
                await c.recv()
            await a.close()
            await asyncio.sleep(0.2)
            d = await Client.open(srv.url)  # a place is free again
            ok = await d.recv()
            await b.close(), await d.close()
            return ev, info.value.rcvd.code, ok
        ev, code, ok = asyncio.run(run())
    assert ev["type"] == "error" and ev["error"]["code"] == "session_limit_reached"
    assert "at most 2" in ev["error"]["message"] and code == 1013
    assert ok["type"] == "session.created"


def test_a_client_that_does_not_read_is_closed_with_1008_and_others_go_on():
    with EmbeddedServer(workers=1, max_outbox_bytes=64 * 1024) as srv:
        async def run():
            lazy = await Client.open(srv.url, max_queue=None)
            await asyncio.sleep(0.2)
            (conn,) = srv.server._connections
            lazy.ws.transport.pause_reading()  # never read: events pile up on the server
            bad = json.dumps({"type": "bogus", "event_id": "x" * 400})
            for _ in range(20000):
                try:
                    await asyncio.wait_for(lazy.ws.send(bad), 2.0)
                except (ConnectionClosed, asyncio.TimeoutError):
                    break
                if conn.closing:
                    break
            other = await Client.open(srv.url)
            first = await other.recv()  # the server still answers others at once
            await other.close()
            for _ in range(200):
                if conn not in srv.server._connections:
                    break
                await asyncio.sleep(0.05)
            lazy.ws.transport.abort()
            return first, conn
        first, conn = asyncio.run(run())
        assert conn not in srv.server._connections
    assert first["type"] == "session.created"
    sent = conn.ws.protocol.close_sent
    assert sent is not None and sent.code == 1008 and "not reading" in sent.reason
    assert conn.outbox_bytes <= 64 * 1024


def test_recognition_backlog_is_bounded_per_session(one_sentence):
    """Commits past ``max_backlog`` that arrive without a client message to hold back
    (here: three utterances in one append) fail with the reason; the session reads
    no more messages while its backlog is full."""
    recognizer = ThreadRecognizer(SlowEngine(0.5), max_workers=1)
    with EmbeddedServer(recognizer=recognizer, max_backlog=1, vad="statistical") as srv:
        async def run():
            c = await Client.open(srv.url)
            await c.recv()
            await c.send(ga_update({"type": "server_vad", "silence_duration_ms": 500}))
            await c.recv()
            await c.stream(one_sentence * 3, chunk_bytes=len(one_sentence) * 3)
            await c.send({"type": "input_audio_buffer.clear"})
            evs = await c.until("input_audio_buffer.cleared", timeout=20)
            await c.close()
            return [e for e in evs if e["type"] in (COMPLETED, FAILED)]
        done = asyncio.run(run())
    assert [e["type"] for e in done] == [COMPLETED, FAILED, FAILED]
    for failure in done[1:]:
        assert "backlog full" in failure["error"]["message"]
        assert failure["error"]["code"] == "transcription_failed"


def test_a_vanished_session_frees_its_worker_streams(one_sentence):
    """Ten sessions stream a minute of audio each without commits and vanish; the
    worker drops their queued audio and streams (bench_server_faults measures how fast)."""
    with EmbeddedServer(workers=1, engine="pocketsphinx") as srv:
        workers = srv.server.recognizer._workers

        async def one():
            c = await Client.open(srv.url)
            await c.recv()
            await c.send(ga_update(None))
            await c.recv()
            await c.stream(one_sentence * 12, chunk_bytes=48000)
            c.ws.transport.abort()
        async def run():
            await asyncio.gather(*(one() for _ in range(10)))
        asyncio.run(run())
        end = time.monotonic() + 30
        while time.monotonic() < end and (srv.server._connections or any(w.streams for w in workers)):
            time.sleep(0.05)
        assert not srv.server._connections and all(not w.streams and not w.lanes for w in workers)
