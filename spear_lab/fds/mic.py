"""Microphone fds, ``mic_*`` (docs/abi.md §7): capture queue, readiness, sources.

Sans-I/O.  A source (device, file or stub; see :mod:`spear_lab.audio`) pushes frames of
exactly :attr:`MicConfig.frame_bytes` bytes into the capture queue; ``mic_read`` hands the
guest one frame per call.  The SET_PARAM config and its parser live in
:mod:`spear_lab.fds.mic_config` (``MicConfig`` is importable from here too).

- SET_PARAM validates the whole request before anything changes (a fix, docs/abi.md §12): a bad
  request returns ``-EINVAL`` and the previous configuration keeps running.
- queue: drop-oldest beyond ``max_queue_bytes`` (default 524288, persists across
  SET_PARAM, clamped to the host's ``max_queue_cap``), counted in ``dropped_frames``; a
  read into a too-small buffer loses nothing.  Close releases the queue and the pattern.
- readiness: ``EPOLLIN`` while the queue is non-empty, ``EPOLLERR`` while ``last_error``
  is set, ``EPOLLHUP`` once closed, or once a finite source (a file) has ended and its last
  frame has been read.  Never ``EPOLLOUT``.
- generations: every SET_PARAM, failed device start and close bumps ``generation``; a
  producer holding an older number is ignored and told to stop.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable, Protocol

from ..abi.constants import EPOLLERR, EPOLLHUP, EPOLLIN, Errno, FdKind, MicCtl
from ..abi.fdtable import FdEntry, FdTable
from ..abi.jsonfmt import dumpb
from ..abi.notes import MicQueue
from .mic_config import MicConfig, parse_set_param

log = logging.getLogger(__name__)

#: Default capture-queue cap in bytes (512 KiB).
DEFAULT_MAX_QUEUE_BYTES = 524288
#: Host hook ``deliver(payload) -> rc``: copies to the guest; rc >= 0 means delivered.
Deliver = Callable[[bytes], int]


class SourceError(Exception):
    """A source cannot start (or failed); the message becomes ``last_error`` and must be
    fit for a guest to read (no secrets, no host paths)."""


class SourceHandle(Protocol):
    """A running source, as the mic fd sees it."""

    #: Effective source reported by GET_STATUS: ``"device"``, ``"file"`` or ``"stub"``.
    name: str

    def stop(self) -> None:
        """Stop producing; must not block (called with the table lock held)."""

    def wake(self) -> None:
        """The reader made room in the queue (sources pacing on the reader use it)."""


class SourceOpener(Protocol):
    """The host's audio edge (:class:`spear_lab.audio.SourceFactory`)."""

    def open(self, mic: "MicFd", config: MicConfig, generation: int) -> SourceHandle:
        """Start the source ``config`` asks for, after host policy; raises SourceError."""

    def open_stub(self, mic: "MicFd", config: MicConfig, generation: int) -> SourceHandle:
        """Start the stub producer (the fallback); never fails."""

    def list_devices(self) -> dict[str, Any]:
        """``{"devices":[...],"default":name-or-null}`` for LIST_DEVICES."""


class MicFd(FdEntry):
    """One microphone fd."""

    kind = FdKind.MIC
    initial_mask = 0

    def __init__(self, table: FdTable, fd: int, sources: SourceOpener | None = None,
                 max_queue_cap: int | None = None) -> None:
        super().__init__(table, fd)
        #: Host ceiling on ``max_queue_bytes`` (a guest's larger request is clamped).
        self.max_queue_cap = max_queue_cap
        #: Opens sources; None = nothing is produced unless frames are pushed by hand.
        self.sources = sources
        self.config: MicConfig | None = None
        self.running = False
        self.queue: deque[bytes] = deque()
        self.queue_bytes = 0
        self.max_queue_bytes = DEFAULT_MAX_QUEUE_BYTES if max_queue_cap is None else min(
            DEFAULT_MAX_QUEUE_BYTES, max_queue_cap)
        self.dropped_frames = 0
        self.last_error: str | None = None
        #: Why the last SET_PARAM was refused with -EINVAL (for wrappers; not in GET_STATUS).
        self.last_refusal: str | None = None
        self.generation = 0
        self.pattern: bytes | None = None
        self.pattern_offset = 0
        self.source: SourceHandle | None = None
        #: Effective source name ([EXT] GET_STATUS ``source``), None when nothing runs.
        self.source_name: str | None = None
        #: The source has ended (end of file); HUP once the queue is drained.
        self.ended = False
        #: Counters for views and tests (not in GET_STATUS).
        self.frames_pushed = 0
        self.frames_read = 0

    # -- readiness ---------------------------------------------------------------------

    def recompute(self) -> None:
        """Recompute the stored mask from the state (docs/abi.md §7.4).  Caller holds the lock."""
        mask = 0
        if self.queue:
            mask |= EPOLLIN
        if self.last_error is not None:
            mask |= EPOLLERR
        if self.ended and not self.queue:
            mask |= EPOLLHUP
        self.set_mask(mask)

    # -- hostcalls -----------------------------------------------------------------------

    def ctl(self, cmd: int, payload: bytes | None) -> int | bytes:
        """``mic_ctl`` after the fd lookup: 0, output JSON bytes, or -errno."""
        if cmd == MicCtl.SET_PARAM:
            return self.set_param(payload)
        if cmd == MicCtl.GET_STATUS:
            return dumpb(self.status())
        if cmd == MicCtl.LIST_DEVICES:
            return dumpb(self.list_devices())
        return -Errno.EINVAL

    def set_param(self, payload: bytes | None) -> int:
        """SET_PARAM: 0, -EINVAL (nothing changed; the reason in ``last_refusal``), or -EIO
        (source failed, no fallback).

        On success the previous producer is stopped, the queue and ``last_error`` are
        cleared, ``generation`` grows by one and the new source starts.
        """
        try:
            req = parse_set_param(payload)
        except ValueError as exc:
            log.debug("mic fd %d: SET_PARAM rejected: %s", self.fd, exc)
            self.last_refusal = str(exc)
            return -Errno.EINVAL
        self.last_refusal = None
        self._stop_source()
        self.generation += 1
        self.running = False
        self.queue.clear()
        self.queue_bytes = 0
        self.last_error = None
        self.ended = False
        self.config = req.config
        if req.max_queue_bytes is not None:
            cap = self.max_queue_cap
            self.max_queue_bytes = req.max_queue_bytes if cap is None else min(req.max_queue_bytes, cap)
        if req.pattern is not None:
            self.pattern = req.pattern
            self.pattern_offset = 0
        self.running = True
        self.recompute()
        return self._start_source(req.config)

    def _start_source(self, config: MicConfig) -> int:
        if self.sources is None:
            return 0
        gen = self.generation
        try:
            handle = self.sources.open(self, config, gen)
        except SourceError as exc:
            if not config.fallback_to_stub:
                self.running = False
                self.generation += 1
                self.last_error = str(exc)
                self.recompute()
                return -Errno.EIO
            log.warning("mic fd %d: %s; using the stub source (fallback.to_stub)", self.fd, exc)
            handle = self.sources.open_stub(self, config, gen)
        self.source = handle
        self.source_name = handle.name
        return 0

    def _stop_source(self) -> None:
        handle, self.source = self.source, None
        self.source_name = None
        if handle is not None:
            handle.stop()

    def read(self, deliver: Deliver) -> int:
        """``mic_read``: hand the oldest frame to ``deliver``; pop it only if delivered.

        -EAGAIN when the queue is empty (also before any SET_PARAM).
        """
        if not self.queue:
            return -Errno.EAGAIN
        frame = self.queue[0]
        rc = deliver(frame)
        if rc >= 0:
            self.queue.popleft()
            self.queue_bytes -= len(frame)
            self.frames_read += 1
            self.recompute()
            self._note_queue()
            if self.source is not None:
                self.source.wake()
        return rc

    def status(self) -> dict[str, Any]:
        """The GET_STATUS object: the seven reference keys plus [EXT] ``source``, and any
        [EXT] keys the running source adds (its optional ``status()``, e.g. the browser
        source's ``gap_frames`` and ``jitter_ms``)."""
        out = {
            "config": self.config.to_json() if self.config is not None else None,
            "dropped_frames": self.dropped_frames,
            "generation": self.generation,
            "last_error": self.last_error,
            "max_queue_bytes": self.max_queue_bytes,
            "queue_bytes": self.queue_bytes,
            "running": self.running,
            "source": self.source_name,
        }
        extra = getattr(self.source, "status", None)
        if callable(extra):
            out.update({k: v for k, v in extra().items() if k not in out})
        return out

    def list_devices(self) -> dict[str, Any]:
        """[EXT] LIST_DEVICES: the input devices a ``source: "device"`` may name."""
        if self.sources is None:
            return {"default": None, "devices": []}
        return self.sources.list_devices()

    def on_close(self) -> None:
        """Stop the producer (running false, generation bumped); release the queue."""
        self.running = False
        self.generation += 1
        self._stop_source()
        self.queue.clear()
        self.queue_bytes = 0
        self.pattern = None  # up to 10 MiB the guest gave: released with the fd
        self.sources = None

    def _note_queue(self) -> None:
        """Report the queue level to table listeners (the Trace).  Caller holds the lock."""
        if self.table.listeners:
            self.table.note(self.fd, MicQueue(self.queue_bytes, self.max_queue_bytes,
                                              self.dropped_frames))

    # -- producer side (these take the lock themselves) ----------------------------------

    def _current(self, generation: int) -> bool:
        return not self.closed and self.running and generation == self.generation

    def _enqueue(self, frame: bytes) -> None:
        self.queue.append(frame)
        self.queue_bytes += len(frame)
        self.frames_pushed += 1
        while self.queue and self.queue_bytes > self.max_queue_bytes:
            self.queue_bytes -= len(self.queue.popleft())
            self.dropped_frames += 1

    def push_frames(self, generation: int, frames: list[bytes]) -> bool:
        """Queue captured frames (drop-oldest beyond the cap); False = stale, stop."""
        with self.table.lock:
            if not self._current(generation):
                return False
            for frame in frames:
                self._enqueue(frame)
            if frames:
                self.recompute()
                self._note_queue()
            return True

    def push_frame(self, generation: int, frame: bytes) -> bool:
        """Queue one frame; False when the producer is stale and must stop."""
        return self.push_frames(generation, [frame])

    def stub_frame(self) -> bytes:
        """The next stub frame (docs/abi.md §7.3): zeros, or the stored pattern taken cyclically from
        the persistent offset.  Caller holds the lock and has a config."""
        assert self.config is not None
        n = self.config.frame_bytes
        pattern = self.pattern
        if not pattern:
            return bytes(n)
        out = bytearray()
        pos = self.pattern_offset
        while len(out) < n:
            piece = pattern[pos:pos + n - len(out)]
            out += piece
            pos = (pos + len(piece)) % len(pattern)
        self.pattern_offset = pos
        return bytes(out)

    def stub_tick(self, generation: int) -> bool:
        """One step of the stub producer: queue the next stub frame.  False = stop."""
        with self.table.lock:
            if not self._current(generation) or self.config is None:
                return False
            self._enqueue(self.stub_frame())
            self.recompute()
            return True

    def free_frames(self, generation: int, frame_bytes: int) -> int | None:
        """How many frames fit under the cap now (at least 1 when the queue is empty);
        None when the producer is stale.  For sources paced by the reader."""
        with self.table.lock:
            if not self._current(generation):
                return None
            free = (self.max_queue_bytes - self.queue_bytes) // max(frame_bytes, 1)
            return max(free, 1 if not self.queue else 0)

    def count_dropped(self, generation: int, frames: int) -> None:
        """A source lost ``frames`` frames before they reached the queue (a gap in its
        stream): counted in ``dropped_frames`` like overflow drops."""
        with self.table.lock:
            if not self._current(generation) or frames <= 0:
                return
            self.dropped_frames += frames
            self._note_queue()

    def source_error(self, generation: int, message: str) -> None:
        """A runtime source failure: ``last_error`` and EPOLLERR; capture may continue."""
        with self.table.lock:
            if self.closed or generation != self.generation:
                return
            self.last_error = message
            self.recompute()

    def source_ended(self, generation: int) -> None:
        """A finite source produced its last frame: running false, HUP once drained."""
        with self.table.lock:
            if not self._current(generation):
                return
            self.running = False
            self.ended = True
            self.recompute()
