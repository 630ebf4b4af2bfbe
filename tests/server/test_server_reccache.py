"""Recognition once per distinct audio: the content-addressed cache around the real default
engine, in-process and through a shared directory, and its hit count reachable from the
embedded server."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from srvkit import COMPLETED, Client, ga_update

from spear_lab.server import reccache
from spear_lab.server.embedded import EmbeddedServer
from spear_lab.server.engines import engine_spec

DEFAULT_ENGINE = engine_spec()


@pytest.fixture(scope="module")
def engine():
    eng = DEFAULT_ENGINE.build()
    yield eng
    eng.close()


def sentence16k(speech, k=0) -> np.ndarray:
    s, e, _ = speech.segments[k]
    pcm = speech.pcm[int((s - 0.3) * 24000):int((e + 0.4) * 24000)]
    idx = np.arange(0, len(pcm), 1.5).astype(int)      # 24 kHz -> 16 kHz, crude but fixed
    return pcm[idx].astype(np.int16)


def recognise(eng, pcm, chunk=1600, **kw):
    st = eng.open_stream(**kw)
    for i in range(0, len(pcm), chunk):
        st.accept(pcm[i:i + chunk])
    return st.finish(), getattr(st, "cache_hit", None)


def test_identical_audio_is_recognised_once(engine, speech, tmp_path):
    stats = reccache.CacheStats()
    cached = reccache.CachingEngine(engine, reccache.RecognitionStore(), reccache.engine_id(engine, DEFAULT_ENGINE),
                                    stats)
    pcm = sentence16k(speech)
    first, hit1 = recognise(cached, pcm)
    again, hit2 = recognise(cached, pcm, chunk=4000)    # other chunking, same bytes
    assert (hit1, hit2) == (False, True) and again == first and first.text
    assert recognise(engine, pcm)[0].text == first.text  # the same as without the cache
    # anything that changes the answer misses: the audio, the prompt, the input state
    _, h = recognise(cached, pcm[:-160])
    assert h is False
    _, h = recognise(cached, pcm, prompt="weather report")
    assert h is False
    if first.state is not None:
        _, h = recognise(cached, pcm, state=first.state)
        assert h is False
    snap = stats.snapshot()
    assert snap["hits"] == 1 and snap["misses"] == snap["lookups"] - 1 and 0 < snap["hit_rate"] < 1


def test_a_shared_directory_serves_other_processes(engine, speech, tmp_path):
    ident = reccache.engine_id(engine, DEFAULT_ENGINE)
    pcm = sentence16k(speech, 1)
    a = reccache.CachingEngine(engine, reccache.RecognitionStore(directory=tmp_path), ident)
    first, _ = recognise(a, pcm)
    assert list(tmp_path.glob("*/*.json"))
    b = reccache.CachingEngine(engine, reccache.RecognitionStore(directory=tmp_path), ident)  # a fresh LRU
    got, hit = recognise(b, pcm)
    assert hit is True and got == first
    # a different engine id never answers from those entries
    c = reccache.CachingEngine(engine, reccache.RecognitionStore(directory=tmp_path), ident + "x")
    assert recognise(c, pcm)[1] is False


def test_lru_byte_cap_and_off_switch(engine):
    store = reccache.RecognitionStore(max_bytes=200)
    from spear_lab.server.engines import Recognition

    for i in range(10):
        store.put(f"{i:064x}", Recognition("word " * 5))
    assert 0 < len(store) < 10 and store.get(f"{0:064x}") is None and store.get(f"{9:064x}") is not None
    assert reccache.wrap(engine, setting="off") is engine and reccache.wrap(engine, setting="") is engine
    assert isinstance(reccache.wrap(engine, setting="memory"), reccache.CachingEngine)


def test_embedded_server_counts_hits_across_sessions(speech, monkeypatch):
    monkeypatch.setenv(reccache.ENV, "memory")
    s, e, _ = speech.segments[2]
    audio = speech.pcm[int((s - 0.3) * 24000):int((e + 0.4) * 24000)].tobytes()

    async def session(url):
        c = await Client.open(url)
        await c.recv()
        await c.send(ga_update(None))
        await c.recv()
        await c.stream(audio)
        await c.send({"type": "input_audio_buffer.commit"})
        text = (await c.until(COMPLETED))[-1]["transcript"]
        await c.close()
        return text

    with EmbeddedServer(workers=1) as srv:
        assert srv.recognition_stats()["lookups"] == 0
        texts = [asyncio.run(session(srv.url)) for _ in range(3)]
        stats = srv.recognition_stats()
    assert texts[0] and texts == [texts[0]] * 3
    assert (stats["hits"], stats["misses"]) == (2, 1)
