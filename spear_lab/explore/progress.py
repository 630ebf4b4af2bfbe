"""Progress for long sweeps: ipywidgets in a notebook, tqdm in a terminal, else a line.

:func:`progress` picks, for ``kind="auto"``: an ``ipywidgets.IntProgress`` with a label
when running inside a Jupyter kernel; ``tqdm`` when it is installed and stderr is a
terminal; a plain text bar on a terminal's stderr otherwise; and, when stderr is not a
terminal (CI logs), only a ``logging`` line per tenth of the work.
"""

from __future__ import annotations

import logging
import sys
__all__ = ["Progress", "progress"]

log = logging.getLogger(__name__)


class Progress:
    """Counts finished units; subclasses draw them.  Use as a context manager."""

    def __init__(self, total: int, desc: str = "") -> None:
        self.total = max(int(total), 0)
        self.desc = desc
        self.n = 0
        self.note = ""

    def update(self, n: int = 1, note: str | None = None) -> None:
        """``n`` more units done; ``note`` is a short status text."""
        self.n = min(self.n + n, self.total) if self.total else self.n + n
        if note is not None:
            self.note = note
        self.draw()

    def draw(self) -> None:
        """Show the current state (the base class logs every tenth of the total)."""
        step = max(self.total // 10, 1)
        if self.n % step == 0 or self.n == self.total:
            log.info("%s %d/%d %s", self.desc, self.n, self.total, self.note)

    def close(self) -> None:
        """Finish the display."""

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TextProgress(Progress):
    def draw(self) -> None:
        width = 30
        done = int(width * self.n / self.total) if self.total else width
        sys.stderr.write(f"\r{self.desc} [{'#' * done}{'.' * (width - done)}] "
                         f"{self.n}/{self.total} {self.note[:40]:<40}")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


class _TqdmProgress(Progress):
    def __init__(self, total: int, desc: str = "") -> None:
        super().__init__(total, desc)
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=desc, leave=True)

    def update(self, n: int = 1, note: str | None = None) -> None:
        self.n += n
        if note is not None:
            self._bar.set_postfix_str(note[:40], refresh=False)
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


class _WidgetProgress(Progress):
    """A bar and a label, shown with a static picture of themselves; frozen into that
    picture when the work ends, so a saved notebook shows the finished bar."""

    def __init__(self, total: int, desc: str = "") -> None:
        super().__init__(total, desc)
        import ipywidgets as w

        from ..views.static import LiveWidget

        self._bar = w.IntProgress(value=0, min=0, max=max(total, 1), description=desc[:20])
        self._label = w.Label(f"0/{total}")
        self._view = LiveWidget(w.HBox([self._bar, self._label]))
        self._view._ipython_display_()

    def draw(self) -> None:
        self._bar.value = self.n
        self._label.value = f"{self.n}/{self.total} {self.note}"

    def close(self) -> None:
        self._bar.bar_style = "success" if self.n >= self.total else "warning"
        self._view.freeze()


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover - odd IPython states
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress(total: int, desc: str = "", kind: str | bool | None = "auto") -> Progress:
    """A progress display for ``total`` units.

    ``kind``: ``"auto"`` (see the module docstring), ``"widget"``, ``"tqdm"``, ``"text"``,
    ``"log"``, or False/None for nothing visible (logging only).
    """
    if kind in (False, None, "log", "none"):
        return Progress(total, desc)
    choice: str = str(kind)
    if choice == "auto":
        if _in_kernel():
            choice = "widget"
        elif sys.stderr is not None and sys.stderr.isatty():
            try:
                import tqdm  # noqa: F401

                choice = "tqdm"
            except ImportError:
                choice = "text"
        else:
            choice = "log"
    try:
        if choice == "widget":
            return _WidgetProgress(total, desc)
        if choice == "tqdm":
            return _TqdmProgress(total, desc)
    except ImportError:
        choice = "text"
    if choice == "text":
        return _TextProgress(total, desc)
    return Progress(total, desc)

