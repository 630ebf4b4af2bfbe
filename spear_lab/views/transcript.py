"""The transcript: deltas accumulating per item, completed text finalised, segment times.

The view shows the running text first — completed items as transcribed, the item in
progress as the deltas received so far (grey italics), so it grows word by word when
the backend sends word deltas while speech goes on (the ``gpt-realtime-whisper`` /
``gpt-live-transcribe`` profiles of the local server); models that send their deltas
after the commit show a whole turn at once, as OpenAI's do.

Reads the transcript items of a :class:`~spear_lab.trace.Trace` (OpenAI
``conversation.item.input_audio_transcription.*`` by ``item_id`` with the
``input_audio_buffer.*`` times, or the stub's ``transcription.*``).
"""

from __future__ import annotations

import html
from typing import Any

from . import tables
from ._refresh import MAX_RATE, LiveView, Refresher

__all__ = ["TranscriptView", "running_text_html", "transcript_html", "transcript_rows"]


def _fmt(t: float | None) -> str:
    return "" if t is None else f"{t:.2f}"


def transcript_rows(trace: Any, instance: str | None = None) -> list[dict[str, Any]]:
    """One dict per item (see :meth:`TranscriptItem.as_dict`), in order."""
    return [i.as_dict() for i in trace.transcript(instance)]


def _speech(r: dict[str, Any]) -> str:
    if r["audio_start_ms"] is None and r["audio_end_ms"] is None:
        return ""
    a = "?" if r["audio_start_ms"] is None else r["audio_start_ms"]
    b = "…" if r["audio_end_ms"] is None else r["audio_end_ms"]
    return f"{a}–{b}"


def _item_id(item_id: str) -> str:
    """An item id shortened to its last 6 characters (the whole id on hover)."""
    short = item_id if len(item_id) <= 8 else "…" + item_id[-6:]
    return f"<code title='{html.escape(item_id)}'>{html.escape(short)}</code>"


def _piece(r: dict[str, Any]) -> str:
    """One item in the running text: final text plain, growing text grey italics."""
    text = html.escape(r["text"])
    if r["failed"]:
        return f"<span style='color:{tables.ERROR}'>[failed: {html.escape(r['failed'])}]</span>"
    if r["final"]:
        return f"<span class='spear-final'>{text}</span>" if text else ""
    return f"<i class='spear-partial' style='color:{tables.MUTED}'>{text}…</i>"


def running_text_html(rows: list[dict[str, Any]]) -> str:
    """The transcript as running text, one paragraph per guest: completed items as they
    were finally transcribed, the item in progress as its deltas so far (grey, growing
    word by word as the deltas arrive)."""
    by_guest: dict[str, list[str]] = {}
    for r in rows:
        piece = _piece(r)
        if piece:
            by_guest.setdefault(r["instance"], []).append(piece)
    many = len(by_guest) > 1
    paras = []
    for guest, pieces in by_guest.items():
        label = f"<b style='color:{tables.MUTED}'>{html.escape(guest)}:</b> " if many else ""
        paras.append(f"<p style='margin:2px 0 6px 0'>{label}{' '.join(pieces)}</p>")
    return f"<div class='spear-running-text' style='font-size:{tables.TEXT_PX}px;line-height:1.45'>" \
           f"{''.join(paras)}</div>"


def transcript_html(trace: Any, instance: str | None = None, *, last: int | None = 200,
                    table: bool = True, max_height_px: int | None = 300) -> str:
    """The running text (see :func:`running_text_html`) and, when ``table``, a table of
    the newest ``last`` items, newest first, in a scroll box: item, speech (audio ms),
    committed / first delta / completed (trace s), deltas, text."""
    rows = transcript_rows(trace, instance)
    if last is not None:
        rows = rows[-last:]
    if not rows:
        return tables.note("no transcript yet")
    out = running_text_html(rows)
    if not table:
        return out
    many = len({r["instance"] for r in rows}) > 1
    head = ["#", *(["guest"] if many else []), "item", "speech (audio ms)", "committed",
            "first delta", "completed", "deltas", "text"]
    cells = []
    for n, r in reversed(list(enumerate(rows, 1))):
        cells.append([str(n), *([html.escape(r["instance"])] if many else []),
                      _item_id(r["item_id"]), _speech(r), _fmt(r["t_committed"]),
                      _fmt(r["t_first_delta"]), _fmt(r["t_completed"]), str(r["deltas"]),
                      f"<span style='display:inline-block;min-width:22em'>{_piece(r)}</span>"])
    k = 1 if many else 0
    grid = tables.table_html(head, cells, numeric=[0, 3 + k, 4 + k, 5 + k, 6 + k],
                             nowrap=[1, 2, 3] if many else [1, 2])
    grid = grid.replace("<table ", "<table class='spear-transcript' ", 1)
    return out + (tables.scroll_box(grid, max_height_px) if max_height_px else grid)


class TranscriptView(LiveView):
    """A live transcript (an ipywidgets HTML) for one instance or all: the running text
    (the item in progress growing word by word, grey) over a table of the items
    (``table=False``: the text only)."""

    def __init__(self, trace: Any, instance: str | None = None, *, live: bool = True,
                 max_rate: float = MAX_RATE, table: bool = True) -> None:
        import ipywidgets as widgets

        self.trace = trace
        self.instance = instance
        self.table = table
        self.widget = widgets.HTML()
        self.items: list[dict[str, Any]] = []
        self.refresh()
        self.refresher = Refresher(trace, self, max_rate).start() if live else None

    @property
    def texts(self) -> list[str]:
        """Final texts shown so far."""
        return [r["text"] for r in self.items if r["final"]]

    @property
    def partial(self) -> str | None:
        """The growing text of the newest item still in progress (None when every item
        shown is final)."""
        growing = [r["text"] for r in self.items if not r["final"]]
        return growing[-1] if growing else None

    def refresh(self) -> None:
        self.items = transcript_rows(self.trace, self.instance)
        self.widget.value = transcript_html(self.trace, self.instance, table=self.table)

    def snapshot_html(self) -> str:
        """The running text and the item table, as shown."""
        return f"<div class='spear-transcript-view'>{self.widget.value}</div>"

