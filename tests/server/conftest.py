"""Fixtures for the server tests: generated speech (cached per session) and servers."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from spear_lab.server.embedded import EmbeddedServer
from spear_lab.testaudio import SENTENCES, Track, speech_track

PAUSES = [1.0, 1.1, 0.9, 1.2, 1.0]


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> Track:
    """The six test sentences (espeak-ng en-us+klatt4 -s 190, sox -D to 24 kHz),
    separated by ~1 s pauses; generated once per test session into a tmp dir."""
    d = tmp_path_factory.mktemp("speech")
    track = speech_track(SENTENCES[:6], PAUSES, rate=24000)
    np.save(d / "track.npy", track.pcm)
    (d / "segments.json").write_text(json.dumps(track.segments))
    return Track(np.load(d / "track.npy"), 24000,
                 [tuple(s) for s in json.loads((d / "segments.json").read_text())])


@pytest.fixture(scope="session")
def one_sentence(speech) -> bytes:
    """The first sentence with 0.5 s of silence before and 1 s after (24 kHz pcm16)."""
    s, e, _ = speech.segments[0]
    return speech.pcm[int((s - 0.5) * 24000):int((e + 1.0) * 24000)].tobytes()


@pytest.fixture(scope="session")
def server():
    """A default server: GA by default, beta by header, 2 recognition workers."""
    with EmbeddedServer(workers=2) as srv:
        yield srv


@pytest.fixture(scope="session")
def lenient_server():
    """A server in the lenient (legacy-client) profile, 1 recognition worker."""
    with EmbeddedServer(workers=1, lenient=True) as srv:
        yield srv


@pytest.fixture(scope="session")
def det_server():
    """A deterministic server (counter ids, fixed clock, lock-step recognition)."""
    with EmbeddedServer(workers=1, deterministic=True) as srv:
        yield srv


@pytest.fixture
def no_leaks():
    """Checks that a test leaves no extra thread behind."""
    before = {t.ident for t in threading.enumerate()}
    yield
    extra = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    for t in extra:  # a thread that is on its way out (e.g. asyncio's waitpid) gets a moment
        t.join(2.0)
    extra = [t for t in extra if t.is_alive()]
    assert not extra, f"threads left running: {extra}"
