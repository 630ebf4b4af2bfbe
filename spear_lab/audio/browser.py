"""The browser microphone as a mic source (``HostConfig.mic_device = "browser"``).

Two halves, as for a device (:mod:`spear_lab.audio.device`):

- :class:`BrowserFeed` receives what the page sends through the widget's comm
  (:class:`spear_lab.views.BrowserMic`), on whatever thread the kernel handles comm
  messages: pcm16 chunks with their stream position, and permission/track state.  It
  copies each chunk into the :class:`~spear_lab.audio.ring.SampleRing` of every source
  attached to it (no lock held while copying, no allocation beyond the chunk's floats).
- :class:`BrowserSource` is the framing task on the host's I/O loop: every ``frame_ms`` it
  takes what arrived, resamples from the widget's rate to the guest's, and pushes whole
  frames to the fd (drop-oldest beyond ``max_queue_bytes``, as for any source).

What goes wrong is reported, not hidden:

- a refused permission, an ended track (device removed, permission revoked) or a page
  error sets the fd's ``last_error`` (EPOLLERR), naming the cause;
- gaps in the stream (the page measured audio missing, e.g. a suspended audio context, or
  the ring overflowed while the I/O loop was starved) are counted in ``dropped_frames``
  and, separately, in the [EXT] GET_STATUS key ``gap_frames``;
- arrival jitter (each chunk's arrival against the capture clock, i.e. its stream
  position) is GET_STATUS ``jitter_ms`` ``{"p50":…,"p99":…}`` over the last chunks;
- no audio for ``stall_s`` while the page says it is capturing, or none at all within
  ``wait_s`` of the start (permission never answered, widget not shown in any browser),
  sets ``last_error`` too.  Capture continues if audio comes back.

Messages (page → kernel), one comm ``msg:custom`` each:

- ``{"type":"pcm","pos":P,"rate":R,"t":MS}`` with one binary buffer of mono
  little-endian int16 samples at R Hz; P is the stream position (samples at R since the
  capture started, gaps included) of the first sample; MS is the page's wall clock
  (``Date.now()``, ms) when the chunk's last sample was captured (an optional ``sent``
  is when the page sent it; unused here, for diagnostics);
- ``{"type":"state","state":S,"error":E,"device":D,"input_rate":N}`` with S one of
  ``prompt granted denied ended error stopped``.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..fds.mic import MicConfig, SourceError
from .base import TaskSource
from .framer import Framer, run_framing
from .pcm import pcm16_to_float
from .resample import Resampler
from .ring import SampleRing

if TYPE_CHECKING:
    from ..fds.mic import MicFd
    from ..host.ioloop import IoLoop

log = logging.getLogger(__name__)

#: Seconds of widget audio each source's ring holds (as for a device).
RING_SECONDS = 5.0
#: Seconds without audio, while the page captures, before the fd reports an error.  Longer
#: than a device's: the audio crosses the Jupyter server, and a kernel without subshells
#: reads comm messages only while idle or awaiting, so a cell that computes holds it back;
#: it then arrives in a burst (counted in the jitter), and up to the default queue (about
#: 10 s at 24 kHz) is kept.  (JupyterLab 4.6 with ipykernel 7 sends widget messages on a
#: kernel subshell, handled on its own thread: a computing cell does not hold them.)
STALL_SECONDS = 10.0
#: Seconds from the start without any audio (permission unanswered, no page) before EPOLLERR.
WAIT_SECONDS = 30.0
#: Chunks the jitter figure is computed over.
JITTER_WINDOW = 500
#: Widget rates accepted, Hz.
MIN_RATE, MAX_RATE = 8000, 96000
#: States a page may report, and the ones that are failures.
STATES = ("idle", "prompt", "granted", "denied", "ended", "error", "stopped")
_FAILURES = {
    "denied": "browser microphone permission refused",
    "ended": "browser microphone track ended",
    "error": "browser microphone failed",
    "stopped": "browser microphone stopped in the page",
}
_MAX_TEXT = 200


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).replace("\n", " ")[:_MAX_TEXT]


class BrowserFeed:
    """What one browser widget delivers: state, and chunks fanned out to sources.

    ``rate`` is the rate the page resamples to (Hz, 8000–96000).  Thread-safe: the kernel
    thread calls :meth:`receive`, sources attach and detach from the guest or I/O thread.
    """

    def __init__(self, rate: int = 24000) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(f"rate must be an integer in {MIN_RATE}..{MAX_RATE} Hz, got {rate!r}")
        self.rate = rate
        self.state = "idle"
        self.error: str | None = None
        self.device: str | None = None
        self.input_rate: int | None = None
        #: Chunks and samples received, samples missing in gaps (monotonic counters).
        self.chunks = 0
        self.samples = 0
        self.gap_samples = 0
        #: Stream position expected next (None before the first chunk of a capture).
        self.next_pos: int | None = None
        #: ``(pos_end, t_capture_s, t_arrival_s)`` of recent chunks (wall clock, seconds).
        self.history: deque[tuple[int, float, float]] = deque(maxlen=4096)
        self.granted_at: float | None = None
        self._sinks: list[BrowserSource] = []
        self._lock = threading.Lock()

    # -- from the page --------------------------------------------------------------------

    def receive(self, content: Any, buffers: Sequence[Any] = ()) -> None:
        """Handle one message from the page.  ValueError names what is malformed."""
        if not isinstance(content, dict):
            raise ValueError("browser mic message must be an object")  # noqa: TRY004
        kind = content.get("type")
        if kind == "pcm":
            self._receive_pcm(content, buffers)
        elif kind == "state":
            self._receive_state(content)
        else:
            raise ValueError(f"unknown browser mic message type {kind!r}")

    def _receive_state(self, content: dict) -> None:
        state = content.get("state")
        if state not in STATES:
            raise ValueError(f"unknown browser mic state {state!r}")
        rate = content.get("input_rate")
        with self._lock:
            self.state = state
            self.error = _text(content.get("error"))
            self.device = _text(content.get("device")) or self.device
            if isinstance(rate, int) and not isinstance(rate, bool) and rate > 0:
                self.input_rate = rate
            if state == "granted":
                self.granted_at = time.monotonic()
                self.next_pos = None  # a new capture starts at position 0
        log.info("browser microphone: %s%s", state, f" ({self.error})" if self.error else "")

    def _receive_pcm(self, content: dict, buffers: Sequence[Any]) -> None:
        pos, rate, t = content.get("pos"), content.get("rate"), content.get("t")
        if isinstance(pos, bool) or not isinstance(pos, int) or pos < 0:
            raise ValueError(f"pcm chunk: pos must be a non-negative integer, got {pos!r}")
        if rate != self.rate:
            raise ValueError(f"pcm chunk at {rate!r} Hz, but the widget's rate is {self.rate} Hz")
        if len(buffers) != 1:
            raise ValueError(f"pcm chunk needs exactly one buffer, got {len(buffers)}")
        data = memoryview(buffers[0]).cast("B")
        if len(data) % 2:
            raise ValueError(f"pcm chunk of {len(data)} bytes is not whole int16 samples")
        arrival = time.time()
        capture = float(t) / 1000.0 if isinstance(t, (int, float)) and not isinstance(t, bool) else arrival
        samples = pcm16_to_float(data, 1)
        n = len(samples)
        with self._lock:
            # below 0: the page restarted its stream, a new timeline
            gap = 0 if self.next_pos is None else max(pos - self.next_pos, 0)
            self.next_pos = pos + n
            self.chunks += 1
            self.samples += n
            self.gap_samples += gap
            self.history.append((pos + n, capture, arrival))
            sinks = list(self._sinks)
        mono = time.monotonic()
        for sink in sinks:
            sink._on_chunk(samples, pos, gap, mono)

    # -- for sources and notebooks ----------------------------------------------------------

    def attach(self, sink: BrowserSource) -> None:
        with self._lock:
            self._sinks.append(sink)

    def detach(self, sink: BrowserSource) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    @property
    def sinks(self) -> int:
        """How many sources are attached."""
        with self._lock:
            return len(self._sinks)

    def problem(self) -> str | None:
        """The failure the page reported (for ``last_error``), or None."""
        state, error = self.state, self.error
        what = _FAILURES.get(state)
        if what is None:
            return None
        return f"{what}: {error}" if error else what

    def stats(self) -> dict[str, Any]:
        """State and counters, for views and notebooks: ``seconds`` of audio received,
        ``gap_seconds`` missing, ``span_s`` wall time from the first to the last recent
        chunk's arrival, ``jitter_ms`` over the recent chunks (as in GET_STATUS)."""
        with self._lock:
            hist = list(self.history)[-JITTER_WINDOW:]
            out = {"state": self.state, "error": self.error, "device": self.device,
                   "rate": self.rate, "input_rate": self.input_rate, "chunks": self.chunks,
                   "seconds": round(self.samples / self.rate, 3),
                   "gap_seconds": round(self.gap_samples / self.rate, 3)}
        out["jitter_ms"] = lateness_ms([arr - pos / self.rate for pos, _cap, arr in hist])
        out["span_s"] = round(hist[-1][2] - hist[0][2], 3) if len(hist) > 1 else 0.0
        return out

    def __repr__(self) -> str:
        return f"<BrowserFeed {self.state} {self.rate} Hz chunks={self.chunks}>"


def lateness_ms(offsets: Sequence[float]) -> dict[str, float | None]:
    """Jitter of arrivals: ``offsets`` are arrival time minus capture-clock time (s) per
    chunk; returns p50/p99 of each one's lateness behind the earliest, in ms (None for
    fewer than two chunks)."""
    if len(offsets) < 2:
        return {"p50": None, "p99": None}
    from ..trace.stats import percentile

    offs = np.asarray(offsets, dtype=np.float64)
    late = ((offs - offs.min()) * 1000.0).tolist()
    return {"p50": round(percentile(late, 50), 2), "p99": round(percentile(late, 99), 2)}


_current: weakref.ref[BrowserFeed] | None = None


def set_current(feed: BrowserFeed) -> None:
    """Make ``feed`` the one ``mic_device="browser"`` uses when the host names none."""
    global _current
    _current = weakref.ref(feed)


def current_feed() -> BrowserFeed | None:
    """The most recently created widget's feed, or None."""
    return _current() if _current is not None else None


def feed_of(obj: Any) -> BrowserFeed:
    """The feed of a widget (anything with a ``feed``) or a feed; TypeError otherwise."""
    feed = getattr(obj, "feed", obj)
    if not isinstance(feed, BrowserFeed):
        raise TypeError(f"not a browser microphone: {type(obj).__name__}")
    return feed


class BrowserSource(TaskSource):
    """Frames a browser feed into one mic fd generation."""

    name = "browser"

    def __init__(self, mic: MicFd, config: MicConfig, generation: int, io: IoLoop,
                 feed: BrowserFeed, stall_s: float = STALL_SECONDS,
                 wait_s: float = WAIT_SECONDS) -> None:
        super().__init__(io)
        self.feed, self.config = feed, config
        self.stall_s, self.wait_s = stall_s, wait_s
        self.ring = SampleRing(max(1, int(feed.rate * RING_SECONDS)), 1)
        self.resampler = Resampler(feed.rate, config.sample_rate_hz, config.channels)
        #: Widget samples in one frame of this config (gaps are counted in these).
        self.in_frame = feed.rate * config.frame_ms / 1000.0
        self.gap_samples = 0  # written by the feed's thread
        self.gap_frames = 0  # counted into dropped_frames by the framing task
        self.chunks = 0
        #: Stream position of the first sample this source got (None before any).
        self.first_pos: int | None = None
        self._offsets: deque[float] = deque(maxlen=JITTER_WINDOW)
        self._stats_lock = threading.Lock()
        self._started = time.monotonic()
        feed.attach(self)
        self._launch(self._run, mic, generation)

    # -- the feed's thread: copy only ---------------------------------------------------------

    def _on_chunk(self, samples: np.ndarray, pos: int, gap: int, now: float) -> None:
        if self.stopped:
            return
        self.ring.write(samples)
        with self._stats_lock:
            if self.first_pos is None:
                self.first_pos = pos
            self.gap_samples += gap
            self.chunks += 1
            # arrival against the capture clock: constant + this chunk's lateness
            self._offsets.append(now - (pos + len(samples)) / self.feed.rate)

    # -- status ---------------------------------------------------------------------------

    def jitter_ms(self) -> dict[str, float | None]:
        """p50/p99 of each chunk's lateness behind the earliest one in the window, in ms."""
        with self._stats_lock:
            offs = list(self._offsets)
        return lateness_ms(offs)

    def status(self) -> dict[str, Any]:
        """[EXT] GET_STATUS keys of this source: ``gap_frames`` and ``jitter_ms``."""
        return {"gap_frames": self.gap_frames, "jitter_ms": self.jitter_ms()}

    # -- framing on the I/O loop ----------------------------------------------------------

    async def _run(self, mic: MicFd, generation: int) -> None:
        framer = Framer(self.ring, self.resampler, self.config.channels, self.config.frame_bytes)
        last_chunks, last_change = 0, None  # chunks received, and when that count changed

        def health() -> str | None:
            nonlocal last_chunks, last_change
            self._count_gaps(mic, generation)
            if self.chunks != last_chunks:
                last_chunks, last_change = self.chunks, time.monotonic()
            return self._health(last_change)

        await run_framing(self, mic, generation, framer, health)

    def _count_gaps(self, mic: MicFd, generation: int) -> None:
        with self._stats_lock:
            missing = self.gap_samples + self.ring.lost
        frames = int(missing // self.in_frame) if self.in_frame > 0 else 0
        if frames > self.gap_frames:
            mic.count_dropped(generation, frames - self.gap_frames)
            self.gap_frames = frames

    def _health(self, last_change: float | None) -> str | None:
        problem = self.feed.problem()
        if problem is not None:
            return problem
        now = time.monotonic()
        if self.feed.state == "granted":
            since = max(t for t in (last_change, self.feed.granted_at, self._started) if t is not None)
            if now - since >= self.stall_s:
                return (f"browser microphone stalled: no audio for {self.stall_s:.1f} s "
                        "(tab closed, or the network stalled)")
        elif last_change is None and now - self._started >= self.wait_s:
            why = ("the permission prompt was not answered" if self.feed.state == "prompt"
                   else "the widget is not shown in any browser")
            return f"browser microphone: no audio after {self.wait_s:.0f} s ({why})"
        return None

    # -- stopping ---------------------------------------------------------------------------

    def _task_done(self) -> None:
        self.feed.detach(self)

    def stop(self) -> None:
        """Stop framing and detach from the feed (non-blocking)."""
        if self.stopped:
            return
        super().stop()
        self.feed.detach(self)


def open_browser(mic: MicFd, config: MicConfig, generation: int, io: IoLoop,
                 chosen: Any = None) -> BrowserSource:
    """Start a browser source on ``chosen`` (a widget or feed) or the current widget's
    feed.  SourceError when there is no widget."""
    feed = feed_of(chosen) if chosen is not None else current_feed()
    if feed is None:
        raise SourceError("no browser microphone: display spear_lab.views.BrowserMic() "
                          "in the notebook first")
    return BrowserSource(mic, config, generation, io, feed, STALL_SECONDS, WAIT_SECONDS)
