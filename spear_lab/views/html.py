"""HTML renderings for notebooks: a Session, a guest handle, a Trace, a Host's fd table,
a status object.

Used by the ``_repr_html_`` methods of :class:`~spear_lab.session.Session`,
:class:`~spear_lab.session.GuestHandle` and :class:`~spear_lab.trace.Trace`, and by
:class:`FdTableView` / :class:`Status` (wrappers that give a Host or a status dict an HTML
face).  The fd table is read through the ABI's own ``GET_STATUS`` commands.
"""

from __future__ import annotations

import html
import json
from typing import Any

from ..abi.constants import FdCtl, MicCtl, RtasrCtl
from . import tables

__all__ = [
    "FdTableView",
    "Status",
    "fd_rows",
    "fd_table_html",
    "handle_html",
    "session_html",
    "status_html",
    "trace_html",
]

def _table(head: list[str], rows: list[list[str]], caption: str = "", **kw: Any) -> str:
    return tables.table_html(head, rows, html.escape(caption) if caption else "", **kw)


def _status(host: Any, fd: int, kind: str) -> dict[str, Any] | None:
    call = {"RtAsr": (host.rtasr_ctl, RtasrCtl.GET_STATUS), "Mic": (host.mic_ctl, MicCtl.GET_STATUS)}.get(kind)
    if call is None:
        return None
    out = call[0](fd, call[1], None)
    return json.loads(out) if isinstance(out, bytes) else None


def fd_rows(host: Any) -> list[dict[str, Any]]:
    """One dict per fd of ``host`` (open and closed): ``fd``, ``kind``, ``closed``,
    ``poll_mask`` (names) and, for open rtasr/mic fds, their GET_STATUS object; for an
    epoll, ``watches`` (fd → interest names)."""
    from ..abi.constants import mask_names

    rows = []
    for entry in host.table:
        raw = host.spear_fd_ctl(entry.fd, FdCtl.GET_STATUS, None)
        if not isinstance(raw, bytes):
            continue
        st = json.loads(raw)
        row = {"fd": entry.fd, "kind": st["kind"], "closed": st["closed"], "poll_mask": st["poll_mask"]}
        if not st["closed"]:
            detail = _status(host, entry.fd, st["kind"])
            if detail is not None:
                row["status"] = detail
            watches = getattr(entry, "watches", None)
            if isinstance(watches, dict):
                with host.table.lock:
                    row["watches"] = {fd: mask_names(m) for fd, m in watches.items()}
        rows.append(row)
    return rows


def fd_table_html(host: Any) -> str:
    """The fd table of ``host`` as an HTML table."""
    rows = []
    for r in fd_rows(host):
        detail = ""
        if "status" in r:
            st = r["status"]
            keys = [k for k in ("state", "send_queue_bytes", "recv_queue_bytes", "dropped_events",
                                "queue_bytes", "dropped_frames", "running", "last_error", "transport")
                    if k in st]
            detail = ", ".join(f"{k}={st[k]}" for k in keys)
        elif "watches" in r:
            detail = "watches " + (", ".join(f"{fd}:{'|'.join(m) or '-'}" for fd, m in r["watches"].items())
                                   or "nothing")
        rows.append([str(r["fd"]), html.escape(r["kind"]), "closed" if r["closed"] else "open",
                     html.escape("|".join(r["poll_mask"]) or "-"), html.escape(detail)])
    if not rows:
        return tables.note(f"{host.name}: no fds")
    return _table(["fd", "kind", "state", "readiness", "detail"], rows, f"fd table of {host.name}",
                  numeric=[0], nowrap=[1, 2, 3])


class FdTableView:
    """A Host's fd table with an HTML face: ``display(FdTableView(session.host))``."""

    def __init__(self, host: Any) -> None:
        self.host = host

    @property
    def rows(self) -> list[dict[str, Any]]:
        return fd_rows(self.host)

    def _repr_html_(self) -> str:
        return fd_table_html(self.host)

    def __repr__(self) -> str:
        return "\n".join(f"{r['fd']} {r['kind']} {'closed' if r['closed'] else 'open'} "
                         f"{'|'.join(r['poll_mask']) or '-'}" for r in self.rows) or "(no fds)"


def status_html(status: Any, title: str = "status") -> str:
    """A GET_STATUS object (dict, JSON bytes or text) as a two-column table."""
    if isinstance(status, (bytes, str)):
        status = json.loads(status)
    if not isinstance(status, dict):
        return f"<code>{html.escape(repr(status))}</code>"
    rows = [[f"<code>{html.escape(str(k))}</code>",
             html.escape(json.dumps(v) if isinstance(v, (dict, list)) or v is None else str(v))]
            for k, v in status.items()]
    return _table(["key", "value"], rows, title, nowrap=[0])


class Status(dict):
    """A status dict that displays as a table in a notebook."""

    def _repr_html_(self) -> str:
        return status_html(dict(self))


def handle_html(handle: Any) -> str:
    """A guest handle: name, state, duration and the tail of its stdout."""
    res = handle.result
    dur = f"{res.duration_s:.2f} s" if res is not None else "…"
    state = handle.state()
    colour = ("" if state.startswith(("running", "exited 0", "stopped"))
              else f";color:{tables.ERROR}")
    out = handle.stdout.splitlines()[-8:]
    tail = html.escape("\n".join(out))
    pre = (f"<pre style='font-size:{tables.FONT_PX - 1}px;margin:2px 0;max-height:12em;"
           f"overflow:auto'>{tail}</pre>" if out else "")
    return (f"<div class='spear-guest' style='font-size:{tables.FONT_PX}px'><b>{html.escape(handle.name)}</b>"
            f" — <span style='font-weight:bold{colour}'>{html.escape(state)}</span> ({dur}){pre}</div>")


def _us(v: float) -> str:
    return f"{v:,.1f}"


def trace_html(trace: Any) -> str:
    """A Trace's summary: hostcalls (calls, errors, p50/p95 µs), drops, transcript counts."""
    s = trace.summary()
    rows = [[f"<code>{html.escape(n)}</code>", f"{v['calls']:,}",
             html.escape(", ".join(f"{k} ×{c}" for k, c in v["errors"].items()) or "–"),
             _us(v["p50_us"]), _us(v["p95_us"])]
            for n, v in s["hostcalls"].items()]
    d = s["drops"]
    foot = tables.block(
        f"{s['duration_s']:.2f} s recorded ({'recording' if trace.recording else 'paused'});"
        f" dropped events {d['dropped_events']}, dropped frames {d['dropped_frames']},"
        f" -EAGAIN writes {d['eagain_writes']}; transcript items {s['transcript']['items']}"
        f" ({s['transcript']['completed']} completed)")
    if not rows:
        return tables.note("no hostcalls yet") + foot
    table = _table(["hostcall", "calls", "errors", "p50 µs", "p95 µs"], rows, "trace",
                   numeric=[1, 3, 4], nowrap=[0, 2])
    return table + foot


def session_html(session: Any) -> str:
    """A Session: its guests, the Python host's fd table and the trace summary."""
    st = session.status()
    guests = st["guests"]
    rows = [[html.escape(g["name"]), html.escape(g["state"]), html.escape(str(g.get("backend") or "–")),
             "" if g["duration_s"] is None else f"{g['duration_s']:.2f}"] for g in guests]
    table = (_table(["guest", "state", "backend", "s"], rows, "guests", numeric=[3], nowrap=[0, 1, 2])
             if rows else tables.note("no guests yet"))
    backend = st["backend"]
    head = tables.block(
        f"<b>Session</b> — {'closed' if st['closed'] else 'open'}, I/O loop {st['io_loop']},"
        f" mic <code>{html.escape(str(st['mic']))}</code>"
        + (f", backend <code>{html.escape(str(backend))}</code>" if backend is not None else ""),
        tables.FONT_PX + 1)
    fds = "" if st["closed"] else fd_table_html(session.host)
    return f"<div class='spear-session'>{head}{table}{fds}{trace_html(session.trace)}</div>"
