"""Per-model behaviour profiles and transcript helpers (deltas, logprobs, usage).

Profiles reproduce what users observe from OpenAI (as observed from the service):

===========================  ===============  ==========
model                        deltas           usage
===========================  ===============  ==========
``gpt-4o-transcribe`` etc.   after commit     tokens
``gpt-realtime-whisper``,    live, while      tokens
``gpt-live-transcribe``      speech goes on
``whisper-1``                one, at the end  duration
other names                  after commit     tokens
===========================  ===============  ==========

Approximations (documented in docs/server.md): usage tokens are estimated (10
audio tokens per second, text tokens ~ characters/4); logprobs are per word, from
the recogniser's word posteriors, one "token" per word.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .engines import Recognition

__all__ = ["Profile", "profile_for", "LiveDeltas", "split_deltas", "usage", "logprobs"]

AFTER_COMMIT, LIVE, SINGLE = "after_commit", "live", "single"


@dataclass(frozen=True)
class Profile:
    """``deltas``: ``after_commit`` | ``live`` | ``single``; ``usage``: ``tokens`` | ``duration``."""

    deltas: str
    usage: str


_PROFILES = {
    "whisper-1": Profile(SINGLE, "duration"),
    "gpt-realtime-whisper": Profile(LIVE, "tokens"),
    "gpt-live-transcribe": Profile(LIVE, "tokens"),
}


def profile_for(model: str | None) -> Profile:
    """The behaviour profile of a transcription model name."""
    return _PROFILES.get(model or "", Profile(AFTER_COMMIT, "tokens"))


def _piece(word: str, first: bool) -> str:
    return word if first else " " + word


def split_deltas(text: str, already: str = "") -> list[str]:
    """Word-sized delta pieces that extend ``already`` to ``text`` (empty list if
    ``text`` does not extend it). Concatenated, ``already`` + pieces == ``text``."""
    if not text.startswith(already):
        return []
    words = text[len(already):].split()
    first = already == ""
    return [_piece(w, first and i == 0) for i, w in enumerate(words)]


class LiveDeltas:
    """Turns a sequence of partial hypotheses into append-only deltas.

    A word is emitted once it is *stable*: present, unchanged, in two consecutive
    partials and not the last word of the newest one. Words already emitted cannot be
    taken back, so :meth:`final` keeps them: the ``completed`` transcript is the
    emitted words followed by the part of the final hypothesis that comes after them
    (found by aligning the two word sequences), and the deltas always concatenate to it.
    """

    def __init__(self) -> None:
        self.emitted = ""
        self._prev: list[str] = []

    def partial(self, text: str) -> list[str]:
        words = text.split()
        stable = []
        for a, b in zip(self._prev, words[:-1]):
            if a != b:
                break
            stable.append(a)
        self._prev = words
        return self._extend(" ".join(stable))

    def final(self, text: str) -> tuple[list[str], str]:
        """The last deltas and the completed transcript they add up to."""
        text = " ".join(text.split())
        pieces = self._extend(text)
        if pieces or self.emitted == text:
            return pieces, text
        done = self.emitted.split()
        tail = text.split()[_aligned_end(done, text.split()):]
        target = " ".join(done + tail)
        return self._extend(target), target

    def _extend(self, target: str) -> list[str]:
        if len(target) <= len(self.emitted):
            return []
        if not (target.startswith(self.emitted) and
                (self.emitted == "" or target[len(self.emitted)] == " ")):
            return []
        pieces = split_deltas(target, self.emitted)
        self.emitted = target
        return pieces


def _plain(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum() or ch == "'")


def _aligned_end(done: list[str], final: list[str]) -> int:
    """Index in ``final`` just after the words that ``done`` already covers."""
    import difflib
    blocks = [b for b in difflib.SequenceMatcher(
        None, [_plain(w) for w in done], [_plain(w) for w in final], autojunk=False
    ).get_matching_blocks() if b.size]
    if not blocks:
        return min(len(done), len(final))
    last = blocks[-1]
    return min(len(final), last.b + last.size + (len(done) - last.a - last.size))


def logprobs(rec: Recognition) -> list[dict]:
    """OpenAI ``logprobs`` entries, one per recognised word."""
    out = []
    for i, w in enumerate(rec.words):
        tok = _piece(w.text, i == 0)
        out.append({"token": tok, "logprob": round(w.logprob, 6), "bytes": list(tok.encode())})
    return out


def usage(kind: str, audio_ms: float, transcript: str, prompt: str | None) -> dict:
    """A ``usage`` object: ``{"type":"duration","seconds":…}`` or token estimates."""
    if kind == "duration":
        return {"type": "duration", "seconds": round(audio_ms / 1000.0, 3)}
    audio_tokens = math.ceil(audio_ms / 100.0)
    text_in = math.ceil(len(prompt or "") / 4)
    out_tokens = math.ceil(len(transcript) / 4)
    return {"type": "tokens", "input_tokens": audio_tokens + text_in,
            "output_tokens": out_tokens, "total_tokens": audio_tokens + text_in + out_tokens,
            "input_token_details": {"text_tokens": text_in, "audio_tokens": audio_tokens}}
