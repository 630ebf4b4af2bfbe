"""The transcript: deltas accumulating per item, completed text finalised, segment times.

Reads the transcript items of a :class:`~spear_lab.trace.Trace` (OpenAI
``conversation.item.input_audio_transcription.*`` by ``item_id`` with the
``input_audio_buffer.*`` times, or the stub's ``transcription.*``).
"""

from __future__ import annotations

import html
from typing import Any

from ._refresh import LiveView, MAX_RATE, Refresher

__all__ = ["TranscriptView", "transcript_html", "transcript_rows"]


def _fmt(t: float | None) -> str:
    return "" if t is None else f"{t:.2f}"


def transcript_rows(trace: Any, instance: str | None = None) -> list[dict[str, Any]]:
    """One dict per item (see :meth:`TranscriptItem.as_dict`), in order."""
    return [i.as_dict() for i in trace.transcript(instance)]


def transcript_html(trace: Any, instance: str | None = None, *, last: int | None = 200) -> str:
    """An HTML table: item, speech (audio ms), committed / first delta / completed (trace
    s), text — final text in bold, growing text in grey italics."""
    rows = transcript_rows(trace, instance)
    if last is not None:
        rows = rows[-last:]
    if not rows:
        return "<i>no transcript yet</i>"
    many = len({r["instance"] for r in rows}) > 1
    head = ("<tr><th>#</th>" + ("<th>guest</th>" if many else "")
            + "<th>item</th><th>speech (audio ms)</th><th>committed</th><th>first delta</th>"
              "<th>completed</th><th>text</th></tr>")
    body = []
    for n, r in enumerate(rows, 1):
        speech = ""
        if r["audio_start_ms"] is not None or r["audio_end_ms"] is not None:
            a = "?" if r["audio_start_ms"] is None else r["audio_start_ms"]
            b = "…" if r["audio_end_ms"] is None else r["audio_end_ms"]
            speech = f"{a}–{b}"
        text = html.escape(r["text"])
        if r["failed"]:
            cell = f"<span style='color:#d62728'>failed: {html.escape(r['failed'])}</span>"
        elif r["final"]:
            cell = f"<b>{text}</b>"
        else:
            cell = f"<i style='color:#7f7f7f'>{text}…</i>"
        body.append(
            f"<tr><td>{n}</td>" + (f"<td>{html.escape(r['instance'])}</td>" if many else "")
            + f"<td><code>{html.escape(r['item_id'])}</code></td><td>{speech}</td>"
            f"<td>{_fmt(r['t_committed'])}</td><td>{_fmt(r['t_first_delta'])}</td>"
            f"<td>{_fmt(r['t_completed'])}</td><td style='text-align:left'>{cell}</td></tr>")
    return f"<table class='spear-transcript'>{head}{''.join(body)}</table>"


class TranscriptView(LiveView):
    """A live transcript (an ipywidgets HTML) for one instance or all."""

    def __init__(self, trace: Any, instance: str | None = None, *, live: bool = True,
                 max_rate: float = MAX_RATE) -> None:
        import ipywidgets as widgets

        self.trace = trace
        self.instance = instance
        self.widget = widgets.HTML()
        self.items: list[dict[str, Any]] = []
        self.refresh()
        self.refresher = Refresher(trace, self, max_rate).start() if live else None

    @property
    def texts(self) -> list[str]:
        """Final texts shown so far."""
        return [r["text"] for r in self.items if r["final"]]

    def refresh(self) -> None:
        self.items = transcript_rows(self.trace, self.instance)
        self.widget.value = transcript_html(self.trace, self.instance)

