"""Protocol conformance over the wire: URLs, dialects, auth, errors, isolation."""

from __future__ import annotations

import asyncio
import json
import logging

import jiwer
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from spear_lab.server.embedded import EmbeddedServer
from spear_lab.server.protocol import MAX_APPEND_BYTES
from spear_lab.server.recognizers import ThreadRecognizer
from srvkit import COMPLETED, FAILED, Client, FailingEngine, b64, ga_update, norm, silence

BETA = {"OpenAI-Beta": "realtime=v1"}


def base(url: str) -> str:
    return url.split("?")[0]


async def first_event(url: str, headers=None, **kw) -> dict:
    c = await Client.open(url, headers, **kw)
    try:
        return await c.recv()
    finally:
        await c.close()


@pytest.mark.parametrize("query,model", [("?intent=transcription", None),
                                         ("?model=gpt-4o-transcribe", "gpt-4o-transcribe"),
                                         ("?model=gpt-realtime", None)])
def test_url_shapes_ga(server, query, model):
    """GA sessions start with transcription off, unless the URL names a transcription model."""
    ev = asyncio.run(first_event(base(server.url) + query))
    assert ev["type"] == "session.created"
    assert ev["session"]["type"] == "transcription"
    tr = ev["session"]["audio"]["input"]["transcription"]
    assert (tr and tr["model"]) == model


def test_lenient_url_shapes(lenient_server):
    """The lenient profile accepts a bare URL and starts with transcription on."""
    ev = asyncio.run(first_event(base(lenient_server.url)))
    assert ev["session"]["audio"]["input"]["transcription"]["model"] == "gpt-4o-transcribe"


def test_short_path_and_unknown_path(server):
    url = f"ws://127.0.0.1:{server.port}/realtime?intent=transcription"
    assert asyncio.run(first_event(url))["type"] == "session.created"
    with pytest.raises(InvalidStatus) as info:
        asyncio.run(first_event(f"ws://127.0.0.1:{server.port}/v1/chat"))
    assert info.value.response.status_code == 404


@pytest.mark.parametrize("query,kind,obj", [
    ("?intent=transcription", "transcription_session.created", "realtime.transcription_session"),
    ("?model=gpt-realtime", "session.created", "realtime.session")])
def test_beta_header_selects_beta_shape(lenient_server, query, kind, obj):
    ev = asyncio.run(first_event(base(lenient_server.url) + query, BETA))
    assert ev["type"] == kind and ev["session"]["object"] == obj
    assert ev["session"]["input_audio_format"] == "pcm16"


def test_strict_ga_rejects_beta_with_4000():
    async def run(url):
        c = await Client.open(url, BETA)
        ev = await c.recv()
        with pytest.raises(ConnectionClosed) as info:
            await c.recv()
        return ev, info.value.rcvd.code
    with EmbeddedServer(workers=1, strict_ga=True, lenient=True) as srv:
        ev, code = asyncio.run(run(srv.url))
        assert code == 4000
        assert ev["type"] == "error"
        assert ev["error"]["code"] == "beta_api_shape_disabled"
        assert ev["error"]["type"] == "invalid_request_error"
        assert ev["error"]["message"].startswith("The Realtime Beta API is no longer supported.")
        assert asyncio.run(first_event(srv.url))["type"] == "session.created"  # GA still fine


def test_server_option_selects_beta_without_header():
    with EmbeddedServer(workers=1, dialect="beta") as srv:
        assert asyncio.run(first_event(srv.url, dialect="beta"))["type"] == \
            "transcription_session.created"
        # the server's own dialect accepts the beta header too
        assert asyncio.run(first_event(srv.url, BETA))["type"] == "transcription_session.created"


async def refused(url: str, headers=None, **kw) -> tuple[dict, int, str]:
    """The error event and close code/reason of a connection the server refuses."""
    c = await Client.open(url, headers, **kw)
    ev = await c.recv()
    with pytest.raises(ConnectionClosed) as info:
        await c.recv()
    return ev, info.value.rcvd.code, info.value.rcvd.reason


def test_auth_checks_key_and_never_leaks_it(caplog):
    """OpenAI profile: a bad or missing key is refused after the upgrade with
    invalid_api_key and close 3000; lenient: HTTP 401 before it."""
    key = "sk-test-SECRET-1234567890"
    caplog.set_level(logging.DEBUG)
    with EmbeddedServer(workers=1, api_key=key, require_auth=True, lenient=True) as srv:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            with pytest.raises(InvalidStatus) as info:
                asyncio.run(first_event(srv.url, headers))
            assert info.value.response.status_code == 401
            assert key.encode() not in info.value.response.body
    with EmbeddedServer(workers=1, api_key=key, require_auth=True) as srv:
        for headers, words in (({}, "didn't provide an API key"),
                               ({"Authorization": "Bearer wrong"}, "Incorrect API key")):
            ev, code, reason = asyncio.run(refused(srv.url, headers))
            assert (ev["type"], ev["error"]["code"], code) == ("error", "invalid_api_key", 3000)
            assert words in ev["error"]["message"] and key not in json.dumps(ev)
            assert reason == "invalid_request_error.invalid_api_key"
        ev = asyncio.run(first_event(srv.url, {"Authorization": f"Bearer {key}"}))
        assert ev["type"] == "session.created"

        async def subprotocol():
            c = await Client.open(srv.url, subprotocols=["realtime", f"openai-insecure-api-key.{key}"])
            assert c.ws.subprotocol == "realtime"
            ev = await c.recv()
            await c.close()
            return ev
        assert asyncio.run(subprotocol())["type"] == "session.created"
        assert key not in repr(srv.options)
    server_records = [r for r in caplog.records if not r.name.startswith("websockets.client")]
    assert any("Authorization" in r.getMessage() for r in server_records)  # headers were logged...
    assert all(key not in r.getMessage() for r in server_records)  # ...but not the key


def test_non_loopback_requires_a_key():
    with pytest.raises(ValueError, match="API key"):
        EmbeddedServer(host="0.0.0.0").start()


MALFORMED = [
    ("{not json", "invalid_json"),
    (json.dumps({"event_id": "m1"}), "invalid_event"),
    (json.dumps({"type": "bogus.event", "event_id": "m1"}), "invalid_value"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": "***", "event_id": "m1"}),
     "invalid_value"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": ["x"], "event_id": "m1"}),
     "invalid_type"),
    (json.dumps({"type": "input_audio_buffer.commit", "event_id": "m1"}),
     "input_audio_buffer_commit_empty"),
]


@pytest.mark.parametrize("profile,headers", [("openai", None), ("lenient", None),
                                             ("lenient", BETA)], ids=["ga", "lenient-ga", "beta"])
def test_malformed_events_over_the_wire_keep_the_connection(server, lenient_server, profile,
                                                            headers):
    srv = server if profile == "openai" else lenient_server
    binary = "invalid_event" if profile == "openai" else "invalid_json"  # OpenAI: text frames only

    async def run():
        c = await Client.open(srv.url, headers)
        await c.recv()
        for raw, code in MALFORMED + [(b"\x00\x01binary", binary),
                                      (json.dumps({"type": "input_audio_buffer.clear"}).encode(),
                                       binary if profile == "openai" else None)]:
            if code is None:
                await c.send(raw)
                assert (await c.recv())["type"] == "input_audio_buffer.cleared"
                continue
            await c.send(raw)
            ev = await c.recv()
            assert ev["type"] == "error" and ev["error"]["code"] == code, (raw, ev)
            assert ev["error"]["event_id"] == ("m1" if isinstance(raw, str) and "m1" in raw else None)
            assert set(ev["error"]) == {"type", "code", "message", "param", "event_id"}
        await c.send({"type": "input_audio_buffer.clear"})
        assert (await c.recv())["type"] == "input_audio_buffer.cleared"
        await c.close()
    asyncio.run(run())


def test_append_limit_is_15_mib(server):
    async def run():
        c = await Client.open(server.url)
        await c.recv()
        await c.send(ga_update(None, transcription=None))
        await c.recv()
        await c.send({"type": "input_audio_buffer.append", "audio": b64(bytes(MAX_APPEND_BYTES + 2)),
                      "event_id": "big"})
        ev = await c.recv()
        assert ev["type"] == "error" and ev["error"]["param"] == "audio" and ev["error"]["event_id"] == "big"
        await c.send({"type": "input_audio_buffer.append", "audio": b64(bytes(MAX_APPEND_BYTES))})
        await c.send({"type": "input_audio_buffer.commit"})
        ev = await c.recv(30)
        assert ev["type"] == "input_audio_buffer.committed"
        await c.close()
    asyncio.run(run())


def test_two_concurrent_sessions_stay_isolated(server, speech):
    def sentence(i):
        s, e, _ = speech.segments[i]
        return speech.pcm[int((s - 0.4) * 24000):int((e + 0.8) * 24000)].tobytes()

    async def session(pcm, model):
        c = await Client.open(server.url)
        await c.recv()
        await c.send(ga_update({"type": "server_vad", "silence_duration_ms": 500},
                               transcription={"model": model}))
        await c.recv()
        await c.stream(pcm, 2400)
        evs = await c.until(COMPLETED, 60)
        await c.no_event(0.3)
        await c.close()
        return evs

    async def both():
        return await asyncio.gather(session(sentence(0), "gpt-4o-transcribe"),
                                    session(sentence(1), "whisper-1"))
    a, b = asyncio.run(both())
    items_a = {e["item_id"] for e in a if "item_id" in e}
    items_b = {e["item_id"] for e in b if "item_id" in e}
    assert len(items_a) == len(items_b) == 1 and not items_a & items_b
    for mine, other, ev in ((0, 1, a[-1]), (1, 0, b[-1])):  # each got its own sentence
        assert jiwer.wer(norm(speech.texts[mine]), norm(ev["transcript"])) < \
            jiwer.wer(norm(speech.texts[other]), norm(ev["transcript"]))
    assert a[-1]["usage"]["type"] == "tokens" and b[-1]["usage"]["type"] == "duration"
    assert sum(e["type"] == COMPLETED for e in a) == sum(e["type"] == COMPLETED for e in b) == 1


def test_failed_transcription_event_and_recovery():
    recognizer = ThreadRecognizer(FailingEngine(fail_on=(1,)))
    with EmbeddedServer(recognizer=recognizer) as srv:
        async def run():
            c = await Client.open(srv.url)
            await c.recv()
            await c.send(ga_update(None, transcription={"model": "gpt-4o-transcribe"}))
            await c.recv()
            results = []
            for _ in range(2):
                await c.stream(silence(500))
                await c.send({"type": "input_audio_buffer.commit"})
                results.append((await c.until(lambda e: e["type"] in (COMPLETED, FAILED)))[-1])
            await c.close()
            return results
        failed, ok = asyncio.run(run())
    assert failed["type"] == FAILED and failed["content_index"] == 0
    assert failed["error"]["message"] == "injected failure" and failed["error"]["type"] == "server_error"
    assert ok["type"] == COMPLETED and ok["transcript"] == "8000 samples"
