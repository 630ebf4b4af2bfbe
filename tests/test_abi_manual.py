"""docs/abi.md, the ABI manual, stays complete and agrees with the code.

Checked here: every import of ``guests/include/spear.h`` and of the linker has a section
with its wasm signature; every errno a hostcall can return is documented; the
"Constant | Value" tables equal ``spear_lab.abi`` (and the C header); a few JSON
documents equal what a Host produces; the rule list is exactly R1..R66 in order, each
pointing at a section that exists; every in-page link resolves; the Python example's
commented results are what the Host returns; the C example compiles against spear.h.

Each checker returns a list of problems, and the ``*_catches_*`` tests feed it a broken
copy of the manual to show that it fails when the manual drifts.
"""

from __future__ import annotations

import ast
import enum
import importlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from spear_lab.abi import constants as C
from spear_lab.runtime.linker import SIGNATURES

ROOT = Path(__file__).resolve().parents[1]
MANUAL = ROOT / "docs" / "abi.md"
HEADER = ROOT / "guests" / "include" / "spear.h"
RULES = 66


@pytest.fixture(scope="module")
def text() -> str:
    return MANUAL.read_text(encoding="utf-8")


# -- parsing the manual ----------------------------------------------------------------


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for no, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append((no, line))
    return out


def code_blocks(text: str, lang: str | None = None) -> list[str]:
    """Contents of fenced code blocks (of language ``lang`` when given), in order."""
    blocks, current, fence_lang = [], None, None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            if current is None:
                current, fence_lang = [], stripped[3:].strip()
            else:
                if lang is None or fence_lang == lang:
                    blocks.append("\n".join(current))
                current = None
            continue
        if current is not None:
            current.append(line)
    return blocks


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces → '-'."""
    s = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return s.replace(" ", "-")


HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?\s")


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of every heading outside code blocks."""
    out = []
    for _, line in prose_lines(text):
        m = HEADING.match(line)
        if m:
            out.append((len(m.group(1)), m.group(2)))
    return out


def sections(text: str) -> dict[str, str]:
    """Heading title → the text up to the next heading of the same or a higher level."""
    lines = text.splitlines()
    marks, fenced = [], False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := HEADING.match(line)):
            marks.append((i, len(m.group(1)), m.group(2)))
    out = {}
    for k, (i, level, title) in enumerate(marks):
        end = len(lines)
        for j, lvl, _ in marks[k + 1:]:
            if lvl <= level:
                end = j
                break
        out[title] = "\n".join(lines[i + 1:end])
    return out


def section_of(text: str, name: str) -> str | None:
    """The body of the section whose heading is ``N.M `name` `` (or just `` `name` ``)."""
    want = re.compile(r"^(?:\d+(?:\.\d+)*\.?\s+)?`" + re.escape(name) + r"`$")
    for title, body in sections(text).items():
        if want.match(title):
            return body
    return None


def constant_rows(text: str) -> list[tuple[str, str, str, int]]:
    """Rows of every table whose header starts ``| Constant | Value |``:
    (python name, value text, C name or '', manual line)."""
    rows, in_table = [], False
    for no, line in prose_lines(text):
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            in_table = False
            continue
        if cells[:2] == ["Constant", "Value"]:
            in_table = True
            continue
        if not in_table or set(line.replace("|", "").strip()) <= set("-: "):
            continue
        py = cells[0].strip("`")
        cname = cells[2].strip("`") if len(cells) > 2 and cells[2] not in ("—", "-", "") else ""
        rows.append((py, cells[1], cname, no))
    return rows


def resolve(name: str):
    """``Errno.EAGAIN`` / ``FIRST_FD`` in spear_lab.abi.constants, or a dotted
    ``spear_lab.module.NAME``."""
    if name.startswith("spear_lab."):
        module, _, attr = name.rpartition(".")
        return getattr(importlib.import_module(module), attr)
    obj = C
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def header_values() -> dict[str, int]:
    """Every ``NAME = number`` enum member and ``#define NAME number`` of spear.h."""
    src = HEADER.read_text(encoding="utf-8")
    pairs = re.findall(r"\b([A-Z][A-Z0-9_]+)\s*=\s*(-?(?:0x[0-9a-fA-F]+|\d+))\b", src)
    pairs += re.findall(r"^#define\s+([A-Z][A-Z0-9_]+)\s+(-?(?:0x[0-9a-fA-F]+|\d+))\s*$", src, re.MULTILINE)
    return {k: int(v, 0) for k, v in pairs}


def sdk_imports() -> list[str]:
    """Import names declared in spear.h (``SPEAR_IMPORT("x")`` or ``import_name("x")``)."""
    src = HEADER.read_text(encoding="utf-8")
    return sorted(set(re.findall(r'\b(?:SPEAR_IMPORT|import_name)\(\s*"([^"]+)"\s*\)', src)))


# -- checkers (each returns the list of problems) ----------------------------------------


def problems_imports(text: str, names: list[str]) -> list[str]:
    return [f"no section `### N.M `{n}`` in docs/abi.md" for n in names if section_of(text, n) is None]


WASM = re.compile(r"\*\*Wasm:\*\*\s*`(\w+)\(([^)]*)\)\s*->\s*(\(\)|i32|i64)`")


def problems_signatures(text: str) -> list[str]:
    out = []
    for name, (params, results) in SIGNATURES.items():
        body = section_of(text, name)
        if body is None:
            out.append(f"{name}: no section")
            continue
        m = WASM.search(body)
        if m is None or m.group(1) != name:
            out.append(f"{name}: no '**Wasm:** `{name}(...) -> ...`' line in its section")
            continue
        got = [p.split(":")[-1].strip() for p in m.group(2).split(",") if p.strip()]
        want = [str(t) for t in params]
        result = [] if m.group(3) == "()" else [m.group(3)]
        if got != want or result != [str(t) for t in results]:
            out.append(f"{name}: manual says ({', '.join(got)}) -> {m.group(3)}, the linker "
                       f"defines ({', '.join(want)}) -> {[str(t) for t in results] or '()'}")
    return out


#: Every enum whose members the manual must list in a "Constant | Value" table.
TABLED = (C.Errno, C.EpollOp, C.EpollEvent, C.FdCtl, C.RtasrCtl, C.MicCtl, C.LogLevel)


def problems_constants(text: str) -> list[str]:
    out, seen = [], set()
    cvals = header_values()
    for py, value, cname, no in constant_rows(text):
        try:
            actual = int(resolve(py))
        except (AttributeError, ImportError, TypeError, ValueError):
            out.append(f"line {no}: {py} is not a constant of spear_lab.abi")
            continue
        try:
            documented = int(value, 0)
        except ValueError:
            out.append(f"line {no}: {py}: value {value!r} is not a number")
            continue
        if documented != actual:
            out.append(f"line {no}: {py} is {actual:#x} in the code, {value} in the manual")
        if cname and cvals.get(cname) != actual:
            out.append(f"line {no}: {cname} in spear.h is {cvals.get(cname)}, {py} is {actual}")
        seen.add(py)
    for cls in TABLED:
        for member, val in cls.__members__.items():
            if val == 0 and isinstance(val, enum.IntFlag):
                continue
            if f"{cls.__name__}.{member}" not in seen:
                out.append(f"{cls.__name__}.{member} ({int(val)}) is in no 'Constant | Value' table")
    return out


RULE = re.compile(r"^- \*\*R(\d+)\*\*\s+(.*)$")
SECTION_LINK = re.compile(r"\[§(\d+(?:\.\d+)*)\]\(#([^)]+)\)")


def problems_rules(text: str) -> list[str]:
    out = []
    numbered = {}
    for level, title in headings(text):
        m = NUMBER.match(title)
        if m:
            numbered[slug(title)] = m.group(1)
    rules = [(int(m.group(1)), m.group(2)) for _, line in prose_lines(text) if (m := RULE.match(line))]
    if [n for n, _ in rules] != list(range(1, RULES + 1)):
        out.append(f"rules are {[n for n, _ in rules]}, not R1..R{RULES} in order")
    for n, body in rules:
        sentence = SECTION_LINK.sub("", body).strip(" —")
        if len(sentence.split()) < 6:
            out.append(f"R{n}: no sentence")
        links = SECTION_LINK.findall(body)
        if not links:
            out.append(f"R{n}: no [§N.M](#anchor) link to the section that explains it")
        for number, anchor in links:
            if numbered.get(anchor) != number:
                out.append(f"R{n}: §{number} links to #{anchor}, which is section "
                           f"{numbered.get(anchor, 'nothing')}")
    return out


def problems_links(text: str) -> list[str]:
    anchors = {slug(t) for _, t in headings(text)}
    return [f"line {no}: link #{a} matches no heading"
            for no, line in prose_lines(text) for a in re.findall(r"\]\(#([^)]+)\)", line)
            if a not in anchors]


def problems_tables(text: str) -> list[str]:
    """Rows whose cell count differs from their table's header (a stray ``|``)."""
    out, table = [], []
    for no, line in prose_lines(text) + [(0, "")]:
        if line.startswith("|"):
            table.append((no, line))
            continue
        for row_no, row in table[1:]:
            if row.count("|") != table[0][1].count("|"):
                out.append(f"line {row_no}: {row.count('|') - 1} cells, the header has "
                           f"{table[0][1].count('|') - 1}")
        table = []
    return out


def returned_errnos() -> set[str]:
    """Errno names the host code returns negated (``-Errno.X``)."""
    names = set()
    for path in (ROOT / "spear_lab").rglob("*.py"):
        names |= set(re.findall(r"-\s*Errno\.([A-Z]+)\b", path.read_text(encoding="utf-8")))
    return names


def problems_errnos(text: str, names: set[str]) -> list[str]:
    hostcall_text = "\n".join(
        body for title, body in sections(text).items()
        if re.match(r"^\d+\.\d+\s+`[a-z_0-9]+`$", title))
    out = []
    for name in sorted(names):
        if f"-{name}" not in hostcall_text:
            out.append(f"-{name} is returned by the host but no hostcall section mentions it")
    return out


# -- the manual as it is ----------------------------------------------------------------


def test_every_sdk_import_has_a_section(text):
    names = sdk_imports()
    assert len(names) >= 19 and {"spear_epoll_wait", "rtasr_read", "mic_ctl", "log"} <= set(names)
    assert problems_imports(text, names) == []


def test_every_linked_import_has_a_section_with_its_wasm_signature(text):
    assert set(sdk_imports()) <= set(SIGNATURES), "spear.h declares an import the host does not link"
    assert problems_signatures(text) == []


def test_constant_tables_equal_the_code_and_the_header(text):
    rows = constant_rows(text)
    assert len(rows) >= 45
    assert problems_constants(text) == []


def test_every_errno_a_hostcall_returns_is_documented(text):
    names = returned_errnos()
    assert {"EBADF", "EAGAIN", "EFAULT", "EINVAL", "ENOSPC", "EIO", "EPIPE", "ENOSYS"} <= names
    assert problems_errnos(text, names) == []
    documented = {py.split(".")[1] for py, *_ in constant_rows(text) if py.startswith("Errno.")}
    assert names <= documented


def test_rules_are_r1_to_r66_in_order_each_with_a_section(text):
    assert problems_rules(text) == []


def test_every_link_in_the_page_resolves(text):
    assert problems_links(text) == []


def test_every_table_row_has_the_cells_of_its_header(text):
    assert problems_tables(text) == []


def test_state_kind_and_flag_names_are_spelled_as_in_the_code(text):
    for name in [s.value for s in C.RtasrState] + [k.value for k in C.FdKind]:
        assert f"`{name}`" in text, name
    order = ", ".join(f"`{name}`" for _, name in C.POLL_MASK_NAMES)
    assert f"in the order {order}" in " ".join(text.split()), "poll_mask order"
    assert '"O_NONBLOCK"' in text


def test_json_documents_in_the_manual_are_what_a_host_writes(text, host):
    asr, mic = host.rtasr_create(), host.mic_create()
    documents = {
        "rtasr GET_STATUS": host.rtasr_ctl(asr, C.RtasrCtl.GET_STATUS),
        "rtasr GET_AUTOFLUSH": host.rtasr_ctl(asr, C.RtasrCtl.GET_AUTOFLUSH),
        "mic GET_STATUS": host.mic_ctl(mic, C.MicCtl.GET_STATUS),
        "fd GET_STATUS": host.spear_fd_ctl(asr, C.FdCtl.GET_STATUS),
    }
    blocks = {b.strip() for b in code_blocks(text, "json")}
    for what, doc in documents.items():
        assert isinstance(doc, bytes), what
        assert doc.decode() in blocks, f"docs/abi.md shows no ```json block equal to {what}: {doc.decode()}"


_COMMENT_VALUE = re.compile(r"^#\s*(-?\d+|\[.*?\](?=:|\s|$)|b'[^']*')")


def run_commented(code: str, ns: dict) -> int:
    """Run ``code`` statement by statement; where a statement ends with a comment that
    starts with a value (``# 16``, ``# [(1001, 4)]: ...``), check the statement's value.
    Returns how many were checked."""
    checked = 0
    lines = code.splitlines()
    for stmt in ast.parse(code).body:
        tail = lines[stmt.end_lineno - 1][stmt.end_col_offset:].strip()
        if isinstance(stmt, ast.Expr):
            value = eval(compile(ast.Expression(stmt.value), "docs/abi.md", "eval"), ns)
        else:
            # running the manual's own example is the point of this check
            exec(compile(ast.Module([stmt], []), "docs/abi.md", "exec"), ns)  # noqa: S102
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else None
            value = ns[target.id] if isinstance(target, ast.Name) else None
        m = _COMMENT_VALUE.match(tail)
        if not m:
            continue
        try:
            expected = eval(m.group(1), ns)
        except SyntaxError:  # e.g. an abbreviated bytes literal with "…"
            continue
        source = ast.get_source_segment(code, stmt)
        assert value == expected, f"docs/abi.md example: {source} gives {value!r}, the comment says {tail}"
        checked += 1
    return checked


def test_python_examples_give_the_results_their_comments_claim(text):
    start = text.index("### 11.1")
    blocks = code_blocks(text[start:text.index("### 11.2")], "python")
    assert len(blocks) >= 2
    ns: dict = {}
    checked = 0
    try:
        for block in blocks:
            checked += run_commented(block, ns)
    finally:
        host = ns.get("host")
        if host is not None:
            host.shutdown()
    assert checked >= 15


def test_c_example_compiles_against_the_sdk(text, tmp_path):
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang not installed")
    start = text.index("### 11.2")
    source = code_blocks(text[start:], "c")[0]
    src = tmp_path / "example.c"
    src.write_text(source, encoding="utf-8")
    proc = subprocess.run(
        [clang, "--target=wasm32-wasi", "-O2", "-Wall", "-Werror", f"-I{HEADER.parent}",
         "-o", str(tmp_path / "example.wasm"), str(src)],
        check=False, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and ("wasi" in proc.stderr and "not found" in proc.stderr):
        pytest.skip("no wasi sysroot")
    assert proc.returncode == 0, proc.stderr


# -- the checkers fail on a broken manual ------------------------------------------------


def test_imports_check_catches_a_missing_section(text):
    broken = text.replace("### 3.8 `spear_epoll_wait`", "### 3.8 Waiting")
    assert problems_imports(broken, ["spear_epoll_wait"]) != []
    assert problems_signatures(broken) != []


def test_signature_check_catches_a_wrong_arity(text):
    broken = text.replace("`rtasr_write(fd: i32, buf_ptr: i32, buf_len: i32) -> i32`",
                          "`rtasr_write(fd: i32, buf_ptr: i32) -> i32`")
    assert broken != text
    assert any("rtasr_write" in p for p in problems_signatures(broken))


def test_constants_check_catches_a_wrong_number_and_a_missing_row(text):
    wrong = text.replace("| `EpollEvent.HUP` | 0x010 |", "| `EpollEvent.HUP` | 0x020 |")
    assert wrong != text
    assert any("EpollEvent.HUP" in p for p in problems_constants(wrong))
    missing = "\n".join(l for l in text.splitlines() if not l.startswith("| `RtasrCtl.CLEAR`"))
    assert any("RtasrCtl.CLEAR" in p for p in problems_constants(missing))


def test_rules_check_catches_a_gap_a_swap_and_a_bad_section(text):
    gap = "\n".join(l for l in text.splitlines() if not l.startswith("- **R40** "))
    assert problems_rules(gap) != []
    swapped = text.replace("- **R13** ", "- **R99** ", 1)
    assert problems_rules(swapped) != []
    bad = text.replace("[§3.7](#37-spear_epoll_ctl)", "[§3.9](#37-spear_epoll_ctl)", 1)
    assert bad != text and problems_rules(bad) != []


def test_links_and_tables_checks_catch_breakage(text):
    assert problems_links(text.replace("(#38-spear_epoll_wait)", "(#38-epoll-wait)", 1)) != []
    row = "| `EpollOp.DEL` | 3 |"
    assert row in text
    assert problems_tables(text.replace(row, "| `EpollOp.DEL` | 3 | `a|b` |", 1)) != []


def test_errno_check_catches_an_undocumented_errno(text):
    assert problems_errnos(text, {"EPIPE"}) == []
    assert problems_errnos(text.replace("-EPIPE", "an error"), {"EPIPE"}) != []


def test_commented_example_check_catches_a_wrong_result():
    with pytest.raises(AssertionError):
        run_commented("x = 1 + 1  # 3", {})
