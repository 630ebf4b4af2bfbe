"""Sans-I/O core of one realtime transcription session (GA or beta dialect).

:class:`TranscriptionSession` consumes client messages (:meth:`receive`),
recogniser results (:meth:`partial`, :meth:`recognized`, :meth:`failed`) and clock
ticks (:meth:`tick`), and returns lists of actions from :mod:`.events` (events to
send, recogniser work to start). It never blocks, sleeps or does I/O.

Timeline: every ``audio_*_ms`` is a position in the audio appended this session
(16 kHz sample index / 16), so results do not depend on how fast audio arrives.
Only ``idle_timeout_ms`` also looks at the wall clock (whichever elapses first).

Items: with ``server_vad``/``semantic_vad`` an item begins at speech start (minus
the prefix padding) and ends at speech stop (plus the silence waited); with
turn detection ``null`` an item begins with the first audio after a commit/clear
and ends at ``input_audio_buffer.commit``. Audio is streamed to the recogniser
while the item grows, so only the tail is left to decode at the end.

VAD: ``vad`` picks the frame estimator (``"statistical"`` or ``"silero"``, see
:func:`~spear_lab.server.vad.new_estimator`); the turn detector takes its frame
geometry. A session whose ``include`` lists ``"spear.vad.probabilities"`` also
gets that event (spear_lab's extension): the per-frame speech probabilities,
batched (about every :data:`VAD_BATCH_MS` of audio, and always before a VAD or
commit event and before ``session.updated``/``input_audio_buffer.cleared``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import transcripts as tx
from .audio import InputDecoder, fold_spectrum
from .config import (SEMANTIC_WAITS_MS, VAD_PROBABILITIES, ConfigError, SessionConfig,
                     apply_beta, apply_ga, DEFAULT_SILENCE_MS)
from .engines import Recognition
from .events import (AbortStream, Action, CloseConnection, FeedAudio, FinishStream, Ids,
                     OpenStream, RequestPartial, Send, error_event)
from .turns import SpeechStart, TurnDetector
from .vad import new_estimator

__all__ = ["TranscriptionSession", "Prepared", "MAX_APPEND_BYTES", "MIN_COMMIT_MS", "VAD_BATCH_MS"]

log = logging.getLogger(__name__)

MAX_APPEND_BYTES = 15 * 1024 * 1024
"""Largest decoded audio payload of one append (15 MiB)."""
MIN_COMMIT_MS = 100
PARTIAL_EVERY_MS = 300
"""Partial hypotheses are requested every this much item audio (live deltas, semantic_vad)."""
RETAIN_MS = 30000
"""Audio kept outside an item, for padding and for manual commits in VAD mode."""
SESSION_TTL_S = 3600
VAD_BATCH_MS = 500
"""Audio covered by one ``spear.vad.probabilities`` event (at most, unless flushed)."""
_CONTINUATIONS = {"and", "but", "or", "so", "because", "the", "a", "an", "to", "of", "in",
                  "on", "with", "for", "at", "that", "if", "uh", "um", "my", "your", "is"}
_UNSUPPORTED = {"conversation.item.create", "conversation.item.delete", "conversation.item.retrieve",
                "conversation.item.truncate", "response.create", "response.cancel",
                "output_audio_buffer.clear"}
_RATE = 16  # samples per ms at 16 kHz


@dataclass
class Prepared:
    """A client message after :meth:`TranscriptionSession.prepare`: either the
    ``actions`` answering it (an error) or its handler, event and decoded audio."""

    actions: list | None = None
    handler: Callable | None = None
    event: dict | None = None
    event_id: str | None = None
    pcm: np.ndarray | None = None
    probs: np.ndarray | None = None


@dataclass
class _Item:
    id: str
    start: int  # 16 kHz sample index of the item's first sample
    fed: int  # samples given to the recogniser so far (absolute index)
    transcription: dict | None
    profile: tx.Profile
    next_partial: int = 0
    live: tx.LiveDeltas = field(default_factory=tx.LiveDeltas)
    end: int | None = None


class TranscriptionSession:
    """One session's protocol state machine.

    ``dialect`` is ``"ga"`` or ``"beta"``; ``beta_object`` picks the beta session
    flavour (``"realtime.transcription_session"`` for ``?intent=transcription``,
    ``"realtime.session"`` for ``?model=…``). ``clock`` gives Unix seconds (for
    ``expires_at``), ``monotonic`` seconds for the idle timeout. ``vad``: the
    frame estimator, ``"statistical"`` or ``"silero"`` (ValueError otherwise;
    :class:`~spear_lab.server.silero.SileroUnavailable` if Silero cannot load).
    ``lenient``: the legacy-client profile (nested session objects replaced, any
    model name, GA transcription on from the start); default: OpenAI's behaviour.
    """

    def __init__(self, dialect: str = "ga", *, ids: Ids | None = None,
                 beta_object: str = "realtime.transcription_session",
                 url_model: str | None = None, default_silence_ms: int = DEFAULT_SILENCE_MS,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 vad: str = "statistical", lenient: bool = False) -> None:
        if dialect not in ("ga", "beta"):
            raise ValueError(f"unknown dialect {dialect!r}")
        self.dialect, self.beta_object = dialect, beta_object
        self.ids = ids or Ids()
        self._silence_default = default_silence_ms
        self._monotonic = monotonic
        self.lenient = lenient
        tr_model = url_model if url_model and ("transcribe" in url_model or "whisper" in url_model) else None
        # OpenAI's GA sessions start with transcription null; beta and lenient ones on
        self.config = SessionConfig.default(default_silence_ms, tr_model,
                                            transcription=lenient or dialect == "beta")
        self.session_id = self.ids.new("sess")
        self.expires_at = int(clock()) + SESSION_TTL_S
        self._decoder = InputDecoder(self.config.format)
        self._vad = new_estimator(vad)
        self._turns = TurnDetector.for_estimator(self._vad)
        self._vad_batch: list[float] = []
        self._vad_next = 0  # index of the first frame not yet reported
        self._ring = np.zeros(0, np.int16)
        self._ring_start = 0  # absolute index of _ring[0]
        self.position = 0  # 16 kHz samples appended this session
        self._buffer_start = 0
        self._pending: _Item | None = None
        self._items: dict[str, _Item] = {}
        self._previous_item: str | None = None
        self._idle_anchor = 0
        self._idle_anchor_wall = monotonic()
        self._idle_fired = False  # one timeout per idle period
        self._configure_turns()

    # ------------------------------------------------------------------ public API
    def start(self) -> list[Action]:
        """The session's first event."""
        if self.dialect == "ga":
            return [self._send("session.created", session=self._render())]
        kind = "transcription_session" if self.beta_object.endswith("transcription_session") else "session"
        return [self._send(f"{kind}.created", session=self._render())]

    def receive(self, data: str | bytes) -> list[Action]:
        """Handle one client message; malformed ones give an ``error`` event."""
        return self.handle(self.prepare(data))

    def prepare(self, data: str | bytes) -> Prepared:
        """Parse and validate one client message and decode its audio (the costly
        part of a large append). Touches only the audio decoder and VAD estimator, so
        an adapter may run it in a worker thread as long as messages are prepared and
        handled one at a time, in order."""
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                return self._reject("invalid_json", "The message is not valid UTF-8 JSON.")
        try:
            ev = json.loads(data)
        except (ValueError, RecursionError) as exc:
            return self._reject("invalid_json", f"We could not parse the JSON body of your "
                                f"request: {exc}.")
        if not isinstance(ev, dict):
            return self._reject("invalid_event", "The event must be a JSON object.")
        eid = ev.get("event_id")
        if eid is not None and not isinstance(eid, str):
            return self._reject("invalid_type", "Invalid type for 'event_id': expected a string.",
                                "event_id")
        if eid is not None and len(eid) > 512:
            return self._reject("string_above_max_length", "Invalid 'event_id': string too long. "
                                "Expected a string with maximum length 512.", "event_id")
        kind = ev.get("type")
        if kind is None:
            return self._reject("invalid_event", "The 'type' field is missing.", None, eid)
        if not isinstance(kind, str):
            return self._reject("invalid_type", "Invalid type for 'type': expected a string.",
                                "type", eid)
        handlers = self._handlers()
        if kind not in handlers:
            if kind in _UNSUPPORTED:
                msg = f"'{kind}' is not supported in transcription sessions."
            else:
                msg = (f"Invalid value: '{kind}'. Supported values are: "
                       + ", ".join(f"'{k}'" for k in handlers) + ".")
            return self._reject("invalid_value", msg, "type", eid)
        fields, handler = handlers[kind]
        for k in ev:
            if k not in fields | {"type", "event_id"}:
                return self._reject("unknown_parameter", f"Unknown parameter: '{k}'.", k, eid)
        p = Prepared(handler=handler, event=ev, event_id=eid)
        return self._decode_append(p) if kind == "input_audio_buffer.append" else p

    def handle(self, p: Prepared) -> list[Action]:
        """Act on a message returned by :meth:`prepare` (on the adapter's loop)."""
        if p.actions is not None:
            return p.actions
        try:
            return p.handler(p)
        except Exception:  # a bug must not cost the client its session
            log.exception("handling %s failed", p.event.get("type"))
            return [Send(error_event(self.ids, "server_error", "The server had an error while "
                                     "processing this event.", None, p.event_id, "server_error"))]

    def partial(self, item_id: str, text: str) -> list[Action]:
        """A partial hypothesis for ``item_id`` arrived."""
        item = self._items.get(item_id)
        if item is None:
            return []
        td = self.config.turn_detection
        if td and td["type"] == "semantic_vad" and item is self._pending:
            words = text.split()
            short, longest = SEMANTIC_WAITS_MS[td["eagerness"]]
            self._turns.end_wait_ms = longest if not words or words[-1] in _CONTINUATIONS else short
        if item.profile.deltas != tx.LIVE:
            return []
        return [self._delta(item, p, None) for p in item.live.partial(text)]

    def recognized(self, item_id: str, rec: Recognition) -> list[Action]:
        """The final recognition of a committed item arrived."""
        item = self._items.pop(item_id, None)
        if item is None:
            return []
        lp = tx.logprobs(rec) if self.config.logprobs else None
        text = " ".join(rec.text.split())  # so that the deltas add up to it exactly
        if item.profile.deltas == tx.SINGLE:
            pieces = [text] if text else []
        elif item.profile.deltas == tx.LIVE:
            pieces, text = item.live.final(text)
        else:
            pieces = tx.split_deltas(text)
        delta_lps: list[list | None] = [None] * len(pieces)  # live deltas carry none
        if lp is not None and item.profile.deltas == tx.SINGLE and pieces:
            delta_lps = [lp]
        elif lp is not None and item.profile.deltas == tx.AFTER_COMMIT and len(lp) == len(pieces):
            delta_lps = [[entry] for entry in lp]
        out: list[Action] = [self._delta(item, p, d) for p, d in zip(pieces, delta_lps)]
        ms = ((item.end or item.start) - item.start) / _RATE
        usage = tx.usage(item.profile.usage, ms, text, (item.transcription or {}).get("prompt"))
        extra = {"logprobs": lp} if lp is not None else {}
        out.append(self._send("conversation.item.input_audio_transcription.completed",
                              item_id=item.id, content_index=0, transcript=text,
                              usage=usage, **extra))
        return out

    def failed(self, item_id: str, message: str) -> list[Action]:
        """Recognition of ``item_id`` failed."""
        if self._items.pop(item_id, None) is None:
            return []
        return [self._send("conversation.item.input_audio_transcription.failed",
                           item_id=item_id, content_index=0,
                           error={"type": "server_error", "code": "transcription_failed",
                                  "message": message, "param": None})]

    def tick(self) -> list[Action]:
        """Check the idle timeout (audio time or wall clock, whichever is first)."""
        return self._flush_vad() + self._idle_timeout() if self._idle_due() else []

    def idle_deadline(self) -> float | None:
        """Monotonic time at which :meth:`tick` should next be called; None while it
        cannot fire (no timeout set, already fired this idle period, speech going on,
        or less than 100 ms buffered): the next client message re-asks."""
        td = self.config.turn_detection
        if not self._idle_armed():
            return None
        at = self._idle_anchor_wall + td["idle_timeout_ms"] / 1000.0
        if at <= self._monotonic() and not self._idle_due():
            return None
        return at

    def _idle_armed(self) -> bool:
        td = self.config.turn_detection
        return bool(td and td.get("idle_timeout_ms")) and not self._idle_fired \
            and not self._turns.in_speech and self._pending is None

    def _idle_start(self) -> int:
        return max(self._idle_anchor, self._ring_start, self._buffer_start)

    def _idle_due(self) -> bool:
        """Idle for ``idle_timeout_ms`` and at least 100 ms of audio to commit."""
        if not self._idle_armed():
            return False
        limit = self.config.turn_detection["idle_timeout_ms"]
        idle = (self.position - self._idle_anchor >= limit * _RATE
                or (self._monotonic() - self._idle_anchor_wall) * 1000 >= limit)
        return idle and self.position - self._idle_start() >= MIN_COMMIT_MS * _RATE

    def close(self) -> list[Action]:
        """The connection is gone: drop every recogniser stream."""
        out = [AbortStream(i) for i in self._items]
        self._items.clear()
        self._pending = None
        return out

    @property
    def buffered_ms(self) -> float:
        """Milliseconds in the input audio buffer (since the last commit/clear)."""
        return (self.position - self._buffer_start) / _RATE

    # ------------------------------------------------------------------ helpers
    def _send(self, kind: str, **fields: Any) -> Send:
        return Send({"type": kind, "event_id": self.ids.new("event"), **fields})

    def _error(self, code: str, message: str, param: str | None = None,
               eid: str | None = None) -> Send:
        return Send(error_event(self.ids, code, message, param, eid))

    def _reject(self, code: str, message: str, param: str | None = None,
                eid: str | None = None) -> Prepared:
        return Prepared(actions=[self._error(code, message, param, eid)])

    def _delta(self, item: _Item, piece: str, logprobs: list | None) -> Send:
        extra = {"logprobs": logprobs} if logprobs is not None else {}
        return self._send("conversation.item.input_audio_transcription.delta", item_id=item.id,
                          content_index=0, delta=piece, **extra)

    def _render(self) -> dict:
        if self.dialect == "ga":
            return self.config.render_ga(self.session_id, self.expires_at)
        return self.config.render_beta(self.session_id, self.expires_at, self.beta_object)

    def _handlers(self) -> dict[str, tuple[set, Callable]]:
        table = {"input_audio_buffer.append": ({"audio"}, self._on_append),
                 "input_audio_buffer.commit": (set(), self._on_commit),
                 "input_audio_buffer.clear": (set(), self._on_clear)}
        if self.dialect == "ga":
            table["session.update"] = ({"session"}, self._on_update)
        else:
            table["transcription_session.update"] = ({"session"}, self._on_update)
            table["session.update"] = ({"session"}, self._on_update)
        return table

    def _configure_turns(self) -> None:
        td = self.config.turn_detection
        if td is None:
            return
        if td["type"] == "server_vad":
            self._turns.threshold = td["threshold"]
            self._turns.prefix_padding_ms = td["prefix_padding_ms"]
            self._turns.end_wait_ms = td["silence_duration_ms"]
        else:
            self._turns.threshold, self._turns.prefix_padding_ms = 0.5, 300
            self._turns.end_wait_ms = SEMANTIC_WAITS_MS[td["eagerness"]][0]

    # ------------------------------------------------------------------ client events
    def _on_update(self, p: Prepared) -> list[Action]:
        ev, eid = p.event, p.event_id
        if "session" not in ev:
            return [self._error("missing_required_parameter",
                                "Missing required parameter: 'session'.", "session", eid)]
        ga = self.dialect == "ga"
        try:
            apply = apply_ga if ga else apply_beta
            new = apply(self.config, ev["session"], self._silence_default, self.lenient)
        except ConfigError as exc:
            out = [self._error(exc.code, str(exc), exc.param, eid)]
            if exc.close and not self.lenient:
                out.append(CloseConnection(4000, f"invalid_request_error.{exc.code}"))
            return out
        old, self.config = self.config, new
        if new.format != old.format:
            self._decoder = InputDecoder(new.format)
        old_td, new_td = old.turn_detection, new.turn_detection
        if (old_td is None) != (new_td is None) and self._pending is not None:
            if new_td is not None:  # a manual item now ends at the next silence
                self._turns.in_speech = True
                self._turns.last_speech_ms = self.position // _RATE
        self._configure_turns()
        out = self._flush_vad()
        if ga:
            name = "session.updated"
        else:
            name = "transcription_session.updated" if ev["type"].startswith("transcription") \
                else "session.updated"
        return out + [self._send(name, session=self._render())]

    def _decode_append(self, p: Prepared) -> Prepared:
        audio, eid = p.event.get("audio"), p.event_id
        if audio is None:
            return self._reject("missing_required_parameter",
                                "Missing required parameter: 'audio'.", "audio", eid)
        if not isinstance(audio, str):
            return self._reject("invalid_type", "Invalid type for 'audio': expected a base64 "
                                "string.", "audio", eid)
        too_big = (f"Invalid 'audio': the audio is larger than the maximum of {MAX_APPEND_BYTES} "
                   "bytes (15 MiB).")
        if len(audio) // 4 * 3 > MAX_APPEND_BYTES + 3:
            return self._reject("invalid_value", too_big, "audio", eid)
        try:
            raw = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            return self._reject("invalid_value", "Invalid 'audio': expected base64-encoded "
                                "audio bytes.", "audio", eid)
        if len(raw) > MAX_APPEND_BYTES:
            return self._reject("invalid_value", too_big, "audio", eid)
        p.pcm = self._decoder.decode(raw)
        p.probs = self._vad.process(p.pcm)
        return p

    def _on_append(self, p: Prepared) -> list[Action]:
        return self._audio(p.pcm, p.probs)

    def _on_commit(self, p: Prepared) -> list[Action]:
        eid = p.event_id
        if self.buffered_ms < MIN_COMMIT_MS:
            return [self._error("input_audio_buffer_commit_empty",
                                "Error committing input audio buffer: buffer too small. Expected "
                                f"at least {MIN_COMMIT_MS}ms of audio, but buffer only has "
                                f"{self.buffered_ms:.2f}ms of audio.", None, eid)]
        out: list[Action] = self._flush_vad()
        self._idle_fired = False  # a client commit ends an idle period
        item = self._pending
        if item is None:  # VAD mode, no speech in progress: commit what is kept
            item = self._open(max(self._buffer_start, self._ring_start), out)
        self._feed(item, self.position, out)
        self._turns.reset(floor_ms=self.position // _RATE)
        self._commit(item, self.position, out)
        return out

    def _on_clear(self, p: Prepared) -> list[Action]:
        out: list[Action] = self._flush_vad()
        if self._pending is not None:
            out.append(AbortStream(self._pending.id))
            self._items.pop(self._pending.id, None)
            self._pending = None
        self._turns.reset(floor_ms=self.position // _RATE)
        self._buffer_start = self.position
        self._idle_fired = False
        out.append(self._send("input_audio_buffer.cleared"))
        return out

    # ------------------------------------------------------------------ audio path
    def _audio(self, pcm: np.ndarray, probs: np.ndarray) -> list[Action]:
        out: list[Action] = []
        first = self.position
        self.position += len(pcm)
        if self.config.vad_probabilities:
            self._vad_batch += probs.tolist()
            if len(self._vad_batch) * self._turns.frame_ms >= VAD_BATCH_MS:
                out += self._flush_vad()
        else:
            self._vad_next += len(probs)
        self._ring = np.concatenate([self._ring, pcm])
        td = self.config.turn_detection
        if td is None:
            self._turns.skip(len(probs))
            if self._pending is None and len(pcm):
                self._open(first, out)
        else:
            turn_events = self._turns.feed(probs)
            if turn_events:
                out += self._flush_vad()
            for ev in turn_events:
                if isinstance(ev, SpeechStart):
                    self._idle_fired = False  # speech ends an idle period
                    start = max(ev.audio_start_ms * _RATE, self._ring_start, self._buffer_start)
                    if self._pending is None:
                        item = self._open(start, out)
                        out.append(self._send("input_audio_buffer.speech_started",
                                              audio_start_ms=start // _RATE, item_id=item.id))
                elif self._pending is not None:
                    item, end = self._pending, ev.audio_end_ms * _RATE
                    self._feed(item, end, out)
                    out.append(self._send("input_audio_buffer.speech_stopped",
                                          audio_end_ms=ev.audio_end_ms, item_id=item.id))
                    self._commit(item, end, out)
            if self._idle_due():
                out += self._flush_vad() + self._idle_timeout()
        if self._pending is not None:  # up to where VAD has decided (a stop can't come earlier)
            frontier = self.position if td is None else self._turns.position_ms * _RATE
            self._feed(self._pending, frontier, out)
        keep_from = self.position - RETAIN_MS * _RATE
        if self._pending is not None:
            keep_from = min(keep_from, self._pending.fed)
        if keep_from > self._ring_start:
            self._ring = self._ring[keep_from - self._ring_start:]
            self._ring_start = keep_from
        return out

    def _flush_vad(self) -> list[Action]:
        """The ``spear.vad.probabilities`` event of the frames not yet reported (if any)."""
        batch, self._vad_batch = self._vad_batch, []
        if not batch:
            return []
        start = self._turns.frame_start_ms(self._vad_next)
        self._vad_next += len(batch)
        return [self._send(VAD_PROBABILITIES, audio_start_ms=start, frame_ms=self._turns.frame_ms,
                           probabilities=[round(p, 3) for p in batch])]

    def _open(self, start: int, out: list[Action]) -> _Item:
        tr = self.config.transcription
        item = _Item(self.ids.new("item"), start, start, tr, tx.profile_for(tr and tr["model"]))
        item.next_partial = start + PARTIAL_EVERY_MS * _RATE
        self._pending = item
        if tr is not None:
            self._items[item.id] = item
            td = self.config.turn_detection
            partials = item.profile.deltas == tx.LIVE or bool(td and td["type"] == "semantic_vad")
            out.append(OpenStream(item.id, tr.get("language"), tr.get("prompt"), partials))
        return item

    def _feed(self, item: _Item, upto: int, out: list[Action]) -> None:
        upto = min(upto, self.position)
        if upto <= item.fed or item.id not in self._items:
            item.fed = max(item.fed, upto)
            return
        a, b = item.fed - self._ring_start, upto - self._ring_start
        pcm = self._ring[max(a, 0):b].copy()
        if self._decoder.format.rate < 16000:  # narrowband: help wideband acoustic models
            pcm = fold_spectrum(pcm, self._ring_start + max(a, 0))
        out.append(FeedAudio(item.id, pcm))
        item.fed = upto
        td = self.config.turn_detection
        wants = item.profile.deltas == tx.LIVE or (td is not None and td["type"] == "semantic_vad")
        if wants and item.fed >= item.next_partial:
            out.append(RequestPartial(item.id))
            item.next_partial = item.fed + PARTIAL_EVERY_MS * _RATE

    def _commit(self, item: _Item, end: int, out: list[Action]) -> None:
        item.end = end
        self._pending = None
        out.append(self._send("input_audio_buffer.committed", previous_item_id=self._previous_item,
                              item_id=item.id))
        body = {"id": item.id, "object": "realtime.item", "type": "message", "status": "completed",
                "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
        if self.dialect == "ga":
            for name in ("conversation.item.added", "conversation.item.done"):
                out.append(self._send(name, previous_item_id=self._previous_item,
                                      item=json.loads(json.dumps(body))))
        else:
            out.append(self._send("conversation.item.created",
                                  previous_item_id=self._previous_item, item=body))
        self._previous_item = item.id
        self._buffer_start = max(self._buffer_start, end)
        self._idle_anchor = end
        self._idle_anchor_wall = self._monotonic()
        if item.id in self._items:
            out.append(FinishStream(item.id))

    def _idle_timeout(self) -> list[Action]:
        out: list[Action] = []
        start = self._idle_start()
        item = self._open(start, out)
        out.append(self._send("input_audio_buffer.timeout_triggered",
                              audio_start_ms=start // _RATE,
                              audio_end_ms=self.position // _RATE, item_id=item.id))
        self._feed(item, self.position, out)
        self._commit(item, self.position, out)
        self._idle_fired = True
        return out
