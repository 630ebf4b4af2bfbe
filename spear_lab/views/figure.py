"""A matplotlib Figure that shows itself in any kernel and saves by file suffix.

Every figure function of :mod:`spear_lab.views` and :mod:`spear_lab.explore` returns a
:class:`Figure`: a plain ``matplotlib.figure.Figure`` (so ``fig.axes``, ``fig.savefig``
and the data attributes the functions attach, such as ``fig.lanes``, work as before)
that

- renders as a picture in Jupyter with no ``%matplotlib`` magic (``_repr_png_``, and
  ``_repr_html_`` as an ``<img>`` with the PNG inline, so the saved notebook shows it
  anywhere), and never as ``<Figure size 1000x344 with 1 Axes>``;
- is not registered with pyplot, so the inline backend does not show it a second time;
- saves with :meth:`Figure.save` to ``.png``, ``.svg`` or ``.html`` (a standalone page).
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure as _MplFigure

from . import style

__all__ = ["SUFFIXES", "Figure", "png_img_html"]

#: The suffixes :meth:`Figure.save` writes.
SUFFIXES = (".png", ".svg", ".html")


def png_img_html(png: bytes, alt: str = "figure", max_width: str = "100%") -> str:
    """An ``<img>`` element showing ``png`` (inline, base64)."""
    data = base64.b64encode(png).decode("ascii")
    return (f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}" '
            f'style="max-width:{max_width};height:auto"/>')


class Figure(_MplFigure):
    """A matplotlib Figure with rich reprs and :meth:`save` (see the module docstring).

    ``kind`` names what it shows (used in its repr and as the image's alt text).
    """

    def __init__(self, *args: Any, kind: str = "figure", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self._png: tuple[int, bytes] | None = None

    # -- rendering ----------------------------------------------------------------------

    def to_png(self, dpi: int | None = None) -> bytes:
        """The figure as PNG bytes (``dpi`` default :data:`style.DPI`); cached until the
        figure changes."""
        dpi = int(dpi or style.DPI)
        cached = self._png
        if cached is not None and cached[0] == dpi and not self.stale:
            return cached[1]
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=dpi, facecolor="white")
        png = buf.getvalue()
        self._png = (dpi, png)
        return png

    def to_svg(self) -> str:
        """The figure as an SVG document (text)."""
        buf = io.StringIO()
        self.savefig(buf, format="svg", facecolor="white")
        return buf.getvalue()

    def to_html(self, dpi: int | None = None) -> str:
        """An ``<img>`` element with the PNG inline (for static HTML snapshots)."""
        return png_img_html(self.to_png(dpi), alt=self.kind)

    def _repr_png_(self) -> bytes:
        return self.to_png()

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        n = len(self.axes)
        return (f"<spear_lab {self.kind}: {n} axes; shown as a picture in Jupyter, "
                f"fig.save('name.png' | '.svg' | '.html')>")

    # -- saving -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, dpi: int | None = None) -> Path:
        """Write the figure to ``path``: PNG, SVG or a standalone HTML page, chosen by the
        suffix (case-insensitive).  Returns the path.  ValueError for any other suffix."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix not in SUFFIXES:
            raise ValueError(f"cannot save a figure as {suffix or 'a file without suffix'!r} "
                             f"({p.name}): use one of {', '.join(SUFFIXES)}")
        if suffix == ".png":
            p.write_bytes(self.to_png(dpi))
        elif suffix == ".svg":
            p.write_text(self.to_svg(), encoding="utf-8")
        else:
            title = html.escape(self.kind)
            p.write_text("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                         f"<title>{title}</title></head>\n<body>{self.to_html(dpi)}</body></html>\n",
                         encoding="utf-8")
        return p
