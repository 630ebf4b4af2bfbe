"""Every rule R1–R66 of docs/abi.md §14 is taught live in a lesson (issue 21).

A rule counts as taught when some notebook has a code cell tagged with it
(``metadata["spear"]["rules"]``, see notebooks/lessons/common.py) whose *stored* output
contains the rule's text, and the cell carries the nbval tag that makes ``make test``
re-execute it and compare.  Rules a lesson module lists in ``UNSHOWABLE`` still need such
a cell; their reason is reported.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
MANUAL = ROOT / "docs" / "abi.md"
CHECK_TAG = "nbval-check-output"


def manual_rules() -> list[str]:
    """The rule numbers of docs/abi.md §14 of the manual, in order."""
    text = MANUAL.read_text(encoding="utf-8")
    start = text.index("## 14. The acceptance rules")
    rules = re.findall(r"^- \*\*(R\d+)\*\*", text[start:], flags=re.MULTILINE)
    assert rules, "no rules found in §14 of docs/abi.md"
    return rules


def lessons() -> dict[str, str]:
    """notebook file -> lesson module name, as make_notebooks.py builds them."""
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        return dict(importlib.import_module("make_notebooks").LESSONS)
    finally:
        sys.path.remove(str(NOTEBOOKS))


def lesson_module(mod: str):
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        return importlib.import_module(f"lessons.{mod}")
    finally:
        sys.path.remove(str(NOTEBOOKS))


def output_text(cell) -> str:
    """Everything a reader sees of a code cell's stored outputs, as text."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            data = out.get("data", {})
            for mime in ("text/plain", "text/html", "text/markdown"):
                value = data.get(mime, "")
                parts.append("".join(value) if isinstance(value, list) else value)
        elif out.get("output_type") == "error":
            parts.append(f"ERROR {out.get('ename')}: {out.get('evalue')}")
    return "\n".join(parts)


def survey() -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, str]]:
    """(shown, broken, unshowable): rule -> places where it is shown; rule -> problems of
    tagged cells that do not show it; rule -> reason it cannot be shown live."""
    shown: dict[str, list[str]] = {}
    broken: dict[str, list[str]] = {}
    unshowable: dict[str, str] = {}
    for name, mod in lessons().items():
        unshowable.update(getattr(lesson_module(mod), "UNSHOWABLE", {}))
        path = NOTEBOOKS / name
        if not path.exists():
            continue
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            rules = cell.get("metadata", {}).get("spear", {}).get("rules", {})
            if not rules:
                continue
            where = f"{name} cell {cell.get('id')}"
            text = output_text(cell)
            for rule, want in rules.items():
                if CHECK_TAG not in cell.metadata.get("tags", []):
                    broken.setdefault(rule, []).append(f"{where}: no {CHECK_TAG} tag")
                elif not cell.get("outputs"):
                    broken.setdefault(rule, []).append(f"{where}: no stored output")
                elif any(o.get("output_type") == "error" for o in cell.outputs):
                    broken.setdefault(rule, []).append(f"{where}: the stored output is an error")
                elif want not in text:
                    broken.setdefault(rule, []).append(f"{where}: output lacks {want!r}")
                else:
                    shown.setdefault(rule, []).append(where)
    return shown, broken, unshowable


def test_the_manual_lists_r1_to_r66():
    assert manual_rules() == [f"R{i}" for i in range(1, 67)]


def test_every_rule_is_taught_live():
    shown, broken, unshowable = survey()
    missing = [r for r in manual_rules() if r not in shown]
    for rule, reason in sorted(unshowable.items(), key=lambda kv: int(kv[0][1:])):
        print(f"{rule}: not fully showable live — {reason}")
    lines = []
    for rule in missing:
        why = "; ".join(broken.get(rule, [])) or "no tagged cell in any notebook"
        lines.append(f"  {rule}: {why}")
    assert not missing, (f"{len(missing)} of {len(manual_rules())} rules not taught live:\n"
                         + "\n".join(lines))


def test_every_tagged_cell_shows_its_rules():
    """A tag is a promise: a tagged cell whose output lacks the text fails, even when the
    rule is shown elsewhere too."""
    _, broken, _ = survey()
    problems = [f"  {rule}: {p}" for rule, ps in sorted(broken.items(), key=lambda kv: int(kv[0][1:]))
                for p in ps]
    assert not problems, "tagged cells that do not show their rule:\n" + "\n".join(problems)


def test_unshowable_rules_have_a_reason_and_a_cell():
    shown, _, unshowable = survey()
    for rule, reason in unshowable.items():
        assert rule in manual_rules(), f"UNSHOWABLE names {rule!r}, not a rule of the manual"
        assert isinstance(reason, str) and len(reason) > 20, f"{rule}: give a real reason"
    without = [r for r in unshowable if r not in shown]
    assert not without, f"unshowable rules still need a cell showing what can be shown: {without}"


def test_tagged_cells_name_real_rules():
    known = set(manual_rules())
    for name in lessons():
        path = NOTEBOOKS / name
        if not path.exists():
            continue
        for cell in nbformat.read(path, as_version=4).cells:
            for rule in cell.get("metadata", {}).get("spear", {}).get("rules", {}):
                assert rule in known, f"{name} cell {cell.get('id')} names unknown rule {rule!r}"


def test_the_survey_can_fail(tmp_path):
    """The check itself: a tagged cell whose output lacks the text does not count."""
    from nbformat.v4 import new_code_cell, new_output

    cell = new_code_cell("1", metadata={"spear": {"rules": {"R1": "-EFAULT"}},
                                        "tags": [CHECK_TAG]})
    cell.outputs = [new_output("execute_result", data={"text/plain": "-ENOSPC"}, execution_count=1)]
    assert "-EFAULT" not in output_text(cell)
    cell.outputs = [new_output("stream", name="stdout", text="rc=-14 (-EFAULT)\n")]
    assert "-EFAULT" in output_text(cell)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
