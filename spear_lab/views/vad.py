"""The VAD view: what the server's voice activity detection saw and decided, on one axis.

Top to bottom, in audio seconds (the position in the audio sent, as the server counts):

- the waveform, with each turn shaded: its prefix padding (light), the speech (green), the
  silence waited before the turn closed (grey);
- the speech probability of every frame (the embedded server's ``spear.vad.probabilities``
  events, kept by the Trace as ``vad`` records) with the threshold line;
- ``speech_started`` (green) and ``speech_stopped`` (red) lines, each commit (▼; for a
  Trace, when it reached the client, mapped to audio time through the guest's mic reads)
  and the completed transcript (★, when it arrived), and the
  transcript's words placed in the speech of their turn (spread by length: the server
  sends no word times).

:func:`vad_figure` draws one run, :func:`vad_compare_figure` several (two settings over the
same audio), :class:`VadView` either, live.  A run without probabilities (another backend,
the stub) is drawn with what it has and says so in its title.
"""

from __future__ import annotations

import os
import re
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import style
from ._refresh import LiveView, Refresher
from .figure import Figure, png_img_html
from .segments import _envelope

__all__ = ["Turn", "VadData", "VadView", "load_audio", "vad_compare_figure", "vad_data", "vad_figure"]

_SESSION_TYPES = ("session.updated", "transcription_session.updated", "session.created",
                  "transcription_session.created")
_NUM = {"threshold": r'"threshold":\s*([0-9.]+)', "prefix_padding_ms": r'"prefix_padding_ms":\s*([0-9]+)',
        "silence_ms": r'"silence_duration_ms":\s*([0-9]+)'}
_SPEECH, _PAD, _WAIT = "#2ca02c", "#98df8a", "#c7c7c7"


@dataclass
class Turn:
    """One server turn in audio seconds: ``start`` (``speech_started``'s audio_start_ms,
    padding included), ``speech`` (where speech was detected: start + padding), ``end``
    (``speech_stopped``'s audio_end_ms, silence included), ``commit`` / ``completed`` (when
    they reached the client, mapped to audio time), ``text`` and ``words``
    (``(word, start, end)``)."""

    item_id: str
    start: float | None
    speech: float | None
    end: float | None
    speech_end: float | None
    commit: float | None
    completed: float | None
    text: str
    words: list[tuple[str, float, float]] = field(default_factory=list)


@dataclass
class VadData:
    """What :func:`vad_figure` draws for one instance (times in audio seconds)."""

    instance: str
    times: np.ndarray  # frame starts (s)
    frame_s: float
    probability: np.ndarray
    threshold: float
    prefix_padding_ms: int | None
    silence_ms: int | None
    turns: list[Turn]
    #: Trace time of audio position 0 (from the first mic read), or None.
    offset: float | None
    #: Where the threshold came from: "argument", "session" (the server's echo) or "default".
    threshold_from: str = "default"

    @property
    def has_probabilities(self) -> bool:
        return len(self.probability) > 0


def load_audio(audio: Any, rate: int | None = None) -> tuple[np.ndarray, int]:
    """``(samples, rate)`` of ``audio``: a WAV path, an array (with ``rate``), or an object
    with ``.pcm`` and ``.rate`` (a Recording) or ``.path`` (``spear_lab.demo_speech()``).
    The first channel of a multi-channel WAV.  ValueError / FileNotFoundError otherwise."""
    if hasattr(audio, "pcm") and hasattr(audio, "rate"):
        return np.asarray(audio.pcm), int(audio.rate)
    if hasattr(audio, "path") and not isinstance(audio, (str, os.PathLike)):
        audio = audio.path
    if isinstance(audio, (str, os.PathLike)):
        with wave.open(os.fspath(audio), "rb") as w:
            if w.getsampwidth() != 2:
                raise ValueError(f"{audio}: only 16-bit PCM WAV is supported, not {8 * w.getsampwidth()}-bit")
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            return data[::w.getnchannels()].copy(), w.getframerate()
    if isinstance(audio, np.ndarray):
        if rate is None or rate <= 0:
            raise ValueError("an audio array needs its sample rate: rate=24000 (Hz)")
        return audio.reshape(-1), int(rate)
    raise ValueError(f"audio must be a WAV path, an array with rate=, or a recording, "
                     f"not {type(audio).__name__}")


def _session_settings(trace: Any, instance: str) -> dict[str, float]:
    """threshold / prefix_padding_ms / silence_ms from the server's last session echo."""
    for ev in reversed(trace.events(instance)):
        if ev["type"] in _SESSION_TYPES:
            out = {}
            for key, pattern in _NUM.items():
                m = re.search(pattern, ev["text"])
                if m:
                    out[key] = float(m.group(1))
            if out:
                return out
    return {}


def _offset(trace: Any, instance: str, frames: list[dict]) -> float | None:
    """Trace time at which audio position 0 was captured.

    From the guest's successful ``mic_read`` calls (pcm16 mono 24 kHz, the rtasr format:
    48 000 bytes a second): the audio up to the end of read k existed when read k returned,
    so the offset is at most ``return_k - audio_k``; the smallest bound is taken.  Without
    mic reads, the same bound from the VAD frames' arrival (looser: frames come batched).
    """
    reads = trace.hostcalls(instance, "mic_read", where=lambda r: r["rc"] > 0)
    if reads:
        ends = np.cumsum([r["rc"] for r in reads]) / 48000.0
        back = np.array([r["t"] + r["dur"] for r in reads])
        return float(np.min(back - ends))
    if frames:
        return min(f["t"] - (f["audio_ms"] + f["frame_ms"]) / 1000.0 for f in frames)
    return None


def _spread(text: str, a: float, b: float) -> list[tuple[str, float, float]]:
    """The words of ``text`` laid over ``a``…``b`` in proportion to their length."""
    words = text.split()
    if not words or b <= a:
        return []
    weights = np.array([len(w) + 1 for w in words], dtype=float)
    edges = a + (b - a) * np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum()
    return [(w, float(edges[i]), float(edges[i + 1])) for i, w in enumerate(words)]


def vad_data(trace: Any, instance: str, *, threshold: float | None = None,
             fd: int | None = None) -> VadData:
    """Collect what the VAD view of ``instance`` draws (see :class:`VadData`)."""
    frames = trace.vad(instance, fd)
    settings = _session_settings(trace, instance)
    if threshold is not None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a probability (0..1), not {threshold}")
        thr, origin = float(threshold), "argument"
    elif "threshold" in settings:
        thr, origin = settings["threshold"], "session"
    else:
        thr, origin = 0.5, "default"
    pad = int(settings["prefix_padding_ms"]) if "prefix_padding_ms" in settings else None
    sil = int(settings["silence_ms"]) if "silence_ms" in settings else None
    offset = _offset(trace, instance, frames)

    def audio_s(t: float | None) -> float | None:
        return None if t is None or offset is None else t - offset

    turns = []
    for item in trace.transcript(instance):
        if fd is not None and item.fd != fd:
            continue
        start = item.audio_start_ms / 1000.0 if item.audio_start_ms is not None else None
        end = item.audio_end_ms / 1000.0 if item.audio_end_ms is not None else None
        speech = start + pad / 1000.0 if start is not None and pad is not None else start
        speech_end = end - sil / 1000.0 if end is not None and sil is not None else end
        if speech is not None and speech_end is not None and speech_end < speech:
            speech_end = speech
        words = _spread(item.text, speech, speech_end) if speech is not None and speech_end is not None else []
        turns.append(Turn(item.item_id, start, speech, end, speech_end, audio_s(item.t_committed),
                          audio_s(item.t_completed), item.text, words))
    times = np.array([f["audio_ms"] / 1000.0 for f in frames])
    probs = np.array([f["probability"] for f in frames])
    frame_s = frames[0]["frame_ms"] / 1000.0 if frames else 0.0
    return VadData(instance, times, frame_s, probs, thr, pad, sil, turns, offset, origin)


# -- drawing ------------------------------------------------------------------------------

def _shade_turns(ax: Any, data: VadData) -> None:
    for t in data.turns:
        if t.start is None:
            continue
        speech = t.speech if t.speech is not None else t.start
        ax.axvspan(t.start, speech, color=_PAD, alpha=0.5, linewidth=0)
        if t.speech_end is not None:
            ax.axvspan(speech, t.speech_end, color=_SPEECH, alpha=0.18, linewidth=0)
            if t.end is not None and t.end > t.speech_end:
                ax.axvspan(t.speech_end, t.end, color=_WAIT, alpha=0.45, linewidth=0)


def _boundaries(ax: Any, data: VadData, label: bool) -> None:
    for i, t in enumerate(data.turns):
        if t.start is not None:
            ax.axvline(t.start, color=_SPEECH, linewidth=1.6,
                       label="speech_started" if label and i == 0 else None)
        if t.end is not None:
            ax.axvline(t.end, color=style.BIT_COLORS["ERR"], linewidth=1.6,
                       label="speech_stopped" if label and i == 0 else None)


def _draw_probability(ax: Any, data: VadData, colour: str) -> None:
    if data.has_probabilities:
        x = np.append(data.times, data.times[-1] + data.frame_s)
        y = np.append(data.probability, data.probability[-1])
        ax.step(x, y, where="post", color=colour, linewidth=1.6, label="speech probability")
        ax.fill_between(x, data.threshold, y, where=y >= data.threshold, step="post",
                        color=colour, alpha=0.25, linewidth=0)
    else:
        ax.text(0.5, 0.5, "no per-frame probabilities in this run", transform=ax.transAxes,
                ha="center", va="center", color=style.MUTED)
    ax.axhline(data.threshold, color="#444444", linestyle="--", linewidth=1.3,
               label=f"threshold {data.threshold:g}")
    ax.set_ylim(-0.03, 1.05)
    ax.set_yticks([0, 0.5, 1])
    ax.set_ylabel("p(speech)")
    ax.grid(axis="x", alpha=0.35)


def _draw_words(ax: Any, data: VadData, label: bool) -> None:
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    for i, t in enumerate(data.turns):
        for k, (word, a, b) in enumerate(t.words):
            ax.text((a + b) / 2, (0.7, 0.45, 0.2)[k % 3], word, ha="center", va="center",
                    fontsize=style.SMALL - 1, clip_on=True)
        if t.commit is not None:
            ax.plot([t.commit], [0.93], "v", color="#1f1f1f", markersize=8,
                    label="commit" if label and i == 0 else None)
        if t.completed is not None:
            ax.plot([t.completed], [0.93], "*", color=style.CYCLE[1], markersize=11,
                    label="text complete (arrival)" if label and i == 0 else None)
    ax.set_ylabel("words", rotation=0, ha="right", va="center")


def _title(data: VadData, label: str | None = None) -> str:
    parts = [f"threshold {data.threshold:g}" + (" (assumed)" if data.threshold_from == "default" else "")]
    if data.prefix_padding_ms is not None:
        parts.append(f"prefix padding {data.prefix_padding_ms} ms")
    if data.silence_ms is not None:
        parts.append(f"silence {data.silence_ms} ms")
    parts.append(f"{len(data.turns)} turns")
    head = f"{label or data.instance}: " + ", ".join(parts)
    if not data.has_probabilities:
        head += ("\nno speech probabilities in this run (only the embedded server sends them,"
                 " as spear.vad.probabilities events)")
    return head


def _end(datas: Sequence[VadData], pcm: np.ndarray | None, rate: int) -> float:
    ends = [len(pcm) / rate] if pcm is not None else []
    for d in datas:
        if d.has_probabilities:
            ends.append(float(d.times[-1] + d.frame_s))
        ends += [x for t in d.turns for x in (t.end, t.completed) if x is not None]
    return max(ends) if ends else 1.0


def vad_compare_figure(runs: Sequence[Any], *, audio: Any = None, rate: int | None = None,
                       threshold: float | None = None, labels: Sequence[str] | None = None,
                       width: float = 12.0, title: str | None = None) -> Figure:
    """Several runs over the same audio, one under the other on one time axis: the
    waveform once, then per run its probability panel and its events-and-words strip.

    ``runs``: ``(trace, instance)`` pairs (two instances of one Session, or two Sessions),
    or :class:`VadData` made elsewhere (``explore.plot_vad`` makes them from sweep runs).
    ``labels`` name the rows (default: the instance names).  ``fig.data`` holds the
    :class:`VadData` of each run.
    """
    items = list(runs)
    if not items or not all(isinstance(r, VadData) or (isinstance(r, Sequence) and len(r) == 2)
                            for r in items):
        raise ValueError("runs must be a non-empty list of (trace, instance) pairs or VadData")
    if labels is not None and len(labels) != len(items):
        raise ValueError(f"{len(labels)} labels for {len(items)} runs")
    datas = [r if isinstance(r, VadData) else vad_data(r[0], r[1], threshold=threshold) for r in items]
    pcm, sr = load_audio(audio, rate) if audio is not None else (None, rate or 24000)
    ratios = ([1.1] if pcm is not None else []) + [1.5, 0.8] * len(datas)
    with style.context():
        fig = Figure(figsize=(width, 0.9 + 1.15 * sum(ratios)), layout="constrained",
                     kind="VAD view")
        axes = list(fig.subplots(len(ratios), 1, sharex=True, height_ratios=ratios, squeeze=False)[:, 0])
        if pcm is not None:
            ax_w = axes.pop(0)
            _envelope(ax_w, pcm, sr)
            ax_w.set_yticks([])
            ax_w.set_ylabel("audio")
            if len(datas) == 1:
                _shade_turns(ax_w, datas[0])
                _boundaries(ax_w, datas[0], label=False)
        for k, data in enumerate(datas):
            ax_p, ax_t = axes[2 * k], axes[2 * k + 1]
            colour = style.CYCLE[k % len(style.CYCLE)]
            _shade_turns(ax_p, data)
            _draw_probability(ax_p, data, colour)
            _boundaries(ax_p, data, label=True)
            _draw_words(ax_t, data, label=True)
            _boundaries(ax_t, data, label=False)
            name = labels[k] if labels is not None else None
            ax_p.set_title(_title(data, name), loc="left", fontsize=style.FONT)
            handles, names = [], []
            for ax in (ax_p, ax_t):
                h, n = ax.get_legend_handles_labels()
                handles += h
                names += n
            ax_p.legend(handles, names, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=style.SMALL - 1)
        for ax in fig.axes[:-1]:
            ax.tick_params(labelbottom=False)
        fig.axes[-1].set_xlabel("audio time (s)")
        fig.axes[-1].set_xlim(0, _end(datas, pcm, sr))
        if title:
            fig.suptitle(title)
    fig.data = datas  # type: ignore[attr-defined]
    return fig


def vad_figure(trace: Any, instance: str, *, audio: Any = None, rate: int | None = None,
               threshold: float | None = None, width: float = 12.0,
               title: str | None = None) -> Figure:
    """The VAD view of one run (see the module docstring).

    ``audio``: what the guest sent (a WAV path, an array with ``rate``, a Recording, or
    ``spear_lab.demo_speech()``), drawn as the waveform; ``threshold`` overrides the one
    the server echoed in ``session.updated``.  ``fig.data`` is ``[VadData]``.
    """
    return vad_compare_figure([(trace, instance)], audio=audio, rate=rate, threshold=threshold,
                              width=width, title=title)


class VadView(LiveView):
    """The VAD view, live: a PNG re-rendered (throttled) as the run goes.

    ``instances``: one name, or several for the side-by-side form.  Set ``audio`` to fix
    the time axis to the whole recording (the picture fills in from the left).
    """

    def __init__(self, trace: Any, instances: str | Sequence[str], *, audio: Any = None,
                 rate: int | None = None, threshold: float | None = None, live: bool = True,
                 max_rate: float = 2.0, width: float = 12.0) -> None:
        import ipywidgets as widgets

        self.trace = trace
        self.instances = [instances] if isinstance(instances, str) else list(instances)
        if not self.instances:
            raise ValueError("VadView needs at least one instance name")
        self.audio = load_audio(audio, rate) if audio is not None else None
        self.threshold = threshold
        self.width = width
        self.widget = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.data: list[VadData] = []
        self.renders = 0
        self.refresh()
        self.refresher = Refresher(trace, self, max_rate).start() if live else None

    def figure(self) -> Figure:
        """The figure as it would be drawn now."""
        audio, rate = (self.audio if self.audio is not None else (None, None))
        return vad_compare_figure([(self.trace, i) for i in self.instances], audio=audio, rate=rate,
                                  threshold=self.threshold, width=self.width)

    def refresh(self) -> None:
        fig = self.figure()
        self.data = fig.data  # type: ignore[attr-defined]
        self.widget.value = fig.to_png(80)
        self.renders += 1

    def snapshot_html(self) -> str:
        """The picture shown now, as a static ``<img>``."""
        return png_img_html(self.widget.value, alt="VAD view")
