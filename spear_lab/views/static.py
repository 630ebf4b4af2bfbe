"""Static faces of live views: a status line and any widget with a static picture.

A live view is displayed as one bundle holding the widget *and* a static picture of it
(``text/html``, plus ``text/plain``), under a display id the view keeps.  Frontends with
the widget manager show the widget; nbviewer, GitHub and a notebook reopened without
widget state show the HTML.  When the view freezes, :func:`replace` puts the static
bundle in place of every display with that id.

:class:`StatusLine` is a small HTML display that can be re-rendered in place (a guest's
"running" line); :class:`LiveWidget` gives any widget (sliders, ``interactive``) the same
two faces as every view.  The display primitives (:func:`widget_html`, the bundles, ids,
:func:`show` / :func:`replace`) live in :mod:`spear_lab.views.display` and are
importable from here too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ._refresh import LiveView
from .display import (WIDGET_MIME, close_tree, in_kernel, live_bundle, new_display_id, replace,
                      show, static_bundle, widget_html)

__all__ = [
    "WIDGET_MIME", "LiveWidget", "StatusLine", "close_tree", "in_kernel", "live_bundle", "new_display_id",
    "replace", "show", "static_bundle", "widget_html",
]

log = logging.getLogger(__name__)


# -- a status line re-rendered in place -------------------------------------------------------

class StatusLine:
    """An HTML line displayed under its own display id; :meth:`update` re-renders every
    display of it in place (from any thread: the update runs on the loop that was running
    when it was shown, when there was one).

    ``render_html`` / ``render_text`` produce the current HTML and plain text.
    """

    def __init__(self, render_html: Callable[[], str], render_text: Callable[[], str]) -> None:
        self.render_html = render_html
        self.render_text = render_text
        self.display_id = new_display_id()
        self.shown = 0
        self.last_html: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def bundle(self) -> dict[str, str]:
        return static_bundle(self.render_html(), self.render_text())

    def show(self) -> None:
        """Display the line (again); every display follows later updates."""
        bundle = self.bundle()
        self.last_html = bundle["text/html"]
        show(bundle, self.display_id)
        self.shown += 1
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            pass

    def update(self) -> None:
        """Re-render every display of the line (no-op when it was never shown).  Every
        call sends the update, so a frontend that missed one (nbclient listens only
        while a cell runs) gets the next."""
        if not self.shown:
            return
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and running is not loop and loop.is_running():
            loop.call_soon_threadsafe(self._push)
        else:
            self._push()

    def _push(self) -> None:
        try:
            bundle = self.bundle()
            self.last_html = bundle["text/html"]
            replace(bundle, self.display_id)
        except Exception:  # a status line must never break its owner
            log.exception("updating a status line failed")


# -- any widget with a static picture -------------------------------------------------------

class LiveWidget(LiveView):
    """Any ipywidget (a slider box, an ``interactive``) displayed together with a static
    picture of itself, so that a saved notebook shows it without widget state.

    ``snapshot``: a function returning the static HTML (default :func:`widget_html` of the
    widget); ``trace``: when given, the display freezes when that trace's Session closes.
    :meth:`freeze` / :meth:`close` replace the display by the picture, as for every view.
    """

    def __init__(self, widget: Any, *, snapshot: Callable[[], str] | None = None,
                 trace: Any = None) -> None:
        self.widget = widget
        self.trace = trace
        self._snapshot = snapshot

    def refresh(self) -> None:
        """Nothing to do: the widget updates itself."""

    def snapshot_html(self) -> str:
        return self._snapshot() if self._snapshot is not None else widget_html(self.widget)

    def _text(self) -> str:
        return f"<{type(self.widget).__name__} ({'frozen' if self.frozen else 'live'} widget)>"
