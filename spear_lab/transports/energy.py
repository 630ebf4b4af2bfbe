"""The realistic stub's pretend recogniser, sans I/O (docs/abi.md §5.4, ``stub_mode: "realistic"``).

:class:`EnergyAsr` turns the items drained from an rtasr send queue into OpenAI GA
transcription events, timed by the audio itself (24 kHz mono pcm16, 10 ms frames, RMS
against a threshold).  **It recognises no words**: transcripts are placeholders such as
``"<speech 1.23 s>"``.  :class:`~spear_lab.transports.stub.StubTransport` drives it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

import numpy as np

from ..fds.segmentation import Segmentation, turn_detection

__all__ = ["EnergyAsr", "FRAME_BYTES", "FRAME_MS", "FRAME_SAMPLES", "MIN_COMMIT_MS",
           "RMS_PER_THRESHOLD", "SAMPLE_RATE"]

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


class EnergyAsr:
    """The realistic stub's pretend recogniser: sans-I/O, deterministic, audio-timed.

    Feed it the items drained from the send queue (:meth:`audio`, :meth:`control`); it
    returns the OpenAI GA events they cause.  **It does not recognise words.**  A 10 ms
    frame is *voiced* when its RMS (fraction of full scale) reaches the threshold
    (``rms_threshold``, or ``RMS_PER_THRESHOLD × vad.threshold``).

    - server VAD (``turn_detection`` set, docs/abi.md §6.6): the first voiced frame starts a turn —
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
