"""Turn segmentation: speech probabilities per frame -> speech start / stop.

Sans-I/O and clock-free: positions are milliseconds of audio, so audio replayed
faster than real time segments exactly like live audio. The frame geometry comes
from the estimator (``frame_ms`` hop, ``lookahead_ms`` by which a frame's window
reaches past its hop): frame ``i`` looks at audio up to ``F i + F + L`` ms and
stands for the ``F`` ms that end there, ``[F i + L, F i + F + L)``, so a decision
is due as soon as its audio has arrived (no waiting for the next chunk). The
statistical VAD has F = 10, L = 15; Silero F = 32, L = 0.

Rules (server_vad):

* speech starts at the first frame whose probability is >= ``threshold``; the
  reported ``audio_start_ms`` is that frame's start minus ``prefix_padding_ms``
  (not before the start of the buffer the caller passes as ``floor_ms``);
* speech stops once ``end_wait_ms`` of audio has passed since the end of the last
  frame >= ``threshold``; the reported ``audio_end_ms`` is that moment, i.e. it
  includes the silence, as OpenAI's does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .vad import FRAME_MS, LOOKAHEAD_MS

__all__ = ["SpeechStart", "SpeechStop", "TurnDetector"]


@dataclass(frozen=True)
class SpeechStart:
    """Speech began. ``speech_ms``: first speech frame; ``audio_start_ms``: with padding."""

    speech_ms: int
    audio_start_ms: int


@dataclass(frozen=True)
class SpeechStop:
    """Speech ended. ``last_speech_ms``: end of the last speech frame;
    ``audio_end_ms``: ``last_speech_ms`` plus the silence waited for."""

    last_speech_ms: int
    audio_end_ms: int


class TurnDetector:
    """Segments a stream of frame probabilities into speech turns.

    Feed probabilities with :meth:`feed`; it returns the :class:`SpeechStart` /
    :class:`SpeechStop` events they complete, in order.
    """

    def __init__(self, threshold: float = 0.5, prefix_padding_ms: int = 300,
                 end_wait_ms: int = 500, lookahead_ms: int = LOOKAHEAD_MS,
                 frame_ms: int = FRAME_MS) -> None:
        """``frame_ms``: hop between frames; ``lookahead_ms``: how far a frame's
        analysis window reaches past its hop (10 and 15 ms for
        :class:`~spear_lab.server.vad.SpeechProbability`)."""
        if frame_ms <= 0 or lookahead_ms < 0:
            raise ValueError(f"bad frame geometry: frame_ms={frame_ms}, lookahead_ms={lookahead_ms}")
        self.frame_ms = frame_ms
        self.lookahead_ms = lookahead_ms
        self.threshold = threshold
        self.prefix_padding_ms = prefix_padding_ms
        self.end_wait_ms = end_wait_ms
        self.frame = 0  # index of the next frame to be fed
        self.in_speech = False
        self.last_speech_ms = 0
        self.floor_ms = 0

    @classmethod
    def for_estimator(cls, estimator, **kwargs) -> TurnDetector:
        """A detector with the frame geometry of ``estimator`` (its ``frame_ms`` and
        ``lookahead_ms``); ``kwargs``: threshold, prefix_padding_ms, end_wait_ms."""
        return cls(lookahead_ms=estimator.lookahead_ms, frame_ms=estimator.frame_ms, **kwargs)

    def frame_start_ms(self, index: int) -> int:
        """Start (ms) of the audio that frame ``index`` stands for."""
        return index * self.frame_ms + self.lookahead_ms

    def reset(self, floor_ms: int | None = None) -> None:
        """Forget any speech in progress; padding will not reach before ``floor_ms``."""
        self.in_speech = False
        if floor_ms is not None:
            self.floor_ms = floor_ms

    def skip(self, n: int) -> None:
        """Advance over ``n`` frames without segmenting them (turn detection off)."""
        self.frame += n
        self.in_speech = False

    def feed(self, probs) -> list[SpeechStart | SpeechStop]:
        """Consume frame probabilities (iterable of floats in [0, 1])."""
        events: list[SpeechStart | SpeechStop] = []
        for p in probs:
            start_ms = self.frame * self.frame_ms + self.lookahead_ms
            self.frame += 1
            end_ms = start_ms + self.frame_ms
            if p >= self.threshold:
                if not self.in_speech:
                    self.in_speech = True
                    events.append(SpeechStart(
                        start_ms, max(self.floor_ms, start_ms - self.prefix_padding_ms)))
                self.last_speech_ms = end_ms
            elif self.in_speech and end_ms - self.last_speech_ms >= self.end_wait_ms:
                self.in_speech = False
                events.append(SpeechStop(self.last_speech_ms, end_ms))
        return events

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio segmented so far."""
        return self.frame * self.frame_ms + self.lookahead_ms
