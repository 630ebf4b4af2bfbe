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

import logging
import time
from typing import Any, Callable

import numpy as np

from . import items, messages, transcripts as tx
from .audio import InputDecoder, fold_spectrum
from .config import (SEMANTIC_WAITS_MS, ConfigError, SessionConfig, apply_beta, apply_ga,
                     DEFAULT_SILENCE_MS)
from .engines import Recognition
from .events import (AbortStream, Action, CloseConnection, FeedAudio, FinishStream, Ids,
                     OpenStream, RequestPartial, Send, error_event)
from .idle import IdleTimer
from .items import Item
from .messages import Prepared
from .turns import SpeechStart, TurnDetector
from .vad import new_estimator
from .vadreport import VAD_BATCH_MS, VadReport

__all__ = ["TranscriptionSession", "Prepared", "MAX_APPEND_BYTES", "MIN_COMMIT_MS", "VAD_BATCH_MS"]

log = logging.getLogger(__name__)

MAX_APPEND_BYTES = 15 * 1024 * 1024
"""Largest decoded audio payload of one append (15 MiB; read at each append)."""
MIN_COMMIT_MS = 100
PARTIAL_EVERY_MS = 300
"""Partial hypotheses are requested every this much item audio (live deltas, semantic_vad)."""
RETAIN_MS = 30000
"""Audio kept outside an item, for padding and for manual commits in VAD mode."""
SESSION_TTL_S = 3600
_CONTINUATIONS = {"and", "but", "or", "so", "because", "the", "a", "an", "to", "of", "in",
                  "on", "with", "for", "at", "that", "if", "uh", "um", "my", "your", "is"}
_RATE = items.SAMPLES_PER_MS


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
        self._vad_report = VadReport(self._turns)
        self._ring = np.zeros(0, np.int16)
        self._ring_start = 0  # absolute index of _ring[0]
        self.position = 0  # 16 kHz samples appended this session
        self._buffer_start = 0
        self._pending: Item | None = None
        self._items: dict[str, Item] = {}
        self._previous_item: str | None = None
        self._idle = IdleTimer(monotonic)
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
        p = messages.parse(self.ids, data, self._handlers())
        if p.event is not None and p.event["type"] == "input_audio_buffer.append":
            return self._decode_append(p)
        return p

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
        if self._semantic() and item is self._pending:
            words = text.split()
            short, longest = SEMANTIC_WAITS_MS[self.config.turn_detection["eagerness"]]
            self._turns.end_wait_ms = longest if not words or words[-1] in _CONTINUATIONS else short
        if item.profile.deltas != tx.LIVE:
            return []
        return [items.delta(self._send, item.id, p) for p in item.live.partial(text)]

    def recognized(self, item_id: str, rec: Recognition) -> list[Action]:
        """The final recognition of a committed item arrived."""
        item = self._items.pop(item_id, None)
        if item is None:
            return []
        return items.transcribed(self._send, item, rec, self.config.logprobs)

    def failed(self, item_id: str, message: str) -> list[Action]:
        """Recognition of ``item_id`` failed."""
        if self._items.pop(item_id, None) is None:
            return []
        return [items.failed(self._send, item_id, message)]

    def tick(self) -> list[Action]:
        """Check the idle timeout (audio time or wall clock, whichever is first)."""
        return self._flush_vad() + self._idle_timeout() if self._idle_due() else []

    def idle_deadline(self) -> float | None:
        """Monotonic time at which :meth:`tick` should next be called; None while it
        cannot fire (no timeout set, already fired this idle period, speech going on,
        or less than 100 ms buffered): the next client message re-asks."""
        limit = self._idle_limit()
        if limit is None:
            return None
        at = self._idle.deadline(limit)
        if at <= self._monotonic() and not self._idle_due():
            return None
        return at

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

    def _semantic(self) -> bool:
        td = self.config.turn_detection
        return td is not None and td["type"] == "semantic_vad"

    def _wants_partials(self, item: Item) -> bool:
        """Partial hypotheses of ``item`` are wanted (live deltas, semantic_vad)."""
        return item.profile.deltas == tx.LIVE or self._semantic()

    def _idle_limit(self) -> int | None:
        """``idle_timeout_ms`` while the idle timer is armed, else None."""
        td = self.config.turn_detection
        if not (td and td.get("idle_timeout_ms")) or self._idle.fired \
                or self._turns.in_speech or self._pending is not None:
            return None
        return td["idle_timeout_ms"]

    def _idle_start(self) -> int:
        return max(self._idle.anchor, self._ring_start, self._buffer_start)

    def _idle_due(self) -> bool:
        """Idle for ``idle_timeout_ms`` and at least 100 ms of audio to commit."""
        limit = self._idle_limit()
        return limit is not None and self._idle.elapsed(limit, self.position) \
            and self.position - self._idle_start() >= MIN_COMMIT_MS * _RATE

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
        apply = apply_ga if self.dialect == "ga" else apply_beta
        try:
            new = apply(self.config, ev["session"], self._silence_default, self.lenient)
        except ConfigError as exc:
            out = [self._error(exc.code, str(exc), exc.param, eid)]
            if exc.close and not self.lenient:
                out.append(CloseConnection(4000, f"invalid_request_error.{exc.code}"))
            return out
        old, self.config = self.config, new
        if new.format != old.format:
            self._decoder = InputDecoder(new.format)
        if old.turn_detection is None and new.turn_detection is not None \
                and self._pending is not None:  # a manual item now ends at the next silence
            self._turns.in_speech = True
            self._turns.last_speech_ms = self.position // _RATE
        self._configure_turns()
        # GA answers session.update; beta answers each of its two update events in kind
        name = "transcription_session.updated" if ev["type"].startswith("transcription") \
            else "session.updated"
        return self._flush_vad() + [self._send(name, session=self._render())]

    def _decode_append(self, p: Prepared) -> Prepared:
        raw = messages.append_audio(self.ids, p, MAX_APPEND_BYTES)
        if isinstance(raw, Prepared):
            return raw
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
        self._idle.fired = False  # a client commit ends an idle period
        item = self._pending
        if item is None:  # VAD mode, no speech in progress: commit what is kept
            item = self._open(max(self._buffer_start, self._ring_start), out)
        self._feed(item, self.position, out)
        self._turns.reset(floor_ms=self.position // _RATE)
        self._commit(item, self.position, out)
        return out

    def _on_clear(self, p: Prepared) -> list[Action]:
        self._decoder.drop_partial()  # an odd byte before the clear must not shift what follows
        out: list[Action] = self._flush_vad()
        if self._pending is not None:
            out.append(AbortStream(self._pending.id))
            self._items.pop(self._pending.id, None)
            self._pending = None
        self._turns.reset(floor_ms=self.position // _RATE)
        self._buffer_start = self.position
        self._idle.fired = False
        out.append(self._send("input_audio_buffer.cleared"))
        return out

    # ------------------------------------------------------------------ audio path
    def _audio(self, pcm: np.ndarray, probs: np.ndarray) -> list[Action]:
        out: list[Action] = []
        first = self.position
        self.position += len(pcm)
        out += self._vad_report.add(probs, self.config.vad_probabilities, self._send)
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
                    self._idle.fired = False  # speech ends an idle period
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
        return self._vad_report.flush(self._send)

    def _open(self, start: int, out: list[Action]) -> Item:
        tr = self.config.transcription
        item = Item(self.ids.new("item"), start, start, tr, tx.profile_for(tr and tr["model"]))
        item.next_partial = start + PARTIAL_EVERY_MS * _RATE
        self._pending = item
        if tr is not None:
            self._items[item.id] = item
            out.append(OpenStream(item.id, tr.get("language"), tr.get("prompt"),
                                  self._wants_partials(item)))
        return item

    def _feed(self, item: Item, upto: int, out: list[Action]) -> None:
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
        if self._wants_partials(item) and item.fed >= item.next_partial:
            out.append(RequestPartial(item.id))
            item.next_partial = item.fed + PARTIAL_EVERY_MS * _RATE

    def _commit(self, item: Item, end: int, out: list[Action]) -> None:
        item.end = end
        self._pending = None
        out += items.committed(self._send, self.dialect, self._previous_item, item.id)
        self._previous_item = item.id
        self._buffer_start = max(self._buffer_start, end)
        self._idle.restart(end)
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
        self._idle.fired = True
        return out
