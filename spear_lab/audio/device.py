"""The device source: a sounddevice (PortAudio) input stream feeding one mic fd.

Two halves:

- the PortAudio callback thread copies each captured block into a preallocated
  :class:`~spear_lab.audio.ring.SampleRing` (5 s at the device rate; no lock, no logging,
  no allocation per sample);
- a framing task on the host's I/O loop wakes every ``frame_ms``, takes what arrived,
  remixes it to the requested channels, resamples it from the device rate to the
  requested rate, and pushes whole frames to the fd.

The device is opened at its default sample rate (or the host's ``mic_device_rate``) with
``min(device channels, max(requested, 2))`` channels, so mono requests are mixed down
here (mean of channels) as in the reference.  Start failures raise SourceError (SET_PARAM
then returns -EIO or falls back to the stub).  At run time a stream that stops by itself,
or delivers nothing for ``stall_s`` seconds, sets the fd's ``last_error`` (EPOLLERR);
capture goes on if the device recovers.

Closing a PortAudio stream can block (a vanished sound server), so :meth:`stop` hands the
close to a short-lived thread; :meth:`wait_closed` waits for it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ..fds.mic import MicConfig, SourceError
from . import portaudio as _pa
from .base import TaskSource
from .framer import Framer, run_framing
from .resample import Resampler
from .ring import SampleRing

if TYPE_CHECKING:
    from ..fds.mic import MicFd
    from ..host.ioloop import IoLoop

log = logging.getLogger(__name__)

#: Seconds of device audio the ring holds (the reference caps its raw buffer at 5 s).
RING_SECONDS = 5.0
#: Seconds without any captured audio before the fd reports an error.
STALL_SECONDS = 2.0


class DeviceSource(TaskSource):
    """Captures from an input device into one mic fd generation."""

    name = "device"

    def __init__(self, mic: "MicFd", config: MicConfig, generation: int, io: "IoLoop",
                 device: str | int | None = None, rate: int | None = None,
                 stall_s: float = STALL_SECONDS) -> None:
        super().__init__(io)
        sd = _pa.sounddevice()
        self.device = _pa.find_input(device)
        self.rate = int(rate or self.device.default_rate)
        self.in_channels = min(self.device.channels, max(config.channels, 2))
        self.config = config
        self.stall_s = stall_s
        self.ring = SampleRing(max(1, int(self.rate * RING_SECONDS)), self.in_channels)
        self.resampler = Resampler(self.rate, config.sample_rate_hz, config.channels)
        self.status_flags = 0  # PortAudio callback status bits seen (overflows...)
        self.callbacks = 0
        self._finished = threading.Event()
        self._closed = threading.Event()
        self._closer: threading.Thread | None = None
        self.stream: Any = None
        try:
            with _pa.PA_LOCK:
                self.stream = sd.InputStream(
                    device=self.device.index, samplerate=self.rate, channels=self.in_channels,
                    dtype="float32", callback=self._on_audio,
                    finished_callback=self._finished.set)
                _pa.stream_opened()
                self.stream.start()
        except Exception as exc:  # sd.PortAudioError, ValueError from bad settings
            self._close_stream()
            raise SourceError(f"cannot open input device {self.device.name}: {exc}") from None
        log.info("mic fd %d: capturing from %r at %d Hz, %d ch -> %d Hz, %d ch",
                 mic.fd, self.device.name, self.rate, self.in_channels,
                 config.sample_rate_hz, config.channels)
        self._launch(self._run, mic, generation)

    # -- PortAudio callback thread: copy only ---------------------------------------------

    def _on_audio(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status:
            self.status_flags |= getattr(status, "_flags", 1)
        self.callbacks += 1
        self.ring.write(indata)

    # -- framing on the I/O loop ----------------------------------------------------------

    async def _run(self, mic: "MicFd", generation: int) -> None:
        framer = Framer(self.ring, self.resampler, self.config.channels, self.config.frame_bytes)
        last_written, last_change = self.ring.written, time.monotonic()

        def health() -> str | None:
            nonlocal last_written, last_change
            if self.ring.written != last_written:
                last_written, last_change = self.ring.written, time.monotonic()
            return self._health(last_change)

        await run_framing(self, mic, generation, framer, health)

    def _health(self, last_change: float) -> str | None:
        if self._finished.is_set() and not self.stopped:
            return f"input stream on {self.device.name} stopped unexpectedly"
        if time.monotonic() - last_change >= self.stall_s:
            return f"input device {self.device.name} stalled: no audio for {self.stall_s:.1f} s"
        return None

    # -- stopping ---------------------------------------------------------------------------

    def _task_done(self) -> None:
        # The framing task ended on its own (stale generation): release the device too.
        if not self.stopped:
            self.stop()

    def stop(self) -> None:
        """Stop the framing task and close the stream in the background (non-blocking)."""
        if self.stopped:
            return
        super().stop()
        self._closer = threading.Thread(target=self._close_stream, name="spear-mic-close",
                                        daemon=True)
        self._closer.start()

    def _close_stream(self) -> None:
        stream = self.stream
        try:
            if stream is not None and not stream.closed:
                with _pa.PA_LOCK:
                    try:
                        stream.close(ignore_errors=True)
                    finally:
                        _pa.stream_closed()
        finally:
            self._closed.set()

    @property
    def closed(self) -> bool:
        """True once the PortAudio stream has been closed."""
        return self._closed.is_set()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the stream is closed and the framing task has ended."""
        ok = self._closed.wait(timeout)
        closer = self._closer
        if closer is not None:
            closer.join(timeout)
        return ok and self.join(timeout)
