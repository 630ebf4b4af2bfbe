"""The browser microphone source (mic_device="browser"), fed through the real widget's
comm message handler (ipywidgets' ``_handle_msg``, as the kernel calls it): framing,
resampling, drop-oldest, gaps, jitter, EPOLLERR on refusal / ended track / stall, the
policy, and the widget's static fallback."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from spear_lab import Host
from spear_lab.abi.constants import EPOLLERR, EPOLLHUP, EPOLLIN, Errno, MicCtl
from spear_lab.audio import browser
from spear_lab.audio.browser import BrowserFeed
from spear_lab.host import HostConfig
from spear_lab.session import Session, mic_policy
from spear_lab.views import BrowserMic

ALL = EPOLLIN | EPOLLERR | EPOLLHUP


def page(widget: BrowserMic, content: dict, buffers: list | None = None) -> None:
    """Deliver one page message the way the kernel's comm does."""
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}},
                        "buffers": buffers or []})


def grant(widget: BrowserMic, device: str = "Fake Default Audio Input") -> None:
    page(widget, {"type": "state", "state": "granted", "error": None, "device": device,
                  "input_rate": 48000})


def chunk(widget: BrowserMic, samples: np.ndarray, pos: int) -> None:
    page(widget, {"type": "pcm", "pos": pos, "rate": widget.rate, "t": time.time() * 1000},
         [samples.astype("<i2").tobytes()])


def ramp(n: int, start: int = 0) -> np.ndarray:
    return ((np.arange(start, start + n) * 7) % 20000 - 10000).astype(np.int16)


def wait_until(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def status(host: Host, fd: int) -> dict:
    return json.loads(host.mic_ctl(fd, MicCtl.GET_STATUS))


def open_mic(host: Host, **cfg) -> int:
    fd = host.mic_create()
    assert host.mic_ctl(fd, MicCtl.SET_PARAM, json.dumps(cfg).encode()) == 0
    return fd


def wait_events(host: Host, fd: int, mask: int, timeout_ms: int = 3000) -> int:
    ep = host.spear_epoll_create()
    host.spear_epoll_ctl(ep, 1, fd, mask)
    try:
        got = host.spear_epoll_wait(ep, 8, timeout_ms)
    finally:
        host.spear_epoll_close(ep)
    return got[0][1] if got else 0


@pytest.fixture
def widget():
    return BrowserMic(rate=24000)


@pytest.fixture
def host(widget):
    with Host(HostConfig(mic_device="browser", browser_mic=widget.feed)) as h:
        yield h


def test_frames_are_the_page_samples_exactly(host, widget):
    fd = open_mic(host, sample_rate_hz=24000, frame_ms=20)
    assert status(host, fd)["source"] == "browser"
    grant(widget)
    sent = ramp(480 * 10)
    for k in range(0, len(sent), 360):  # chunks that do not line up with frames
        chunk(widget, sent[k:k + 360], k)
    wait_until(lambda: status(host, fd)["queue_bytes"] == 9600)
    got = b"".join(host.mic_read(fd) for _ in range(10))
    assert got == sent.tobytes()
    assert host.mic_read(fd) == -Errno.EAGAIN
    st = status(host, fd)
    assert st["dropped_frames"] == 0 and st["gap_frames"] == 0 and st["last_error"] is None


def test_resampled_to_the_guest_rate(host):
    w48 = BrowserMic(rate=48000)
    mic_policy(host.context.config, w48)
    fd = open_mic(host, sample_rate_hz=16000, frame_ms=20)
    grant(w48)
    t = np.arange(48000) / 48000
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    for k in range(0, 48000, 960):
        chunk(w48, tone[k:k + 960], k)
    wait_until(lambda: status(host, fd)["queue_bytes"] >= 640 * 45)
    frames = []
    while (f := host.mic_read(fd)) != -Errno.EAGAIN:
        assert len(f) == 640
        frames.append(f)
    x = np.frombuffer(b"".join(frames), "<i2").astype(float)
    peak = np.argmax(np.abs(np.fft.rfft(x))) * 16000 / len(x)
    assert abs(peak - 440) < 5


def test_drop_oldest_beyond_the_cap(host, widget):
    fd = open_mic(host, sample_rate_hz=24000, frame_ms=20, max_queue_bytes=2000)
    grant(widget)
    sent = ramp(480 * 10)
    chunk(widget, sent, 0)
    wait_until(lambda: status(host, fd)["dropped_frames"] == 8)
    assert status(host, fd)["queue_bytes"] == 1920
    assert host.mic_read(fd) == sent[480 * 8:480 * 9].tobytes()  # the newest survive
    assert host.mic_read(fd) == sent[480 * 9:].tobytes()


def test_a_gap_in_the_stream_is_counted_as_dropped_frames(host, widget):
    fd = open_mic(host, sample_rate_hz=24000, frame_ms=20)
    grant(widget)
    chunk(widget, ramp(480), 0)
    chunk(widget, ramp(480), 480 + 4800)  # 200 ms missing: the page saw a suspended context
    wait_until(lambda: status(host, fd)["gap_frames"] == 10)
    st = status(host, fd)
    assert st["dropped_frames"] == 10 and st["queue_bytes"] == 1920
    assert widget.feed.stats()["gap_seconds"] == 0.2


def test_jitter_figure_reports_late_chunks(host, widget):
    fd = open_mic(host, sample_rate_hz=24000, frame_ms=20)
    assert status(host, fd)["jitter_ms"] == {"p50": None, "p99": None}
    grant(widget)
    t0 = time.monotonic()
    for k in range(40):
        # due every 20 ms; chunk 30 is held back 150 ms (a stalled network), then a burst
        due = t0 + k * 0.020 + (0.150 if k >= 30 else 0.0)
        time.sleep(max(0.0, due - time.monotonic()))
        chunk(widget, ramp(480), k * 480)
    j = status(host, fd)["jitter_ms"]
    assert j["p50"] < 30, j
    assert j["p99"] >= 120, j


@pytest.mark.parametrize("state,error,words", [
    ("denied", "NotAllowedError: Permission denied", ["permission refused", "NotAllowedError"]),
    ("ended", "the microphone track ended (device removed)", ["track ended", "device removed"]),
    ("error", "NotFoundError: Requested device not found", ["failed", "NotFoundError"]),
])
def test_page_failures_are_epollerr_naming_the_cause(host, widget, state, error, words):
    fd = open_mic(host, sample_rate_hz=24000, frame_ms=20, fallback={"to_stub": False})
    page(widget, {"type": "state", "state": "prompt"})
    assert wait_events(host, fd, ALL, 100) == 0
    page(widget, {"type": "state", "state": state, "error": error})
    assert wait_events(host, fd, ALL) == EPOLLERR
    last = status(host, fd)["last_error"]
    assert all(w in last for w in words), last
    assert widget.state == state and widget.error == error


def test_refused_before_the_guest_starts_is_epollerr_too(host, widget):
    page(widget, {"type": "state", "state": "denied", "error": "NotAllowedError: Permission denied"})
    fd = open_mic(host, sample_rate_hz=24000, frame_ms=20)  # fallback.to_stub default true
    assert wait_events(host, fd, EPOLLERR) == EPOLLERR
    assert "permission refused" in status(host, fd)["last_error"]


def test_stall_while_capturing_is_epollerr(host, widget, monkeypatch):
    monkeypatch.setattr(browser, "STALL_SECONDS", 0.3)
    fd = open_mic(host, sample_rate_hz=24000, frame_ms=20)
    grant(widget)
    chunk(widget, ramp(480), 0)
    assert wait_events(host, fd, EPOLLERR, 2000) == EPOLLERR
    assert "stalled" in status(host, fd)["last_error"]
    assert host.mic_read(fd) == ramp(480).tobytes()  # what arrived is still there


def test_no_page_at_all_is_epollerr_after_the_wait(host, monkeypatch):
    monkeypatch.setattr(browser, "WAIT_SECONDS", 0.3)
    fd = open_mic(host, sample_rate_hz=24000, frame_ms=20)
    assert wait_events(host, fd, EPOLLERR, 2000) == EPOLLERR
    assert "not shown in any browser" in status(host, fd)["last_error"]


def test_without_a_widget_the_source_cannot_start(monkeypatch):
    monkeypatch.setattr(browser, "_current", None)
    with Host(HostConfig(mic_device="browser")) as h:
        fd = h.mic_create()
        assert h.mic_ctl(fd, MicCtl.SET_PARAM, b'{"fallback":{"to_stub":false}}') == -Errno.EIO
        assert "BrowserMic" in status(h, fd)["last_error"]
        assert h.mic_ctl(fd, MicCtl.SET_PARAM, b"{}") == 0
        assert status(h, fd)["source"] == "stub"


def test_newest_widget_is_the_default_and_close_detaches():
    w = BrowserMic()
    with Host(HostConfig(mic_device="browser")) as h:
        fd = open_mic(h)
        assert w.feed.sinks == 1
        h.mic_close(fd)
        wait_until(lambda: w.feed.sinks == 0)
        grant(w)
        chunk(w, ramp(480), 0)  # nobody listens: nothing breaks


def test_policy_names_and_session():
    cfg = HostConfig()
    mic_policy(cfg, "browser")
    assert cfg.mic_device == "browser" and cfg.browser_mic is None
    w = BrowserMic()
    mic_policy(cfg, w)
    assert cfg.browser_mic is w.feed
    with pytest.raises(ValueError, match="browser"):
        mic_policy(cfg, "browserx")
    s = Session(mic=w)
    try:
        assert s.config.mic_device == "browser" and s.config.browser_mic is w.feed
    finally:
        s.close()


def test_malformed_page_messages_are_refused_by_name(widget):
    feed = widget.feed
    bad = [
        ({"type": "pcm", "pos": -1, "rate": 24000}, [b"\0\0"], "pos"),
        ({"type": "pcm", "pos": 0, "rate": 16000}, [b"\0\0"], "16000 Hz"),
        ({"type": "pcm", "pos": 0, "rate": 24000}, [], "exactly one buffer"),
        ({"type": "pcm", "pos": 0, "rate": 24000}, [b"\0"], "whole int16"),
        ({"type": "state", "state": "sleepy"}, [], "unknown browser mic state"),
        ({"type": "nope"}, [], "unknown browser mic message type"),
    ]
    for content, buffers, words in bad:
        with pytest.raises(ValueError, match=words):
            feed.receive(content, buffers)
    page(widget, {"type": "nope"})
    assert widget.bad_messages == 1
    with pytest.raises(ValueError, match="rate"):
        BrowserFeed(4000)
    with pytest.raises(ValueError, match="chunk_ms"):
        BrowserMic(chunk_ms=0)


def test_static_fallback_shows_the_state(widget):
    data, _ = widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert 'data-state="idle"' in data["text/html"]
    page(widget, {"type": "state", "state": "denied", "error": "NotAllowedError: <denied>"})
    html = widget._repr_mimebundle_()[0]["text/html"]
    assert 'data-state="denied"' in html and "NotAllowedError: &lt;denied&gt;" in html


def test_close_leaves_only_the_static_picture(widget):
    grant(widget)
    widget.close()
    data, _ = widget._repr_mimebundle_()
    assert set(data) == {"text/html", "text/plain"}
    assert 'data-state="granted"' in data["text/html"] and "(closed)" in data["text/html"]
    widget.close()  # idempotent
