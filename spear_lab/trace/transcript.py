"""The transcript folder: OpenAI transcription events folded into one item per turn.

:class:`TranscriptFolder` reads parsed server events (dicts) with their arrival times and
keeps one :class:`TranscriptItem` per ``item_id`` (per instance and fd):

- ``input_audio_buffer.speech_started`` / ``speech_stopped`` give the item's
  ``audio_start_ms`` / ``audio_end_ms`` (server positions in the audio stream, ms) and
  times; ``committed`` its commit time and ``previous_item_id``;
- ``conversation.item.input_audio_transcription.delta`` grows its text, ``completed``
  sets the transcript, ``failed`` the error message;
- the stub's ``transcription.delta`` / ``completed`` (no item ids): one item per
  ``completed``, named ``stub-N``.

The Trace folds every received event through one folder (bounded by its caps); the
explorer's :func:`~spear_lab.explore.events.segments_from_events` folds a replay's events
through another (unbounded, ``anonymous=True``: events without an id make items of
their own).  A folder is not thread-safe: its owner locks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TranscriptItem", "TranscriptFolder", "SPEECH_STARTED", "SPEECH_STOPPED",
           "COMMITTED", "DELTA", "COMPLETED", "FAILED"]

SPEECH_STARTED = "input_audio_buffer.speech_started"
SPEECH_STOPPED = "input_audio_buffer.speech_stopped"
COMMITTED = "input_audio_buffer.committed"
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"
_STUB_DELTA = "transcription.delta"
_STUB_COMPLETED = "transcription.completed"


@dataclass
class TranscriptItem:
    """One transcribed turn: its text as it grew and the times that delimit it.

    ``t_*`` are arrival times (s, the trace's or the replay's clock); ``audio_start_ms`` /
    ``audio_end_ms`` are the server's positions in the audio stream (``speech_started`` /
    ``speech_stopped``).  ``item_id`` is None for an anonymous item (see the folder).
    """

    instance: str
    fd: int
    item_id: str | None
    seq: int
    previous_item_id: str | None = None
    deltas: list[tuple[float, str]] = field(default_factory=list)
    transcript: str | None = None
    audio_start_ms: int | float | None = None
    audio_end_ms: int | float | None = None
    t_speech_started: float | None = None
    t_speech_stopped: float | None = None
    t_committed: float | None = None
    t_completed: float | None = None
    failed: str | None = None
    #: Characters held in ``deltas`` (bounded by ``TraceCaps.item_text``).
    _text_len: int = field(default=0, repr=False, compare=False)

    @property
    def text(self) -> str:
        """The completed transcript, or the deltas so far."""
        if self.transcript is not None:
            return self.transcript
        return "".join(d for _, d in self.deltas)

    @property
    def final(self) -> bool:
        """True once ``completed`` (or ``failed``) arrived."""
        return self.transcript is not None or self.failed is not None

    @property
    def t_first(self) -> float | None:
        """When anything about this item was first seen."""
        times = [t for t in (self.t_speech_started, self.t_speech_stopped, self.t_committed,
                             self.deltas[0][0] if self.deltas else None, self.t_completed)
                 if t is not None]
        return min(times) if times else None

    def copy(self) -> "TranscriptItem":
        """A copy safe to keep (its own ``deltas`` list)."""
        return TranscriptItem(**{**self.__dict__, "deltas": list(self.deltas)})

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance, "fd": self.fd, "item_id": self.item_id, "seq": self.seq,
            "previous_item_id": self.previous_item_id, "text": self.text, "final": self.final,
            "deltas": len(self.deltas), "audio_start_ms": self.audio_start_ms,
            "audio_end_ms": self.audio_end_ms, "t_speech_started": self.t_speech_started,
            "t_speech_stopped": self.t_speech_stopped, "t_committed": self.t_committed,
            "t_first_delta": self.deltas[0][0] if self.deltas else None,
            "t_completed": self.t_completed, "failed": self.failed,
        }


def _ms(value: Any) -> int | float | None:
    """An audio position as given (int or float, never bool), else None."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class TranscriptFolder:
    """Fold parsed transcription events into :class:`TranscriptItem` (module docstring).

    Limits (None: unbounded): ``max_items`` items (the oldest go first), ``deltas_per_item``
    delta records per item (later ones still grow the last record), ``item_text``
    characters of text per item, ``max_fds`` fds remembered for stub item numbering.
    What is not kept is counted in ``evicted`` (keys ``transcript``, ``delta``, ``fd``;
    pass a dict to share counters with an owner).  ``anonymous``: an event whose
    ``item_id`` is missing or empty makes an item of its own (else it is ignored).
    """

    def __init__(self, *, max_items: int | None = None, deltas_per_item: int | None = None,
                 item_text: int | None = None, max_fds: int | None = None,
                 anonymous: bool = False, evicted: dict[str, int] | None = None) -> None:
        self.max_items = max_items
        self.deltas_per_item = deltas_per_item
        self.item_text = item_text
        self.max_fds = max_fds
        self.anonymous = anonymous
        self.evicted = evicted if evicted is not None else {"transcript": 0, "delta": 0, "fd": 0}
        self.items: dict[tuple, TranscriptItem] = {}
        self._stub_next: dict[tuple[str, int], int] = {}
        self._seq = 0

    def clear(self) -> None:
        """Forget every item (the counters are the owner's to reset)."""
        self.items.clear()
        self._stub_next.clear()

    def transcript(self, instance: str | None = None) -> list[TranscriptItem]:
        """Copies of the items (of ``instance``), in order of first appearance."""
        items = [i.copy() for i in self.items.values() if instance is None or i.instance == instance]
        return sorted(items, key=lambda i: i.seq)

    def feed(self, t: float, obj: dict, instance: str = "", fd: int = 0) -> TranscriptItem | None:
        """Fold one parsed event that arrived at ``t``; the item it changed, or None when
        the event is not about a transcript item."""
        etype = obj.get("type")
        if not isinstance(etype, str):
            return None
        if etype in (_STUB_DELTA, _STUB_COMPLETED):
            return self._stub(t, obj, etype, instance, fd)
        if etype not in _HANDLERS:
            return None
        item_id = obj.get("item_id")
        if isinstance(item_id, str) and (item_id or not self.anonymous):
            item = self._item((instance, fd, item_id), instance, fd, item_id)
        elif self.anonymous:
            item = self._item((instance, fd, self._seq + 1), instance, fd, None)
        else:
            return None
        _HANDLERS[etype](self, item, t, obj)
        return item

    # -- the events -----------------------------------------------------------------------

    def _speech_started(self, item: TranscriptItem, t: float, obj: dict) -> None:
        item.t_speech_started = t
        item.audio_start_ms = _ms(obj.get("audio_start_ms"))

    def _speech_stopped(self, item: TranscriptItem, t: float, obj: dict) -> None:
        item.t_speech_stopped = t
        item.audio_end_ms = _ms(obj.get("audio_end_ms"))

    def _committed(self, item: TranscriptItem, t: float, obj: dict) -> None:
        item.t_committed = t
        prev = obj.get("previous_item_id")
        item.previous_item_id = prev if isinstance(prev, str) else None

    def _delta(self, item: TranscriptItem, t: float, obj: dict) -> None:
        delta = obj.get("delta")
        self._add_delta(item, t, delta if isinstance(delta, str) else "")

    def _completed(self, item: TranscriptItem, t: float, obj: dict) -> None:
        tr = obj.get("transcript")
        item.transcript = self._cut(tr) if isinstance(tr, str) else ""
        item.t_completed = t

    def _failed(self, item: TranscriptItem, t: float, obj: dict) -> None:
        err = obj.get("error")
        item.failed = self._cut(str(err.get("message") if isinstance(err, dict) else err))
        item.t_completed = t

    def _stub(self, t: float, obj: dict, etype: str, instance: str, fd: int) -> TranscriptItem:
        """The stub's events: no item ids, one item per ``completed``."""
        n = self._stub_next.get((instance, fd), 0)
        item = self._item((instance, fd, f"stub-{n}"), instance, fd, f"stub-{n}")
        text = obj.get("text") if isinstance(obj.get("text"), str) else ""
        if etype == _STUB_DELTA:
            self._add_delta(item, t, text)
        else:
            item.transcript = self._cut(text)
            item.t_completed = t
            key = (instance, fd)
            if (key not in self._stub_next and self.max_fds is not None
                    and len(self._stub_next) >= self.max_fds):
                del self._stub_next[next(iter(self._stub_next))]
                self.evicted["fd"] += 1
            self._stub_next[key] = n + 1
        return item

    # -- bounds ---------------------------------------------------------------------------

    def _item(self, key: tuple, instance: str, fd: int, item_id: str | None) -> TranscriptItem:
        """The item under ``key``, made (and the oldest evicted) on first sight."""
        item = self.items.get(key)
        if item is None:
            if self.max_items is not None and len(self.items) >= self.max_items:
                del self.items[next(iter(self.items))]
                self.evicted["transcript"] += 1
            self._seq += 1
            item = self.items[key] = TranscriptItem(instance, fd, item_id, self._seq)
        return item

    def _cut(self, text: str) -> str:
        """``text`` cut to ``item_text`` characters."""
        cap = self.item_text
        return text if cap is None or len(text) <= cap else text[:cap]

    def _add_delta(self, item: TranscriptItem, t: float, text: str) -> None:
        """Append a delta within the item's limits; what does not fit is counted in
        ``evicted["delta"]``."""
        cap_text = self.item_text
        if self.deltas_per_item is not None and len(item.deltas) >= self.deltas_per_item:
            self.evicted["delta"] += 1
            if not item.deltas or (cap_text is not None
                                   and len(item.deltas[-1][1]) + len(text) > cap_text):
                return
            t_last, last = item.deltas[-1]  # keep the text growing in the last record
            item.deltas[-1] = (t_last, last + text)
            return
        if cap_text is None:
            item.deltas.append((t, text))
            item._text_len += len(text)
            return
        room = cap_text - item._text_len
        if room <= 0:
            self.evicted["delta"] += 1
            return
        piece = text if len(text) <= room else text[:room]
        item.deltas.append((t, piece))
        item._text_len += len(piece)


_HANDLERS = {
    SPEECH_STARTED: TranscriptFolder._speech_started,
    SPEECH_STOPPED: TranscriptFolder._speech_stopped,
    COMMITTED: TranscriptFolder._committed,
    DELTA: TranscriptFolder._delta,
    COMPLETED: TranscriptFolder._completed,
    FAILED: TranscriptFolder._failed,
}
