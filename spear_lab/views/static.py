"""Static faces of live views: self-contained HTML, display bundles and display ids.

A live view is displayed as one bundle holding the widget *and* a static picture of it
(``text/html``, plus ``text/plain``), under a display id the view keeps.  Frontends with
the widget manager show the widget; nbviewer, GitHub and a notebook reopened without
widget state show the HTML.  When the view freezes, :func:`replace` puts the static
bundle in place of every display with that id.

:func:`widget_html` turns any ipywidgets tree into static HTML (HTML and Label values,
Images as inline ``data:`` URIs, progress bars as drawn bars, boxes and tabs stacked),
which is the default snapshot of a view.  :class:`StatusLine` is a small HTML display that
can be re-rendered in place (a guest's "running" line); :class:`LiveWidget` gives any
widget (sliders, ``interactive``) the same two faces.
"""

from __future__ import annotations

import asyncio
import base64
import html
import logging
import uuid
from collections.abc import Callable
from typing import Any

from . import tables

__all__ = [
    "WIDGET_MIME", "LiveWidget", "StatusLine", "close_tree", "in_kernel", "live_bundle", "new_display_id",
    "replace", "show", "static_bundle", "widget_html",
]

log = logging.getLogger(__name__)

#: The mime type of an ipywidgets view in a display bundle.
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def in_kernel() -> bool:
    """True inside an IPython shell (a Jupyter kernel or a terminal IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return False
    return get_ipython() is not None


def new_display_id() -> str:
    """A fresh display id."""
    return "spear-" + uuid.uuid4().hex


def static_bundle(html_text: str, text: str) -> dict[str, str]:
    """``text/html`` + ``text/plain``: what a frozen view shows."""
    return {"text/html": html_text, "text/plain": text}


def live_bundle(widget: Any, html_text: str, text: str) -> dict[str, Any]:
    """The widget's own mime bundle with ``html_text`` as its ``text/html`` and ``text``
    as its ``text/plain``; just the static bundle when the widget is closed."""
    data = widget._repr_mimebundle_() if getattr(widget, "comm", None) is not None else None
    bundle = dict(data or {})
    bundle.update(static_bundle(html_text, text))
    return bundle


def show(bundle: dict[str, Any], display_id: str) -> None:
    """Display ``bundle`` (raw mime data) under ``display_id``; no-op outside IPython."""
    if not in_kernel():
        return
    from IPython.display import display

    display(bundle, raw=True, display_id=display_id)


def replace(bundle: dict[str, Any], display_id: str) -> None:
    """Replace every display with ``display_id`` by ``bundle``; no-op outside IPython."""
    if not in_kernel():
        return
    from IPython.display import update_display

    update_display(bundle, raw=True, display_id=display_id)


def close_tree(widget: Any) -> None:
    """Close ``widget`` and every widget below it (children of boxes and tabs)."""
    for child in list(getattr(widget, "children", ()) or ()):
        close_tree(child)
    try:
        widget.close()
    except Exception:  # pragma: no cover - closing twice or a half-built widget
        log.debug("closing %r failed", widget, exc_info=True)


# -- widgets as static HTML ---------------------------------------------------------------

def _img(value: bytes, fmt: str, alt: str = "view") -> str:
    data = base64.b64encode(bytes(value)).decode("ascii")
    mime = "svg+xml" if fmt == "svg" else fmt or "png"
    return (f'<img src="data:image/{mime};base64,{data}" alt="{html.escape(alt, quote=True)}" '
            f'style="max-width:100%;height:auto"/>')


def _bar(w: Any) -> str:
    lo, hi = float(w.min), float(w.max)
    frac = 0.0 if hi <= lo else min(max((float(w.value) - lo) / (hi - lo), 0.0), 1.0)
    colour = {"danger": "#d9534f", "warning": "#f0ad4e", "success": "#5cb85c"}.get(
        getattr(w, "bar_style", "") or "", "#2196f3")
    label = (f"<span style='display:inline-block;min-width:120px'>{html.escape(w.description)}</span>"
             if getattr(w, "description", "") else "")
    return (f"<span style='display:inline-flex;align-items:center;gap:6px'>{label}"
            f"<span style='display:inline-block;width:260px;height:14px;background:#e8e8e8;"
            f"border-radius:2px'><span style='display:block;width:{frac * 100:.1f}%;height:100%;"
            f"background:{colour};border-radius:2px'></span></span></span>")


def _control(w: Any) -> str:
    desc = html.escape(getattr(w, "description", "") or type(w).__name__)
    value = html.escape(str(getattr(w, "value", "")))
    return f"<span style='color:{tables.MUTED};margin-right:12px'>{desc}: <code>{value}</code></span>"


def _outputs(w: Any) -> str:
    parts = []
    for out in getattr(w, "outputs", ()) or ():
        data = out.get("data", {}) if isinstance(out, dict) else {}
        if "text/html" in data:
            parts.append(str(data["text/html"]))
        elif "image/png" in data:
            parts.append(f'<img src="data:image/png;base64,{data["image/png"]}" style="max-width:100%"/>')
        elif "text/plain" in data:
            parts.append(f"<pre>{html.escape(str(data['text/plain']))}</pre>")
        elif isinstance(out, dict) and out.get("output_type") == "stream":
            parts.append(f"<pre>{html.escape(str(out.get('text', '')))}</pre>")
    return "".join(parts)


def widget_html(widget: Any) -> str:
    """Static HTML showing what ``widget`` (and everything below it) shows now."""
    import ipywidgets as w

    layout = getattr(widget, "layout", None)
    if layout is not None and getattr(layout, "display", None) == "none":
        return ""
    if isinstance(widget, (w.HTML, w.HTMLMath)):
        return f"<div>{widget.value}</div>"
    if isinstance(widget, w.Label):
        return f"<span>{html.escape(widget.value)}</span>"
    if isinstance(widget, w.Image):
        return _img(widget.value, widget.format) if widget.value else ""
    if isinstance(widget, (w.FloatProgress, w.IntProgress)):
        return _bar(widget)
    if isinstance(widget, w.Output):
        return _outputs(widget)
    if isinstance(widget, (w.Tab, w.Accordion, w.Stack)):
        titles = list(getattr(widget, "titles", ()) or ())
        parts = []
        for i, child in enumerate(widget.children):
            title = titles[i] if i < len(titles) and titles[i] else ""
            head = (f"<div style='font-weight:bold;font-size:{tables.FONT_PX + 1}px;"
                    f"margin:8px 0 2px 0'>{html.escape(title)}</div>" if title else "")
            parts.append(head + widget_html(child))
        return "<div>" + "".join(parts) + "</div>"
    if isinstance(widget, w.Box):
        inner = "".join(widget_html(c) for c in widget.children)
        if isinstance(widget, w.HBox):
            return f"<div style='display:flex;flex-wrap:wrap;align-items:center;gap:8px'>{inner}</div>"
        return f"<div>{inner}</div>"
    if isinstance(widget, w.ValueWidget):
        return _control(widget)
    return ""


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

def _live_view_base():
    from ._refresh import LiveView

    return LiveView


class LiveWidget(_live_view_base()):
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
