"""One place for the look of every figure: font sizes, colours, line widths, resolution.

Sizes are chosen to read on a projector (a 10 in wide figure shown about 1000 px wide):
body text 12 pt, ticks 11 pt, titles 13 pt.  Every figure function draws inside
:func:`context`, which applies :data:`RC` to matplotlib for the duration of the drawing
only (nothing global changes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["BIT_COLORS", "BYTES_UNITS", "CYCLE", "DPI", "FONT", "LINESTYLES", "MARKERS", "MUTED",
           "RC", "SMALL", "TITLE", "WAIT_COLOR", "context", "human_bytes"]

#: Body text, tick labels and titles (points).
FONT, SMALL, TITLE = 12, 11, 13
#: Resolution of rendered PNGs (dots per inch).
DPI = 100
#: Grey for secondary text and "nothing here" notes.
MUTED = "#6f6f6f"
#: Readiness bits and epoll waits.
BIT_COLORS = {"IN": "#1f77b4", "OUT": "#2ca02c", "ERR": "#d62728", "HUP": "#555555"}
WAIT_COLOR = "#9467bd"
#: Series colours (colour-blind friendly order), markers and line styles, used together so
#: that two curves on top of each other stay distinguishable.
CYCLE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")

#: matplotlib settings applied while a figure is drawn.
RC = {
    "font.size": FONT,
    "axes.titlesize": TITLE,
    "axes.labelsize": FONT,
    "xtick.labelsize": SMALL,
    "ytick.labelsize": SMALL,
    "legend.fontsize": SMALL,
    "figure.titlesize": TITLE,
    "axes.titleweight": "bold",
    "lines.linewidth": 2.0,
    "lines.markersize": 7,
    "axes.grid": False,
    "grid.alpha": 0.35,
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
}


@contextlib.contextmanager
def context() -> Iterator[None]:
    """Apply :data:`RC` while the block draws a figure."""
    import matplotlib

    with matplotlib.rc_context(RC):
        yield


BYTES_UNITS = ((1 << 30, "GB"), (1 << 20, "MB"), (1 << 10, "KB"))


def human_bytes(n: float) -> str:
    """``960`` → ``"960 B"``, ``1048576`` → ``"1 MB"``, ``204800`` → ``"200 KB"``."""
    n = float(n)
    for size, unit in BYTES_UNITS:
        if abs(n) >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v >= 100 or v == int(v) else f"{v:.1f} {unit}"
    return f"{n:.0f} B"
