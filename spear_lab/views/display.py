"""Display primitives of the views: display ids, mime bundles, showing and replacing a
display, closing widget trees, and any ipywidgets tree as static HTML.

A live view is displayed as one bundle holding the widget *and* a static picture of it
(``text/html``, plus ``text/plain``) under a display id it keeps: :func:`live_bundle`
builds it, :func:`static_bundle` the frozen one, :func:`show` / :func:`replace` put it on
the page (no-ops outside IPython).  :func:`widget_html` turns any ipywidgets tree into
static HTML (HTML and Label values, Images as inline ``data:`` URIs, progress bars as
drawn bars, boxes and tabs stacked), the default snapshot of a view.  The views use these
through :mod:`spear_lab.views.static`, which re-exports them.
"""

from __future__ import annotations

import base64
import html
import logging
import uuid
from typing import Any

from . import tables

__all__ = [
    "WIDGET_MIME", "close_tree", "in_kernel", "live_bundle", "new_display_id", "replace", "show",
    "static_bundle", "widget_html",
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
