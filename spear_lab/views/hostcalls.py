"""The hostcall log: a filterable table of hostcalls with errno names, in a scroll box.

Filters: instance, hostcall name, result (all / errors / failures / one errno name) and a
text that must appear in the arguments or the result.  Shows the newest ``limit``
matching rows, newest first.  Real errors are red; ``-EAGAIN`` from a non-blocking read,
write or wait — the normal "nothing now" answer — is shown in a neutral colour.
"""

from __future__ import annotations

import html
from typing import Any

from . import tables
from ._refresh import MAX_RATE, LiveView, Refresher

__all__ = ["EAGAIN_NORMAL", "HostcallLog", "filter_hostcalls", "hostcall_html", "is_failure"]

ALL = "(all)"
ERRORS = "(errors)"
FAILURES = "(failures)"


def filter_hostcalls(trace: Any, instance: str | None = None, name: str | None = None,
                     result: str | None = None, text: str = "", limit: int | None = 200) -> list[dict[str, Any]]:
    """Hostcall records matching every given filter, newest ``limit`` of them, oldest first.

    ``result``: None / ``"(all)"``, ``"(errors)"`` (rc < 0), ``"(failures)"`` (rc < 0 but
    not the normal ``-EAGAIN`` of a non-blocking call, see :func:`is_failure`) or an errno
    name (``"-EAGAIN"``, ``"OK"``).
    """
    needle = text.lower()

    def keep(r: dict[str, Any]) -> bool:
        if result == ERRORS and not (isinstance(r["rc"], int) and r["rc"] < 0):
            return False
        if result == FAILURES and not is_failure(r):
            return False
        if result not in (None, ALL, ERRORS, FAILURES) and r["errno"] != result:
            return False
        return not needle or any(needle in field.lower() for field in (
            " ".join(map(str, r["args"])), str(r["rc"]), r["errno"], r.get("out") or ""))

    return trace.hostcalls(None if instance in (None, ALL) else instance,
                           None if name in (None, ALL) else name, last=limit, where=keep)


#: Hostcalls for which ``-EAGAIN`` is the normal "nothing now" answer of a non-blocking
#: call (nothing to read, the send queue full, no event yet) rather than a failure.
EAGAIN_NORMAL = frozenset({"rtasr_read", "rtasr_write", "mic_read", "spear_epoll_wait"})


def is_failure(record: dict[str, Any]) -> bool:
    """True for a negative result that is a real error; ``-EAGAIN`` of a non-blocking
    read, write or wait (:data:`EAGAIN_NORMAL`) is not one."""
    rc = record["rc"]
    if not (isinstance(rc, int) and rc < 0):
        return False
    return not (record["errno"] == "-EAGAIN" and record["name"] in EAGAIN_NORMAL)


def _row_style(record: dict[str, Any]) -> str:
    if is_failure(record):
        return f"color:{tables.ERROR}"
    rc = record["rc"]
    return f"color:{tables.NEUTRAL}" if isinstance(rc, int) and rc < 0 else ""


def hostcall_html(rows: list[dict[str, Any]], *, newest_first: bool = True,
                  max_height_px: int | None = 360) -> str:
    """An HTML table of hostcall records (time, guest, call, args, result, errno,
    returned, µs) in a scroll box ``max_height_px`` high (None: no box).  Real errors are
    red; the normal ``-EAGAIN`` of a non-blocking call is shown in a neutral colour."""
    if not rows:
        return tables.note("no matching hostcalls")
    ordered = list(reversed(rows)) if newest_first else list(rows)
    cells, styles = [], []
    for r in ordered:
        args = ", ".join(str(a) for a in r["args"])
        rc = r["rc"]
        errno = "" if isinstance(rc, int) and rc > 0 else html.escape(r["errno"])  # a count: rc says it
        cells.append([
            f"{r['t']:.4f}", html.escape(r["instance"]), f"<code>{html.escape(r['name'])}</code>",
            f"<code>{html.escape(args)}</code>", html.escape(str(rc)),
            f"<b>{errno}</b>" if is_failure(r) else errno,
            f"<code>{html.escape(r.get('out') or '')}</code>", f"{r['dur'] * 1e6:.1f}"])
        styles.append(_row_style(r))
    table = tables.table_html(["t (s)", "guest", "hostcall", "args", "rc", "errno", "returned", "µs"],
                              cells, numeric=[0, 4, 7], nowrap=[1, 2, 5], row_styles=styles)
    table = table.replace("<table ", "<table class='spear-hostcalls' ", 1)
    return tables.scroll_box(table, max_height_px) if max_height_px else table


class HostcallLog(LiveView):
    """Dropdowns (guest, hostcall, result) and a text filter over an HTML table."""

    def __init__(self, trace: Any, *, limit: int = 200, live: bool = True,
                 max_rate: float = MAX_RATE, max_height_px: int = 360) -> None:
        import ipywidgets as widgets

        self.trace = trace
        self.limit = limit
        self.max_height_px = max_height_px
        self.instance = widgets.Dropdown(options=[ALL], value=ALL, description="guest")
        self.name = widgets.Dropdown(options=[ALL], value=ALL, description="hostcall")
        self.result = widgets.Dropdown(options=[ALL, ERRORS, FAILURES], value=ALL, description="result")
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
        errnos = [ALL, ERRORS, FAILURES, "OK", *sorted(errno_names)]
        instances = [ALL, *self.trace.instances()]
        for control, options in ((self.instance, instances), (self.name, names), (self.result, errnos)):
            if list(control.options) != options:
                keep = control.value if control.value in options else ALL
                control.options = options
                control.value = keep

    def _render(self) -> None:
        self.rows = filter_hostcalls(self.trace, self.instance.value, self.name.value,
                                     self.result.value, self.text.value, self.limit)
        self.table.value = hostcall_html(self.rows, max_height_px=self.max_height_px)
        total = sum(self.trace.counts()[0].values())
        self.count.value = (f"<div style='font-size:{tables.FONT_PX}px;color:{tables.MUTED}'>showing the"
                            f" newest {len(self.rows)} of {total:,} hostcalls, newest first</div>")

    def snapshot_html(self) -> str:
        """The count line and the table (the filters as a line of text)."""
        filters = [f"{c.description} {c.value}" for c in (self.instance, self.name, self.result)
                   if c.value != ALL] + ([f"contains {self.text.value!r}"] if self.text.value else [])
        line = tables.block(f"<span style='color:{tables.MUTED}'>filters: "
                            f"{html.escape(', '.join(filters))}</span>") if filters else ""
        return f"<div class='spear-hostcall-log'>{line}{self.count.value}{self.table.value}</div>"

    def refresh(self) -> None:
        self._options()
        self._render()

