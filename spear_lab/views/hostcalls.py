"""The hostcall log: a filterable table of hostcalls with errno names.

Filters: instance, hostcall name, result (all / errors / one errno name) and a text that
must appear in the arguments or the result.  Shows the newest ``limit`` matching rows.
"""

from __future__ import annotations

import html
from typing import Any

from ._refresh import LiveView, MAX_RATE, Refresher

__all__ = ["HostcallLog", "filter_hostcalls", "hostcall_html"]

ALL = "(all)"
ERRORS = "(errors)"


def filter_hostcalls(trace: Any, instance: str | None = None, name: str | None = None,
                     result: str | None = None, text: str = "", limit: int | None = 200) -> list[dict[str, Any]]:
    """Hostcall records matching every given filter, newest ``limit`` of them, oldest first.

    ``result``: None / ``"(all)"``, ``"(errors)"`` (rc < 0) or an errno name (``"-EAGAIN"``,
    ``"OK"``).
    """
    needle = text.lower()

    def keep(r: dict[str, Any]) -> bool:
        if result == ERRORS and not (isinstance(r["rc"], int) and r["rc"] < 0):
            return False
        if result not in (None, ALL, ERRORS) and r["errno"] != result:
            return False
        return not needle or any(needle in field.lower() for field in (
            " ".join(map(str, r["args"])), str(r["rc"]), r["errno"], r.get("out") or ""))

    return trace.hostcalls(None if instance in (None, ALL) else instance,
                           None if name in (None, ALL) else name, last=limit, where=keep)


def hostcall_html(rows: list[dict[str, Any]]) -> str:
    """An HTML table of hostcall records (time, guest, call, args, result, errno, µs)."""
    if not rows:
        return "<i>no matching hostcalls</i>"
    head = ("<tr><th>t (s)</th><th>guest</th><th>hostcall</th><th>args</th><th>rc</th>"
            "<th>errno</th><th>returned</th><th>µs</th></tr>")
    body = []
    for r in rows:
        err = isinstance(r["rc"], int) and r["rc"] < 0
        style = " style='color:#d62728'" if err else ""
        args = ", ".join(str(a) for a in r["args"])
        body.append(
            f"<tr{style}><td>{r['t']:.4f}</td><td>{html.escape(r['instance'])}</td>"
            f"<td><code>{html.escape(r['name'])}</code></td>"
            f"<td style='text-align:left'><code>{html.escape(args)}</code></td>"
            f"<td>{r['rc']}</td><td>{html.escape(r['errno'])}</td>"
            f"<td style='text-align:left'><code>{html.escape(r.get('out') or '')}</code></td>"
            f"<td>{r['dur'] * 1e6:.1f}</td></tr>")
    return f"<table class='spear-hostcalls'>{head}{''.join(body)}</table>"


class HostcallLog(LiveView):
    """Dropdowns (guest, hostcall, result) and a text filter over an HTML table."""

    def __init__(self, trace: Any, *, limit: int = 200, live: bool = True,
                 max_rate: float = MAX_RATE) -> None:
        import ipywidgets as widgets

        self.trace = trace
        self.limit = limit
        self.instance = widgets.Dropdown(options=[ALL], value=ALL, description="guest")
        self.name = widgets.Dropdown(options=[ALL], value=ALL, description="hostcall")
        self.result = widgets.Dropdown(options=[ALL, ERRORS], value=ALL, description="result")
        self.text = widgets.Text(value="", description="contains", continuous_update=False)
        self.table = widgets.HTML()
        self.count = widgets.HTML()
        controls = widgets.HBox([self.instance, self.name, self.result, self.text])
        self.widget = widgets.VBox([controls, self.count, self.table])
        self.rows: list[dict[str, Any]] = []
        for control in (self.instance, self.name, self.result, self.text):
            control.observe(self._on_filter, names="value")
        self.refresh()
        self.refresher = Refresher(trace, self, max_rate).start() if live else None

    def _on_filter(self, _change: Any) -> None:
        self._render()

    def _options(self) -> None:
        """Extend the dropdowns with every guest, hostcall and errno seen (keeps choices)."""
        calls, errno_names = self.trace.counts()
        names = [ALL, *sorted(calls)]
        errnos = [ALL, ERRORS, "OK", *sorted(errno_names)]
        instances = [ALL, *self.trace.instances()]
        for control, options in ((self.instance, instances), (self.name, names), (self.result, errnos)):
            if list(control.options) != options:
                keep = control.value if control.value in options else ALL
                control.options = options
                control.value = keep

    def _render(self) -> None:
        self.rows = filter_hostcalls(self.trace, self.instance.value, self.name.value,
                                     self.result.value, self.text.value, self.limit)
        self.table.value = hostcall_html(self.rows)
        total = sum(self.trace.counts()[0].values())
        self.count.value = f"<small>showing {len(self.rows)} (newest) of {total} hostcalls</small>"

    def refresh(self) -> None:
        self._options()
        self._render()

