"""The file source: a pcm16 WAV chosen by the host, as frames of the guest's config.

The file may have any sample rate and channel count; it is remixed
(:func:`~spear_lab.audio.pcm.remix`) and resampled (:class:`~spear_lab.audio.resample.
Resampler`) to the requested ones, streaming, in blocks of 200 ms.  With matching rate and
channels the bytes pass through unchanged.

- ``realtime=True`` (default): one frame every ``frame_ms``, drift-free.
- ``realtime=False``: as fast as the reader consumes: the queue is kept topped up to its
  cap, nothing is dropped.
- ``loop=True``: start again at the end (seamlessly: the resampler keeps its state).
- Otherwise the end of the file ends the source: the last partial frame is padded with
  zeros (so no audio is lost), then ``tail_ms`` of silence follows — paced in real time
  in both modes, so that a server VAD sees the end of the last utterance and its
  transcript has wall-clock time to come back — and the fd reports EPOLLHUP once the last
  frame has been read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import wave
from typing import TYPE_CHECKING

from ..fds.mic import MicConfig, SourceError
from .base import TaskSource
from .pacing import Pacer
from .pcm import float_to_pcm16, pcm16_to_float, remix
from .resample import Resampler

if TYPE_CHECKING:
    from ..fds.mic import MicFd
    from ..host.ioloop import IoLoop

log = logging.getLogger(__name__)

#: Input read per step, in milliseconds of file audio.
BLOCK_MS = 200
#: Frames pushed per loop turn when reader-paced (then the loop gets a turn).
_BATCH = 64


class WavFrames:
    """Iterates the frames of ``config`` made from the WAV at ``path``.

    Raises SourceError (naming only the file's base name) when the file cannot be opened
    or is not 16-bit PCM.
    """

    def __init__(self, path: str | os.PathLike[str], config: MicConfig, loop: bool = False) -> None:
        label = os.path.basename(os.fspath(path))
        try:
            self._wav = wave.open(os.fspath(path), "rb")
        except (OSError, EOFError, wave.Error) as exc:
            log.warning("cannot open WAV %s: %s", path, exc)
            raise SourceError(f"cannot open WAV file {label}: {exc.__class__.__name__}") from None
        w = self._wav
        if w.getsampwidth() != 2 or w.getnchannels() < 1 or w.getframerate() < 1:
            w.close()
            raise SourceError(f"WAV file {label} is not 16-bit PCM "
                              f"({w.getsampwidth() * 8}-bit, {w.getnchannels()} channels)")
        self.rate = w.getframerate()
        self.channels = w.getnchannels()
        self.total_frames = w.getnframes()
        self.config = config
        self.loop = loop and self.total_frames > 0
        self.frame_bytes = config.frame_bytes
        self.passthrough = self.rate == config.sample_rate_hz and self.channels == config.channels
        self._resampler = None if self.passthrough else Resampler(
            self.rate, config.sample_rate_hz, config.channels)
        self._block = max(1, self.rate * BLOCK_MS // 1000)
        self._pending = bytearray()
        self._eof = False
        self.loops = 0

    def _fill(self) -> None:
        data = self._wav.readframes(self._block)
        if not data:
            if self.loop:
                self._wav.rewind()
                self.loops += 1
                return
            if self._resampler is not None:
                self._pending += float_to_pcm16(self._resampler.flush())
            self._eof = True
            return
        if self.passthrough:
            self._pending += data
            return
        x = remix(pcm16_to_float(data, self.channels), self.config.channels)
        assert self._resampler is not None
        self._pending += float_to_pcm16(self._resampler.process(x))

    def next_frame(self) -> bytes | None:
        """The next frame, the zero-padded last one, then None."""
        n = self.frame_bytes
        while len(self._pending) < n and not self._eof:
            self._fill()
        if not self._pending:
            return None
        frame = bytes(self._pending[:n])
        del self._pending[:n]
        if len(frame) < n:
            frame += bytes(n - len(frame))
        return frame

    def close(self) -> None:
        self._wav.close()


class FileSource(TaskSource):
    """Plays a WAV into one mic fd generation."""

    name = "file"

    def __init__(self, mic: "MicFd", config: MicConfig, generation: int, io: "IoLoop",
                 path: str | os.PathLike[str], realtime: bool = True, loop: bool = False,
                 tail_ms: int = 0) -> None:
        super().__init__(io)
        self.frames = WavFrames(path, config, loop)
        self.realtime = realtime
        #: Silent frames still to play after the file (ceil(tail_ms / frame_ms)).
        self.tail_frames = 0 if tail_ms <= 0 else -(-int(tail_ms) // config.frame_ms)
        self._event: asyncio.Event | None = None
        self._waiting = False
        self._launch(self._run, mic, generation, config)

    def wake(self) -> None:
        """The reader took a frame: a reader-paced source may push again."""
        if self._waiting and self._event is not None:
            self._waiting = False
            try:
                self._io.loop.call_soon_threadsafe(self._event.set)
            except RuntimeError:  # loop closed
                pass

    def _task_done(self) -> None:
        self.frames.close()

    async def _run(self, mic: "MicFd", generation: int, config: MicConfig) -> None:
        period = config.frame_ms / 1000.0
        if self.realtime:
            done = await self._run_realtime(mic, generation, period)
        else:
            done = await self._run_reader_paced(mic, generation, config.frame_bytes)
        if done and await self._play_tail(mic, generation, period, config.frame_bytes):
            mic.source_ended(generation)

    async def _run_realtime(self, mic: "MicFd", generation: int, period: float) -> bool:
        """Play the file in real time; True when it ended (False: stopped or stale)."""
        pacer = Pacer(period)
        while not self.stopped:
            await pacer.wait()
            frame = self.frames.next_frame()
            if frame is None:
                return True
            if not mic.push_frame(generation, frame):
                return False
        return False

    async def _play_tail(self, mic: "MicFd", generation: int, period: float,
                         frame_bytes: int) -> bool:
        """The trailing silence, one frame per ``period``; True when it all went out."""
        pacer = Pacer(period)
        silence = bytes(frame_bytes)
        for _ in range(self.tail_frames):
            await pacer.wait()
            while not self.stopped:  # never push out unread file audio (a full queue)
                free = mic.free_frames(generation, frame_bytes)
                if free is None:
                    return False
                if free:
                    break
                await asyncio.sleep(period)
            if self.stopped or not mic.push_frame(generation, silence):
                return False
        return not self.stopped

    async def _run_reader_paced(self, mic: "MicFd", generation: int, frame_bytes: int) -> bool:
        """Keep the queue topped up; True when the file ended (False: stopped or stale)."""
        self._event = asyncio.Event()
        while not self.stopped:
            self._event.clear()
            self._waiting = True
            free = mic.free_frames(generation, frame_bytes)
            if free is None:
                return False
            if free == 0:
                await self._event.wait()
                continue
            self._waiting = False
            batch = []
            for _ in range(min(free, _BATCH)):
                frame = self.frames.next_frame()
                if frame is None:
                    break
                batch.append(frame)
            if batch and not mic.push_frames(generation, batch):
                return False
            if len(batch) < min(free, _BATCH):
                return True
            await asyncio.sleep(0)
        return False
