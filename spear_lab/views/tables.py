"""One place for the look of every HTML table and note the views draw.

Sizes read on a projector: table text :data:`FONT_PX` (14 px), transcript text
:data:`TEXT_PX` (18 px).  Every cell is padded so that neighbouring values never run
together, numbers are right-aligned in tabular figures and never wrap, and everything is
inline-styled (no ``<style>`` element), so the same HTML looks the same in a live
widget, in JupyterLab's static output, on nbviewer and in an exported page.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__ = [
    "ERROR", "FONT_PX", "MUTED", "NEUTRAL", "TEXT_PX",
    "block", "cell_style", "note", "scroll_box", "table_html",
]

#: Table body text and transcript text (CSS pixels).
FONT_PX, TEXT_PX = 14, 18
#: Real errors; expected "nothing now" answers (-EAGAIN); secondary text.
ERROR, NEUTRAL, MUTED = "#c62828", "#8a6d00", "#6f6f6f"

_FONT = "font-family:system-ui,-apple-system,Segoe UI,Roboto,DejaVu Sans,sans-serif"
TABLE = f"border-collapse:collapse;font-size:{FONT_PX}px;line-height:1.35;{_FONT};margin:4px 0 8px 0"
TH = ("padding:4px 12px;text-align:left;white-space:nowrap;border-bottom:2px solid #9e9e9e;"
      "background:#f3f3f3;position:sticky;top:0")
TD = "padding:3px 12px;text-align:left;vertical-align:top;border-bottom:1px solid #e0e0e0"
NUM = "text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums"
CAPTION = f"text-align:left;font-weight:bold;font-size:{FONT_PX + 1}px;padding:2px 0 4px 0"


def cell_style(numeric: bool = False, nowrap: bool = False) -> str:
    """The inline style of one body cell."""
    return TD + (";" + NUM if numeric else "") + (";white-space:nowrap" if nowrap and not numeric else "")


def table_html(head: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "", *,
               numeric: Sequence[int] = (), nowrap: Sequence[int] = (),
               row_styles: Sequence[str] | None = None) -> str:
    """A padded table.  ``head``: plain column titles (escaped here); ``rows``: cells as
    HTML (the caller escapes); ``numeric`` / ``nowrap``: column indexes right-aligned in
    tabular figures / kept on one line; ``row_styles``: an extra inline style per row
    (a colour, say).  ``caption`` is HTML."""
    num, keep = set(numeric), set(nowrap)
    styles = [cell_style(i in num, i in keep) for i in range(len(head))]
    cap = f"<caption style='{CAPTION}'>{caption}</caption>" if caption else ""
    ths = "".join(f"<th style='{TH}{';text-align:right' if i in num else ''}'>{html.escape(h)}</th>"
                  for i, h in enumerate(head))
    body = []
    for n, row in enumerate(rows):
        extra = row_styles[n] if row_styles else ""
        tr = f"<tr style='{extra}'>" if extra else "<tr>"
        body.append(tr + "".join(f"<td style='{styles[min(i, len(styles) - 1)]}'>{c}</td>"
                                 for i, c in enumerate(row)) + "</tr>")
    return (f"<table style='{TABLE}'>{cap}<thead><tr>{ths}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def note(text: str) -> str:
    """A "nothing here yet" line, on its own line (a block), grey italics; ``text`` is
    plain text."""
    return (f"<div style='font-size:{FONT_PX}px;color:{MUTED};font-style:italic;{_FONT};"
            f"line-height:1.4;margin:2px 0 6px 0'>{html.escape(text)}</div>")


def block(inner: str, size_px: int = FONT_PX) -> str:
    """``inner`` HTML in a block of body text."""
    return f"<div style='font-size:{size_px}px;{_FONT};line-height:1.4;margin:2px 0 6px 0'>{inner}</div>"


def scroll_box(inner: str, max_height_px: int = 360) -> str:
    """``inner`` HTML in a box at most ``max_height_px`` high that scrolls."""
    return (f"<div class='spear-scroll' style='display:inline-block;max-width:100%;box-sizing:border-box;"
            f"max-height:{int(max_height_px)}px;overflow:auto;"
            f"border:1px solid #e0e0e0'>{inner}</div>")
