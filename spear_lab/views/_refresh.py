"""Throttled refresh of live views: on the kernel's asyncio loop, or a timer thread.

A :class:`Refresher` calls ``view.refresh()`` at most ``max_rate`` times per second, and
only when the Trace's ``version`` changed since the last call; it stops by itself after a
last refresh once the Trace is ``closed`` (its Session ended).  Inside a Jupyter kernel the
ticks run on the kernel's own loop (between cells, or while :meth:`Session.run` pumps it),
so a refresh never races a cell; elsewhere a daemon thread ticks.  The view is held weakly:
a view that is garbage collected stops its refresher.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from typing import Any

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
        version = self.trace.version
        if version != self._seen:
            self._seen = version
            try:
                view.refresh()
                self.updates += 1
            except Exception:  # a broken view must not kill the loop
                log.exception("refreshing %r failed", view)
        if getattr(self.trace, "closed", False):  # its session ended: nothing more will come
            self._stop.set()
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


class LiveView:
    """Base of the widget views: ``widget`` (an ipywidget) and an optional ``refresher``.

    Subclasses set both in ``__init__`` and define ``refresh()``.
    """

    widget: Any
    refresher: Refresher | None = None

    def close(self) -> None:
        """Stop refreshing and close the widget."""
        if self.refresher is not None:
            self.refresher.stop()
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)
