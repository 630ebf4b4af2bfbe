"""The stub ASR transport (docs/abi.md §5.4): events without a network or a recogniser.

Two modes, chosen by the rtasr param ``stub_mode`` (read once, at CONNECT):

``"reference"`` (the default; any value other than ``"realistic"``)
    Exactly the reference stub.  Every 10 ms tick it removes **one** send item (audio
    chunk or control text) and discards it, so it drains about 100 items per second
    whatever their size.  When at least ``stub_event_interval_ms`` (default 100) have
    passed since the previous emission (the first one measured from the task start) it
    pushes ``{"seq":N,"text":"aaa…","type":"transcription.delta"}`` — compact, keys
    sorted, ``seq`` from 1, the text ``max(0, stub_event_payload_bytes - 80)`` letters
    ``a`` (default 256 → 176 letters, 224 bytes for a one-digit ``seq``) — with type
    ``"transcription.completed"`` when ``stub_emit_completed_every`` (default 20; 0 =
    never) divides ``seq``.  Params are read on every tick; negative or non-integer
    values mean the default; the payload size is clamped to ``MAX_PAYLOAD_BYTES`` [EXT].

``"realistic"``
    OpenAI-shaped GA transcription events driven by the **energy** of the audio actually
    written (24 kHz mono pcm16, 10 ms frames, RMS against a threshold): see
    :class:`EnergyAsr`.  Every tick drains *all* queued items.  **It recognises no
    words**: transcripts are placeholders such as ``"<speech 1.23 s>"`` giving the
    length of the voiced audio (:mod:`spear_lab.transports.energy`).  Use it to study
    segmentation, backpressure and event flow offline; use the embedded server or
    OpenAI for real text.

In both modes every tick also runs the client-commit check once the fd's deadline has come
(:func:`~spear_lab.transports.client.commit_if_due`, the WebSocket client's, a fix,
docs/abi.md §12), a drained control text clears ``pending_flush`` (:meth:`RtasrFd.control_sent`,
a fix, docs/abi.md §12), the stub never enters ``Error`` and never sets HUP, and the task ends when the
fd is closed (or at once on :meth:`StubTransport.stop`); it reports :meth:`RtasrFd.opened`
when it starts and :meth:`RtasrFd.transport_ended` when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

from ..abi.jsonfmt import dumpb
from .client import commit_if_due

# The realistic mode's recogniser and its audio format (re-exported from here too).
from .energy import (FRAME_BYTES, FRAME_MS, FRAME_SAMPLES, MIN_COMMIT_MS, RMS_PER_THRESHOLD,  # noqa: F401
                     SAMPLE_RATE, EnergyAsr)

if TYPE_CHECKING:
    from ..fds.rtasr import RtasrFd
    from ..host.ioloop import IoLoop

log = logging.getLogger(__name__)

#: Seconds between two ticks of the stub loop.
TICK_S = 0.010
#: Defaults of the stub params (docs/abi.md §5.2).
DEFAULT_INTERVAL_MS = 100
DEFAULT_PAYLOAD_BYTES = 256
DEFAULT_COMPLETED_EVERY = 20
#: Bytes of ``stub_event_payload_bytes`` not spent on letters (the JSON around them).
PAYLOAD_OVERHEAD = 80
#: [EXT] largest ``stub_event_payload_bytes`` honoured (a guest must not make the host
#: build gigabyte strings every tick); larger values are clamped to it.
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024

REFERENCE, REALISTIC = "reference", "realistic"

def _int_param(fd: "RtasrFd", key: str, default: int) -> int:
    """A non-negative integer param, or ``default`` when unset or of another type."""
    value = fd.param(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return default
    return value


def reference_event(seq: int, payload_bytes: int, completed_every: int) -> bytes:
    """The reference stub's event number ``seq`` (compact JSON, keys sorted)."""
    completed = completed_every != 0 and seq % completed_every == 0
    kind = "transcription.completed" if completed else "transcription.delta"
    return dumpb({"seq": seq, "text": "a" * max(0, payload_bytes - PAYLOAD_OVERHEAD), "type": kind})


class StubTransport:
    """The stub transport of one rtasr fd: one asyncio task on the host's I/O loop.

    ``stub_mode: "realistic"`` selects :class:`EnergyAsr`-driven OpenAI-shaped events,
    which **do not recognise words** (placeholder transcripts ``"<speech 1.23 s>"``);
    otherwise the reference stub of docs/abi.md §5.4.  :meth:`start`, :meth:`wake` and :meth:`stop`
    are called with the fd table lock held and only schedule work on the loop.

    Attributes for tests and views: ``seq`` (reference events emitted), ``events``
    (events pushed, both modes), ``items`` (send items drained), ``mode``,
    ``finished`` (a ``threading.Event`` set once the task has ended).
    """

    name = "stub"

    def __init__(self, fd: "RtasrFd", io: "IoLoop", backend: str | None = None) -> None:
        self.fd = fd
        self.io = io
        self.backend = backend
        self.mode = REFERENCE
        self.seq = 0
        self.events = 0
        self.items = 0
        self.asr: EnergyAsr | None = None
        self.finished = threading.Event()
        self._task: asyncio.Task | None = None
        self._stopped = False

    # -- Transport protocol -----------------------------------------------------------

    def start(self) -> None:
        """Schedule the tick task (called at CONNECT, lock held)."""
        self.mode = REALISTIC if self.fd.param("stub_mode") == REALISTIC else REFERENCE
        self.io.call_soon(self._spawn)

    def wake(self) -> None:
        """The 10 ms tick picks new items up; a closed fd ends the task."""
        if self.fd.closed:
            self.stop(flush=False)

    def stop(self, flush: bool) -> None:
        """End the task at once (the stub has nothing to flush)."""
        self._stopped = True
        if self._task is None and not self.io.running:
            self._ended()
            return
        if self.io.running:
            self.io.call_soon(self._cancel)

    # -- the task ---------------------------------------------------------------------

    def _spawn(self) -> None:
        if self._stopped or self.fd.closed:
            self._ended()
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"stub-rtasr-{self.fd.fd}")

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
        else:
            self._ended()

    def _ended(self) -> None:
        self.fd.transport_ended()  # Draining → Closed when the fd closed meanwhile
        self.finished.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        log.debug("rtasr fd %d: stub transport started (%s mode)", self.fd.fd, self.mode)
        try:
            self.fd.opened()
            start = loop.time()
            last_emit = start
            next_tick = start
            if self.mode == REALISTIC:
                self.asr = EnergyAsr()
                self._configure()
                self._push(self.asr.session_created(self.fd.param("model")))
            while not self._stopped:
                next_tick += TICK_S
                delay = next_tick - loop.time()
                if delay < -TICK_S:  # fell behind (a stalled loop): do not catch up in a burst
                    next_tick = loop.time()
                    delay = 0.0
                await asyncio.sleep(max(0.0, delay))
                if self._stopped or self.fd.closed:
                    break
                try:
                    if self.mode == REALISTIC:
                        self._tick_realistic()
                    else:
                        now = next_tick  # the tick's nominal time: periods are whole ticks
                        self._tick_reference()
                        interval = _int_param(self.fd, "stub_event_interval_ms", DEFAULT_INTERVAL_MS)
                        if (now - last_emit) * 1000.0 >= interval:
                            last_emit = now
                            self._emit_reference()
                except Exception:  # never Error, never die on a bug: log and keep ticking
                    log.exception("rtasr fd %d: stub tick failed", self.fd.fd)
        except asyncio.CancelledError:
            pass
        finally:
            log.debug("rtasr fd %d: stub transport ended after %d events", self.fd.fd, self.events)
            self._ended()

    def _push(self, event: dict[str, Any] | bytes) -> None:
        self.fd.push_event(event if isinstance(event, bytes) else dumpb(event))
        self.events += 1

    def _tick_reference(self) -> None:
        fd = self.fd
        commit_if_due(fd)
        item = fd.take_send_item()
        if item is not None:
            self.items += 1
            if not item.audio:
                fd.control_sent()

    def _emit_reference(self) -> None:
        fd = self.fd
        self.seq += 1
        self._push(reference_event(
            self.seq,
            min(MAX_PAYLOAD_BYTES, _int_param(fd, "stub_event_payload_bytes", DEFAULT_PAYLOAD_BYTES)),
            _int_param(fd, "stub_emit_completed_every", DEFAULT_COMPLETED_EVERY),
        ))

    def _configure(self) -> None:
        assert self.asr is not None
        rms = self.fd.param("stub_vad_rms")
        if isinstance(rms, bool) or not isinstance(rms, (int, float)) or not rms > 0:
            rms = None
        self.asr.configure(self.fd.segmentation, rms)

    def _tick_realistic(self) -> None:
        fd, asr = self.fd, self.asr
        assert asr is not None
        self._configure()
        commit_if_due(fd)
        # Drain what is queued now (not what a fast writer adds while we work).
        for _ in range(len(fd.send_queue)):
            item = fd.take_send_item()
            if item is None:
                break
            self.items += 1
            if item.audio:
                events = asr.audio(item.data)
            else:
                fd.control_sent()
                events = asr.control(item.data)
            for event in events:
                self._push(event)

    def __repr__(self) -> str:
        state = "finished" if self.finished.is_set() else ("stopping" if self._stopped else "running")
        return f"<StubTransport fd={self.fd.fd} {self.mode} {state} events={self.events}>"
