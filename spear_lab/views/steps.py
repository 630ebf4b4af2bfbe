"""Step tables: a guest run shown as step, call, expected, got and why.

Two sources of steps:

- :func:`parse_steps` reads the lines a teaching C guest prints (``guests/c/epoll_tour.c``)::

      step <name>: rc=<int>[ expect=<int>][ <detail> ...]
      why <name>: <reason>
      mismatch <name>: <what was expected>

- :func:`trace_steps` pairs the hostcalls a guest made (from a :class:`~spear_lab.trace.Trace`)
  with a list of expectations ``(call, expected rc, why)`` written by the teacher, for
  guests that print nothing (the WAT guests).

:class:`SideBySide` is the same kind of table for comparisons (call, Linux result,
spear_lab result, why we differ).

:class:`StepTable` renders either as an HTML table (a mismatch highlighted in red) with a
plain-text fallback of the same rows.  Both are deterministic: no times, no addresses.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..abi.constants import errno_name
from . import tables

__all__ = ["SideBySide", "Step", "StepTable", "parse_steps", "step_table", "trace_steps"]

_STEP = re.compile(r"^step (?P<name>[\w.-]+): rc=(?P<rc>-?\d+)(?: expect=(?P<expect>-?\d+))?(?: (?P<detail>.*))?$")
_WHY = re.compile(r"^why (?P<name>[\w.-]+): (?P<text>.*)$")
_MISMATCH = re.compile(r"^mismatch (?P<name>[\w.-]+): (?P<text>.*)$")


def _rc_text(rc: int | None) -> str:
    if rc is None:
        return "any"
    name = errno_name(rc) if rc < 0 else ""
    return f"{rc} ({name})" if name and name != str(rc) else str(rc)


@dataclass
class Step:
    """One step: ``n`` (1-based), the step's name, the ``call`` with its details, the
    ``expected`` rc (None: the ABI prescribes no value), the rc it ``got``, the reason
    ``why``, and ``problems`` (mismatch texts; empty when the step holds)."""

    n: int
    name: str
    call: str
    expected: int | None
    got: int | None
    why: str = ""
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the result is what the ABI prescribes."""
        return not self.problems and (self.expected is None or self.expected == self.got)

    def row(self) -> list[str]:
        """The plain-text cells: step, call, expected, got, why."""
        got = _rc_text(self.got) if self.got is not None else "(not called)"
        why = self.why + ("".join(f" | MISMATCH: {p}" for p in self.problems))
        return [f"{self.n} {self.name}", self.call, _rc_text(self.expected), got, why]


def parse_steps(stdout: str) -> list[Step]:
    """The steps printed by a teaching guest (format in the module docstring).

    Raises ValueError when the text holds no step line at all (wrong guest, or a run that
    failed before its first step), naming the first lines it saw."""
    steps: list[Step] = []
    by_name: dict[str, Step] = {}
    for line in stdout.splitlines():
        m = _STEP.match(line)
        if m:
            rc = int(m["rc"])
            expect = int(m["expect"]) if m["expect"] is not None else None
            st = Step(len(steps) + 1, m["name"], m["detail"] or "", expect, rc)
            if expect is not None and expect != rc:
                st.problems = (f"expected rc={expect}",)
            steps.append(st)
            by_name[st.name] = st
            continue
        m = _WHY.match(line)
        if m and m["name"] in by_name:
            by_name[m["name"]].why = m["text"]
            continue
        m = _MISMATCH.match(line)
        if m and m["name"] in by_name:
            st = by_name[m["name"]]
            if m["text"] not in st.problems and not (st.problems and m["text"].startswith("expected rc=")):
                st.problems = (*st.problems, m["text"])
    if not steps:
        head = " / ".join(stdout.splitlines()[:3]) or "(no output)"
        raise ValueError(f"no 'step <name>: rc=<int>' line in the guest's output: {head}")
    return steps


def _call_text(rec: dict[str, Any]) -> str:
    return f"{rec['name']}({', '.join(str(a) for a in rec.get('args', []))})"


def trace_steps(trace: Any, instance: str,
                expected: Sequence[tuple[str, int | None, str]]) -> StepTable:
    """A :class:`StepTable` (titled ``instance``) pairing the hostcalls of ``instance`` in
    ``trace`` with ``expected`` entries ``(hostcall name, expected rc or None, why)``, in
    order.

    A call of another name than expected, a different rc, a missing call or an extra call
    is a problem of that step.  ValueError when ``expected`` is empty."""
    if not expected:
        raise ValueError("trace_steps needs at least one expected (call, rc, why) entry")
    calls = trace.hostcalls(instance)
    steps = []
    for i, (name, rc, why) in enumerate(expected):
        if i < len(calls):
            rec = calls[i]
            problems = []
            if rec["name"] != name:
                problems.append(f"expected a call of {name}")
            if rc is not None and rec["rc"] != rc:
                problems.append(f"expected rc={rc}")
            steps.append(Step(i + 1, name, _call_text(rec), rc, rec["rc"], why, tuple(problems)))
        else:
            steps.append(Step(i + 1, name, f"{name}(…)", rc, None, why, ("the guest never made this call",)))
    for j, rec in enumerate(calls[len(expected):], start=len(expected) + 1):
        steps.append(Step(j, rec["name"], _call_text(rec), None, rec["rc"], "",
                          ("a call the lesson did not expect",)))
    return StepTable(steps, instance)


_HEAD = ["step", "call", "expected", "got", "why"]


class StepTable:
    """Steps as a table: ``_repr_html_`` for notebooks, ``str()``/``repr()`` plain text.

    ``ok`` is True when every step holds; ``mismatches`` lists the steps that do not."""

    def __init__(self, steps: Iterable[Step], title: str = "") -> None:
        self.steps = list(steps)
        self.title = title

    @property
    def mismatches(self) -> list[Step]:
        return [s for s in self.steps if not s.ok]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        bad = len(self.mismatches)
        return f"{len(self.steps)} steps, {bad} mismatch{'es' if bad != 1 else ''}"

    def __getitem__(self, name: str) -> Step:
        """The step called ``name``; KeyError naming the steps otherwise."""
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"no step {name!r}; steps: {', '.join(s.name for s in self.steps)}")

    def text(self) -> str:
        """The table as aligned plain text, a ✗ before each mismatching step."""
        rows = [_HEAD] + [s.row() for s in self.steps]
        marks = [" "] + ["✗" if not s.ok else " " for s in self.steps]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [self.title] if self.title else []
        for mark, r in zip(marks, rows):
            lines.append(mark + " " + "  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
        lines.append(self.summary())
        return "\n".join(line.rstrip() for line in lines)

    __str__ = text

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        rows, styles = [], []
        for s in self.steps:
            cells = [html.escape(c) for c in s.row()]
            cells[1] = f"<code>{cells[1]}</code>"
            rows.append(cells)
            styles.append("" if s.ok else f"background:#fdecea;color:{tables.ERROR};font-weight:bold")
        caption = html.escape(f"{self.title} — {self.summary()}" if self.title else self.summary())
        return tables.table_html(_HEAD, rows, caption, nowrap=(0, 1, 2, 3), row_styles=styles)


def step_table(source: str | Iterable[Step], title: str = "") -> StepTable:
    """A :class:`StepTable` from a guest's stdout (parsed with :func:`parse_steps`) or
    from steps."""
    steps = parse_steps(source) if isinstance(source, str) else source
    return StepTable(steps, title)


class SideBySide:
    """A comparison table with a plain-text fallback: ``rows`` of strings under ``head``
    (default: call, Linux, spear_lab, why we differ).  ValueError when a row has the
    wrong number of cells."""

    def __init__(self, rows: Iterable[Sequence[str]],
                 head: Sequence[str] = ("call", "Linux epoll(7)", "spear_lab", "why we differ"),
                 title: str = "") -> None:
        self.head = [str(h) for h in head]
        self.rows = [[str(c) for c in row] for row in rows]
        self.title = title
        for row in self.rows:
            if len(row) != len(self.head):
                raise ValueError(f"row {row!r} has {len(row)} cells, the table has {len(self.head)} columns")

    def text(self) -> str:
        """Aligned plain text; the last column is not padded."""
        rows = [self.head] + self.rows
        k = len(self.head) - 1
        widths = [max(len(r[i]) for r in rows) for i in range(k)]
        lines = [self.title] if self.title else []
        for r in rows:
            lines.append(("  ".join(r[i].ljust(widths[i]) for i in range(k)) + "  " + r[k]).rstrip())
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        rows = [[html.escape(c) for c in row] for row in self.rows]
        for row in rows:
            row[0] = f"<code>{row[0]}</code>"
        return tables.table_html(self.head, rows, html.escape(self.title))
