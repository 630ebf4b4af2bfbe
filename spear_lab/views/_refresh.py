"""Throttled refresh of live views, and the base class that lets a view freeze in place.

A :class:`Refresher` calls ``view.refresh()`` at most ``max_rate`` times per second, and
only when the Trace's ``version`` changed since the last call.  Once the Trace is
``closed`` (its Session ended) it stops and freezes the view (``view.freeze()``, which
refreshes once more and turns every display into a static snapshot; a view without
``freeze`` just gets a last refresh).  Inside a Jupyter kernel the ticks run on the
kernel's own loop (between cells, or while :meth:`Session.run` pumps it), so a refresh
never races a cell; elsewhere a daemon thread ticks.  The view is held weakly — a view
that is garbage collected stops its refresher — except while it is displayed and not
frozen (see :func:`displayed_views`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from typing import Any

from .display import close_tree, live_bundle, new_display_id, replace, show, static_bundle, widget_html

log = logging.getLogger(__name__)

#: The highest refresh rate any view may ask for (updates per second).
MAX_RATE = 10.0


class Refresher:
    """Refresh ``view`` (anything with ``.refresh()``) while ``trace`` changes."""

    def __init__(self, trace: Any, view: Any, max_rate: float = MAX_RATE,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.trace = trace
        self._view = weakref.ref(view)
        self.interval = 1.0 / min(max(max_rate, 0.1), MAX_RATE)
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._seen = -1
        self.ticks = 0
        self.updates = 0

    @property
    def mode(self) -> str:
        """``"loop"``, ``"thread"`` or ``"stopped"``."""
        if self._stop.is_set():
            return "stopped"
        return "thread" if self._thread is not None else "loop" if self._handle is not None else "stopped"

    def start(self) -> Refresher:
        """Begin ticking on the caller's running loop, else on a daemon thread."""
        loop = self._loop
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        if loop is not None:
            self._loop = loop
            self._handle = loop.call_later(self.interval, self._tick)
        else:
            self._thread = threading.Thread(target=self._run, name="spear-view-refresh", daemon=True)
            self._thread.start()
        return self

    def _once(self) -> bool:
        """One tick; False when the view is gone or the refresher stopped."""
        view = self._view()
        if view is None or self._stop.is_set():
            return False
        self.ticks += 1
        closed = bool(getattr(self.trace, "closed", False))  # its session ended: nothing more comes
        freeze = getattr(view, "freeze", None) if closed else None
        version = self.trace.version
        if version != self._seen and not callable(freeze):  # freeze() refreshes once more itself
            self._seen = version
            try:
                view.refresh()
                self.updates += 1
            except Exception:  # a broken view must not kill the loop
                log.exception("refreshing %r failed", view)
        if closed:
            self._stop.set()
            if callable(freeze):
                try:
                    freeze()
                    self.updates += 1
                except Exception:
                    log.exception("freezing %r failed", view)
            return False
        return True

    def _tick(self) -> None:
        self._handle = None
        if self._once() and self._loop is not None and not self._loop.is_closed():
            self._handle = self._loop.call_later(self.interval, self._tick)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self._once():
                break

    def stop(self) -> None:
        """Stop ticking (idempotent; joins the thread when there is one)."""
        self._stop.set()
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)


#: Live views displayed and not yet frozen (held strongly: a displayed view keeps refreshing
#: until it freezes, even when the notebook keeps no name for it).
_DISPLAYED: list[Any] = []
_DISPLAYED_LOCK = threading.Lock()


def displayed_views(trace: Any = None) -> list[Any]:
    """Views displayed and not frozen yet, over ``trace`` (any trace when None)."""
    with _DISPLAYED_LOCK:
        return [v for v in _DISPLAYED if trace is None or getattr(v, "trace", None) is trace]


class LiveView:
    """Base of the widget views: ``widget`` (an ipywidget), ``trace`` and an optional
    ``refresher``.

    Subclasses set them in ``__init__``, define ``refresh()`` and, where the default
    (:func:`~spear_lab.views.display.widget_html` of the widget) is not the best static
    picture, ``snapshot_html()``.

    Displayed, a view is one bundle: the widget, its snapshot as ``text/html`` and a
    ``text/plain`` line, under the view's :attr:`display_id`.  :meth:`freeze` (called by
    ``Session.close``, by the refresher once the Trace is closed, and by :meth:`close`)
    replaces every display of it by the static snapshot and closes the widgets.
    """

    widget: Any
    trace: Any = None
    refresher: Refresher | None = None
    #: True once frozen: no more refreshes; displays show the static snapshot.
    frozen: bool = False
    _display_id: str | None = None
    _shown: int = 0
    _frozen_html: str | None = None
    _freezing: bool = False

    @property
    def display_id(self) -> str:
        """The display id every display of this view shares."""
        if self._display_id is None:
            self._display_id = new_display_id()
        return self._display_id

    def snapshot_html(self) -> str:
        """The view's current content as self-contained static HTML."""
        return widget_html(self.widget)

    def _text(self) -> str:
        """The ``text/plain`` face."""
        state = "frozen" if self.frozen else "live"
        return f"<{type(self).__name__} ({state}; a live widget in Jupyter)>"

    def _bundle(self) -> dict[str, Any]:
        if self.frozen:
            return static_bundle(self._frozen_html or "", self._text())
        return live_bundle(self.widget, self.snapshot_html(), self._text())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any):
        return self._bundle()

    def _ipython_display_(self) -> None:
        show(self._bundle(), self.display_id)
        self._shown += 1
        if not self.frozen:
            with _DISPLAYED_LOCK:
                if self not in _DISPLAYED:
                    _DISPLAYED.append(self)

    def _last_refresh(self) -> None:
        """Bring the content up to date before the snapshot (Dashboard redraws all)."""
        self.refresh()

    def _close_widgets(self) -> None:
        close_tree(self.widget)

    def freeze(self) -> None:
        """Stop refreshing, refresh once more, replace every display of the view by its
        static snapshot (``text/html`` + ``text/plain``, no widget) and close the widgets.
        Idempotent; outside IPython only the stopping and closing happen."""
        with _DISPLAYED_LOCK:  # one freezer only (Session.close and a refresher thread may race)
            if self.frozen or self._freezing:
                return
            self._freezing = True
        if self.refresher is not None:
            self.refresher.stop()
        try:
            self._last_refresh()
        except Exception:  # the snapshot of what is there is still worth showing
            log.exception("last refresh of %r failed", self)
        try:
            self._frozen_html = self.snapshot_html()
        except Exception:
            log.exception("snapshot of %r failed", self)
            self._frozen_html = "<i>(no snapshot: rendering failed, see the log)</i>"
        self.frozen = True
        with _DISPLAYED_LOCK:
            if self in _DISPLAYED:
                _DISPLAYED.remove(self)
        if self._shown:
            try:
                replace(static_bundle(self._frozen_html, self._text()), self.display_id)
            except Exception:  # pragma: no cover - a kernel without a frontend
                log.exception("replacing the display of %r failed", self)
        self._close_widgets()

    def close(self) -> None:
        """Freeze (see :meth:`freeze`): the displays keep the last content."""
        self.freeze()
