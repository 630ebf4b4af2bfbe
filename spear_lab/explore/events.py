"""From the server events of one replay to the segments it produced (sans-I/O).

A replay records every event pushed to the guest's rtasr receive queue with its arrival
time (seconds on the run's clock).  :func:`segments_from_events` folds them (through
:class:`~spear_lab.trace.transcript.TranscriptFolder`, the Trace's own fold) into one
:class:`Segment` per committed item:

- **server VAD** items: ``input_audio_buffer.speech_started`` gives ``audio_start_ms``
  (which *includes* ``prefix_padding_ms``) and ``speech_stopped`` gives ``audio_end_ms``
  (which *includes* the ``silence_duration_ms`` waited for), both in milliseconds of the
  audio written so far — the OpenAI definitions.  The segment covers
  ``[audio_start_ms, audio_end_ms]``; its speech estimate removes the padding and the
  silence again: ``[audio_start_ms + prefix_padding_ms, audio_end_ms - silence_ms]``.
  When the padding was cut short — ``audio_start_ms`` equals the end of the previous
  segment (or 0) — the onset lies somewhere in the padding and half of it is taken.
  It is *closed* when ``speech_stopped`` arrives.
- **commit** items (client commit, manual FLUSH, or a commit that cut server-VAD speech
  short): the cut position is the ``audio_end_ms`` of the ``committed`` event when the
  server gives one, else the position the host observed when the commit was queued
  (``commit_positions_ms``, in queue order; a commit the server refused as empty —
  ``error`` ``input_audio_buffer_commit_empty`` — uses up its position), else the end of
  the audio.  A commit item
  without a ``speech_started`` covers the audio since the previous cut.  It is closed when
  ``committed`` arrives.

Transcripts come from ``…input_audio_transcription.completed`` (``failed`` gives an empty
transcript and the error message).  Items never committed (speech still open when the
run ended) are not segments; :func:`open_speech` reports them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

from ..trace.transcript import (COMMITTED, COMPLETED, DELTA, FAILED, SPEECH_STARTED,
                                SPEECH_STOPPED, TranscriptFolder, TranscriptItem)

__all__ = [
    "Segment", "segments_from_events", "open_speech", "parse_events", "count_type",
    "SPEECH_STARTED", "SPEECH_STOPPED", "COMMITTED", "DELTA", "COMPLETED", "FAILED", "ERROR",
]

ERROR = "error"

#: Event fields dropped when a replay's events are stored (large and not used here).
BULKY_FIELDS = ("logprobs", "obfuscation", "usage")


@dataclass
class Segment:
    """One committed item: the audio it covers and what came back for it.

    Positions are milliseconds of the replayed audio; times (``t_*``) are seconds on the
    run's clock (arrival of the event on the host).
    """

    item_id: str | None
    start_ms: float
    end_ms: float
    speech_start_ms: float
    speech_end_ms: float
    source: str
    t_started: float | None = None
    t_closed: float | None = None
    t_committed: float | None = None
    t_completed: float | None = None
    transcript: str | None = None
    failed: str | None = None

    @property
    def completed(self) -> bool:
        """True once a ``completed`` (or ``failed``) event arrived."""
        return self.t_completed is not None

    @property
    def processing_ms(self) -> float | None:
        """Wall time from closing the segment to its ``completed`` event (ms)."""
        if self.t_completed is None or self.t_closed is None:
            return None
        return (self.t_completed - self.t_closed) * 1000.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_events(raw: Iterable[tuple[float, bytes | str | dict]]) -> list[tuple[float, dict]]:
    """``(t, event)`` pairs with each event parsed from JSON (non-objects dropped) and
    bulky fields (:data:`BULKY_FIELDS`) removed."""
    out = []
    for t, ev in raw:
        if isinstance(ev, (bytes, bytearray)):
            ev = ev.decode("utf-8", errors="replace")
        if isinstance(ev, str):
            try:
                ev = json.loads(ev)
            except ValueError:
                continue
        if not isinstance(ev, dict):
            continue
        out.append((float(t), {k: v for k, v in ev.items() if k not in BULKY_FIELDS}))
    return out


def count_type(events: Sequence[tuple[float, dict]], etype: str) -> int:
    """How many events of type ``etype``."""
    return sum(1 for _, ev in events if ev.get("type") == etype)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _commit_refused(ev: dict) -> bool:
    """An ``error`` answering a commit of an empty (< 100 ms) buffer."""
    err = ev.get("error")
    return isinstance(err, dict) and err.get("code") == "input_audio_buffer_commit_empty"


#: The events a segment is made of (the transcript folder reads more; deltas are not needed).
_SEGMENT_EVENTS = frozenset({SPEECH_STARTED, SPEECH_STOPPED, COMMITTED, COMPLETED, FAILED})


def _fold(events: Sequence[tuple[float, dict]], commit_positions_ms: Sequence[float],
          audio_ms: float | None) -> list[tuple[TranscriptItem, float | None, str | None]]:
    """The replay's items (the project's transcript folder, events without an item id
    making items of their own), each with the audio position of the commit that cut it
    (None when the server VAD closed it or it was never committed) and its transcript
    (the last ``completed``; ``""`` when a ``failed`` came last; None before either)."""
    folder = TranscriptFolder(anonymous=True)
    commit_ms: dict[int, float | None] = {}
    failed_last: set[int] = set()
    positions = list(commit_positions_ms)
    host_commits = 0
    for t, ev in events:
        etype = ev.get("type")
        if etype in _SEGMENT_EVENTS:
            it = folder.feed(t, ev)
            if etype == COMMITTED and it is not None and it.t_speech_stopped is None:
                pos = _num(ev.get("audio_end_ms"))  # cut by a commit, not by the VAD
                if pos is None and host_commits < len(positions):
                    pos = positions[host_commits]
                if pos is None:
                    pos = audio_ms
                commit_ms[it.seq] = pos
                host_commits += 1
            elif it is not None and etype in (COMPLETED, FAILED):
                (failed_last.add if etype == FAILED else failed_last.discard)(it.seq)
        elif etype == ERROR and _commit_refused(ev):
            host_commits += 1  # that commit made no item: skip its position
    return [(it, commit_ms.get(it.seq), "" if it.seq in failed_last else it.transcript)
            for it in folder.transcript()]


def _onset(start: float | None, floor: float, pad: float) -> float:
    """Speech onset behind an ``audio_start_ms``: ``start + pad``, unless the padding was
    cut short by the end of the previous item (or the start of the audio), when the onset
    lies somewhere in ``[start, start + pad)``: its middle is taken."""
    if start is None:
        return floor
    return start + (pad / 2 if start <= floor + 0.5 else pad)


def segments_from_events(events: Sequence[tuple[float, dict]], *, prefix_padding_ms: float = 0.0,
                         silence_ms: float = 0.0, commit_positions_ms: Sequence[float] = (),
                         audio_ms: float | None = None) -> list[Segment]:
    """The committed segments of one replay, in audio order (see the module docstring).

    ``prefix_padding_ms`` / ``silence_ms`` are the server-VAD settings of the run (used to
    estimate speech onsets and offsets); ``commit_positions_ms`` are the audio positions
    at which the host queued commits; ``audio_ms`` is the length of the replayed audio.
    """
    segs: list[Segment] = []
    prev_cut = 0.0
    for it, commit_ms, transcript in _fold(events, commit_positions_ms, audio_ms):
        if it.t_committed is None and it.t_completed is None:
            continue  # speech never committed
        first, stop = _num(it.audio_start_ms), _num(it.audio_end_ms)
        if stop is not None:  # server VAD closed it
            start = first if first is not None else prev_cut
            end = stop
            onset = _onset(first, prev_cut, prefix_padding_ms)
            seg = Segment(it.item_id, start, end, min(onset, end), max(start, end - silence_ms),
                          "server_vad", it.t_speech_started, it.t_speech_stopped, it.t_committed,
                          it.t_completed, transcript, it.failed)
        else:
            end = commit_ms if commit_ms is not None else (
                audio_ms if audio_ms is not None else prev_cut)
            if first is not None:  # VAD speech cut short by a commit
                start, onset = first, _onset(first, prev_cut, prefix_padding_ms)
            else:
                start = onset = prev_cut
            seg = Segment(it.item_id, start, end, min(onset, end), end, "commit", it.t_speech_started,
                          it.t_committed, it.t_committed, it.t_completed, transcript, it.failed)
        prev_cut = max(prev_cut, seg.end_ms)
        segs.append(seg)
    return sorted(segs, key=lambda s: (s.start_ms, s.end_ms))


def open_speech(events: Sequence[tuple[float, dict]]) -> int:
    """Items whose speech started but that were never committed (cut off at the end)."""
    return sum(1 for it, _, _ in _fold(events, (), None)
               if it.t_speech_started is not None and it.t_committed is None and it.t_completed is None)
