"""Shared pieces of the lesson sources: cell constructors, the setup cells, the conventions.

Conventions every lesson follows (``tests/test_lessons_coverage.py`` and
``tests/test_notebooks_source.py`` check them):

1. **Tagged cells.** ``code(src, rules={"R18": "-ENOSPC", "R19": "cell=8"})`` marks a cell
   as the demonstration of rules R18 and R19 of ``docs/abi.md`` §14.  Each rule maps to a
   text that the cell's stored output must contain — the visible result (a return value,
   an errno name, a written-back length, a record, a status field).  The marks are stored
   as ``cell.metadata["spear"] = {"rules": {...}}``.
2. **Stable output.** A tagged cell also gets the nbval tag ``nbval-check-output``
   (``cell.metadata["tags"]``), so nbval (``--nbval-lax`` in ``make test``) re-executes it
   and compares its output with the stored one.  Its output must therefore be
   deterministic: no addresses, timings, ids or clock-dependent counts.  An untagged cell
   may ask for the same comparison with ``code(src, check=True)``.
3. **Stored outputs.** A lesson module with ``STORED = True`` is deterministic (stub
   transport, Python host, WAT or C guests; no server, no clock-dependent numbers).
   ``make_notebooks.py`` executes it with nbclient and writes the notebook WITH its
   outputs; regenerating it gives the same file.  Every tagged cell must live in such a
   lesson, because the coverage test reads the stored outputs.
4. **Unshowable rules.** A lesson module may define ``UNSHOWABLE = {"R65": "why"}`` for a
   rule that cannot be shown live in a notebook (hardware, network, a long stress test).
   The rule still needs a tagged cell showing what can be shown (a figure of the stress
   run, the offline path); the reason is printed by the coverage test.
5. **Setup.** Stored lessons start with :data:`SETUP_ABI` (the public names and a
   ``show(call, result)`` helper printing ``call -> result (-ERRNO)``).
6. **Imports.** Lessons import only the public face: ``spear_lab``, ``spear_lab.views``,
   ``spear_lab.explore``.  No ``%matplotlib`` magic.
"""

from __future__ import annotations

import re

from nbformat.v4 import new_code_cell, new_markdown_cell

#: the nbval 0.11 cell tag that makes ``--nbval-lax`` compare a cell's output
CHECK_TAG = "nbval-check-output"
#: a rule number as written in docs/abi.md §14
RULE_RE = re.compile(r"R([1-9][0-9]?)$")

#: setup cell of the stored (deterministic) lessons: the public face only, no magic
SETUP_ABI = '''\
import logging

import spear_lab
from spear_lab import (EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EpollOp, Errno, FdCtl, Host,
                       RtasrCtl, errno_name, mask_names)

logging.getLogger("spear_lab").setLevel(logging.CRITICAL)


def show(call, result):
    """Print one hostcall and what it gave: errno names for negative numbers, bit names
    for the records of a wait, text for JSON bytes."""
    if isinstance(result, int) and result < 0:
        result = f"{result} ({errno_name(result)})"
    elif isinstance(result, list):
        result = "[" + ", ".join(f"(fd {fd}, {'|'.join(mask_names(ev)) or '0'})"
                                 for fd, ev in result) + "]"
    elif isinstance(result, bytes):
        result = result.decode()
    print(f"{call:<46} -> {result}")'''


def md(text: str):
    """A markdown cell (surrounding blank lines stripped)."""
    return new_markdown_cell(text.strip("\n"))


def code(text: str, rules: dict[str, str] | None = None, check: bool = False):
    """A code cell; ``rules`` maps rule numbers (``"R18"``) to the text its output must
    contain (see the module docstring).  ``check`` (implied by ``rules``) adds the nbval
    tag that compares its output.  ValueError for a malformed rule number or empty text."""
    cell = new_code_cell(text.strip("\n"))
    if rules:
        for rule, want in rules.items():
            if not RULE_RE.match(rule) or not 1 <= int(rule[1:]) <= 66:
                raise ValueError(f"not a rule of docs/abi.md §14: {rule!r}")
            if not isinstance(want, str) or not want:
                raise ValueError(f"rule {rule}: the expected output text must be a non-empty str")
        cell.metadata["spear"] = {"rules": dict(rules)}
    if rules or check:
        cell.metadata["tags"] = [CHECK_TAG]
    return cell
