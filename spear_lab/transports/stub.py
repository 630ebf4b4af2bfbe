"""The stub ASR transport (abi-reference §9): events without a network or a recogniser.

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
    length of the voiced audio.  Use it to study segmentation, backpressure and event
    flow offline; use the embedded server or OpenAI for real text.

In both modes every tick also runs the client-commit timer (:meth:`RtAsrFd.autoflush_tick`,
fix G15), a drained control text clears ``pending_flush`` (:meth:`RtAsrFd.control_sent`,
fix G15), the stub never enters ``Error`` and never sets HUP, and the task ends when the
fd is closed (or at once on :meth:`StubTransport.stop`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from ..abi.jsonfmt import dumpb
from ..fds.segmentation import Segmentation, turn_detection

if TYPE_CHECKING:
    from ..fds.rtasr import RtAsrFd
    from ..runtime.ioloop import IoLoop

log = logging.getLogger(__name__)

#: Seconds between two ticks of the stub loop.
TICK_S = 0.010
#: Defaults of the stub params (§7.4).
DEFAULT_INTERVAL_MS = 100
DEFAULT_PAYLOAD_BYTES = 256
DEFAULT_COMPLETED_EVERY = 20
#: Bytes of ``stub_event_payload_bytes`` not spent on letters (the JSON around them).
PAYLOAD_OVERHEAD = 80
#: [EXT] largest ``stub_event_payload_bytes`` honoured (a guest must not make the host
#: build gigabyte strings every tick); larger values are clamped to it.
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024

REFERENCE, REALISTIC = "reference", "realistic"

#: Audio format the realistic mode assumes (the ABI's: 24 kHz mono pcm16).
SAMPLE_RATE = 24000
FRAME_MS = 10
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
#: Voiced-frame RMS threshold (fraction of full scale) per unit of ``vad.threshold``:
#: the default threshold 0.5 means RMS ≥ 0.02 (about -34 dBFS).
RMS_PER_THRESHOLD = 0.04
#: OpenAI refuses to commit less audio than this.
MIN_COMMIT_MS = 100


def _int_param(fd: "RtAsrFd", key: str, default: int) -> int:
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


class EnergyAsr:
    """The realistic stub's pretend recogniser: sans-I/O, deterministic, audio-timed.

    Feed it the items drained from the send queue (:meth:`audio`, :meth:`control`); it
    returns the OpenAI GA events they cause.  **It does not recognise words.**  A 10 ms
    frame is *voiced* when its RMS (fraction of full scale) reaches the threshold
    (``rms_threshold``, or ``RMS_PER_THRESHOLD × vad.threshold``).

    - server VAD (``turn_detection`` set, §8.5): the first voiced frame starts a turn —
      ``input_audio_buffer.speech_started`` with ``audio_start_ms`` = its start minus
      ``prefix_padding_ms`` (not before the buffer start); ``silence_duration_ms`` of
      unvoiced audio after the last voiced frame ends it — ``speech_stopped`` with
      ``audio_end_ms`` = last voiced end + silence — then the item is committed and
      transcribed.
    - manual / client commit (``turn_detection`` null): only a commit control text
      (FLUSH, autoflush or SEND_EVENT ``input_audio_buffer.commit``) commits the buffer;
      less than 100 ms of buffered audio gives OpenAI's
      ``input_audio_buffer_commit_empty`` error event instead.
    - a commit is answered by ``input_audio_buffer.committed`` (``item_id``,
      ``previous_item_id``), one ``conversation.item.input_audio_transcription.delta``
      per placeholder word, and ``…completed`` with ``transcript`` ``"<speech S s>"``
      (S = seconds from the first to the last voiced frame; ``""`` when none was voiced).
    - ``input_audio_buffer.clear`` drops the buffer (``input_audio_buffer.cleared``).
    - other control texts are ignored; every ``*_ms`` is a position in the audio written
      since CONNECT, never wall-clock time.  Ids are deterministic
      (``item_stub_0001``, ``event_stub_000001``).
    """

    def __init__(self) -> None:
        self.frames = 0  # 10 ms frames analysed so far: the audio clock
        self._rest = b""  # bytes of an incomplete frame
        self._events = 0
        self._items = 0
        self.previous_item_id: str | None = None
        self.turn_detection: dict[str, Any] | None = None
        self.rms_threshold = RMS_PER_THRESHOLD * 0.5
        self._reset_buffer()
        self.in_speech = False
        self._item_id: str | None = None
        self._speech_start_ms = 0

    # -- configuration ----------------------------------------------------------------

    def configure(self, seg: Segmentation, rms_threshold: float | None = None) -> None:
        """Follow the fd's segmentation (read every tick); an explicit RMS threshold wins."""
        td = turn_detection(seg)
        if td is None and self.in_speech:
            self.in_speech = False  # server VAD switched off mid-turn: forget the turn
        self.turn_detection = td
        if rms_threshold is not None:
            self.rms_threshold = rms_threshold
        else:
            threshold = seg.vad.threshold if seg.vad is not None and seg.vad.threshold is not None else 0.5
            self.rms_threshold = RMS_PER_THRESHOLD * float(threshold)

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio analysed since the start."""
        return self.frames * FRAME_MS

    # -- input ------------------------------------------------------------------------

    def audio(self, data: bytes) -> list[dict[str, Any]]:
        """Analyse an audio chunk (any length; partial frames wait for the next chunk)."""
        buf = self._rest + data if self._rest else data
        n = len(buf) // FRAME_BYTES
        self._rest = bytes(buf[n * FRAME_BYTES:])
        if n == 0:
            return []
        samples = np.frombuffer(buf, dtype="<i2", count=n * FRAME_SAMPLES).astype(np.float32)
        rms = np.sqrt(np.mean(np.square(samples.reshape(n, FRAME_SAMPLES)), axis=1)) / 32768.0
        out: list[dict[str, Any]] = []
        for voiced in (rms >= self.rms_threshold).tolist():
            self._frame(voiced, out)
        return out

    def control(self, text: bytes) -> list[dict[str, Any]]:
        """React to a control text: commit, clear, or an append sent with SEND_EVENT."""
        try:
            obj = json.loads(text)
        except ValueError:
            return []
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "input_audio_buffer.commit":
            return self.commit()
        if kind == "input_audio_buffer.clear":
            return self.clear()
        if kind == "session.update":  # acknowledged in order, like a real server
            updated = self.session_created(None)
            updated["type"] = "session.updated"
            return [updated]
        if kind == "input_audio_buffer.append" and isinstance(obj.get("audio"), str):
            try:
                return self.audio(base64.b64decode(obj["audio"], validate=True))
            except (binascii.Error, ValueError):
                return [self._error("invalid_value", "audio is not valid base64")]
        return []

    def commit(self) -> list[dict[str, Any]]:
        """Commit the buffered audio (a manual commit)."""
        length = self.position_ms - self._buf_start_ms
        if length < MIN_COMMIT_MS:
            return [self._error(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"100ms of audio, but buffer only has {float(length):.2f}ms of audio.",
            )]
        if self.in_speech and self._item_id:
            item_id, start = self._item_id, self._speech_start_ms
        else:
            item_id, start = self._new_item(), None
        self.in_speech = False
        return self._commit_item(item_id, start)

    def clear(self) -> list[dict[str, Any]]:
        """Drop the buffered audio."""
        self._reset_buffer()
        self.in_speech = False
        return [self._event("input_audio_buffer.cleared")]

    # -- internals ---------------------------------------------------------------------

    def _reset_buffer(self) -> None:
        self._buf_start_ms = self.position_ms
        self._voice_first_ms: int | None = None
        self._voice_last_end_ms: int | None = None

    def _frame(self, voiced: bool, out: list[dict[str, Any]]) -> None:
        t0 = self.position_ms
        self.frames += 1
        t1 = self.position_ms
        if voiced:
            if self._voice_first_ms is None:
                self._voice_first_ms = t0
            self._voice_last_end_ms = t1
        td = self.turn_detection
        if td is None:
            return
        if not self.in_speech:
            if voiced:
                self.in_speech = True
                self._item_id = self._new_item()
                pad = int(td.get("prefix_padding_ms") or 0)
                self._speech_start_ms = max(self._buf_start_ms, t0 - pad)
                out.append(self._event("input_audio_buffer.speech_started",
                                       audio_start_ms=self._speech_start_ms, item_id=self._item_id))
            return
        last = self._voice_last_end_ms if self._voice_last_end_ms is not None else t1
        if not voiced and t1 - last >= int(td.get("silence_duration_ms") or 0):
            item_id = self._item_id or self._new_item()
            self.in_speech = False
            out.append(self._event("input_audio_buffer.speech_stopped", audio_end_ms=t1, item_id=item_id))
            out.extend(self._commit_item(item_id, self._speech_start_ms))

    def _commit_item(self, item_id: str, start_ms: int | None = None) -> list[dict[str, Any]]:
        first, last = self._voice_first_ms, self._voice_last_end_ms
        voiced_s = (last - first) / 1000.0 if first is not None and last is not None else 0.0
        transcript = f"<speech {voiced_s:.2f} s>" if voiced_s > 0 else ""
        start = self._buf_start_ms if start_ms is None else start_ms
        seconds = (self.position_ms - start) / 1000.0
        out = [self._event("input_audio_buffer.committed", item_id=item_id,
                           previous_item_id=self.previous_item_id)]
        for word in re.findall(r"\S+\s*", transcript):
            out.append(self._event("conversation.item.input_audio_transcription.delta",
                                   item_id=item_id, content_index=0, delta=word))
        out.append(self._event("conversation.item.input_audio_transcription.completed",
                               item_id=item_id, content_index=0, transcript=transcript,
                               usage={"type": "duration", "seconds": seconds}))
        self.previous_item_id = item_id
        self._item_id = None
        self._reset_buffer()
        return out

    def _new_item(self) -> str:
        self._items += 1
        return f"item_stub_{self._items:04d}"

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self._events += 1
        return {"type": kind, "event_id": f"event_stub_{self._events:06d}", **fields}

    def _error(self, code: str, message: str) -> dict[str, Any]:
        return self._event("error", error={"type": "invalid_request_error", "code": code,
                                           "message": message, "param": None, "event_id": None})

    def session_created(self, model: str | None) -> dict[str, Any]:
        """The first event of a session (what the stub pretends to be configured as)."""
        return self._event("session.created", session={
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": "sess_stub",
            "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
                "transcription": {"model": model or "stub-energy"},
                "turn_detection": self.turn_detection,
            }},
        })


class StubTransport:
    """The stub transport of one rtasr fd: one asyncio task on the host's I/O loop.

    ``stub_mode: "realistic"`` selects :class:`EnergyAsr`-driven OpenAI-shaped events,
    which **do not recognise words** (placeholder transcripts ``"<speech 1.23 s>"``);
    otherwise the reference stub of §9.  :meth:`start`, :meth:`wake` and :meth:`stop`
    are called with the fd table lock held and only schedule work on the loop.

    Attributes for tests and views: ``seq`` (reference events emitted), ``events``
    (events pushed, both modes), ``items`` (send items drained), ``mode``,
    ``finished`` (a ``threading.Event`` set once the task has ended).
    """

    name = "stub"

    def __init__(self, fd: "RtAsrFd", io: "IoLoop", backend: str | None = None) -> None:
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
        """Nothing to do: the 10 ms tick picks new items up."""

    def stop(self, flush: bool) -> None:
        """End the task at once (the stub has nothing to flush)."""
        self._stopped = True
        if self._task is None and not self.io.running:
            self.finished.set()
            return
        if self.io.running:
            self.io.call_soon(self._cancel)

    # -- the task ---------------------------------------------------------------------

    def _spawn(self) -> None:
        if self._stopped or self.fd.closed:
            self.finished.set()
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"stub-rtasr-{self.fd.fd}")

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
        else:
            self.finished.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        log.debug("rtasr fd %d: stub transport started (%s mode)", self.fd.fd, self.mode)
        try:
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
            self.finished.set()

    def _push(self, event: dict[str, Any] | bytes) -> None:
        self.fd.push_event(event if isinstance(event, bytes) else dumpb(event))
        self.events += 1

    def _tick_reference(self) -> None:
        fd = self.fd
        fd.autoflush_tick()
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
        fd.autoflush_tick()
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
