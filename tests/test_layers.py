"""The package's import structure: no circles, and every import points down the layers.

The layers, lowest first (the README's "Layout", after design.md §2).  A module may import
its own layer and the layers below it; ``spear_lab/__init__.py`` (the public face) may
import anything.  Imports inside functions count as much as those at the top: a lazy
import is still a dependency.  Imports under ``if TYPE_CHECKING:`` count for the layers
(a type names its layer too) but not for circles (nothing runs them).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "spear_lab"

#: Layer of each top-level module or package, lowest first.
LAYERS: list[tuple[str, ...]] = [
    ("data", "guests", "testaudio"),  # bundled files, test speech: import nothing of ours
    ("abi",),
    ("fds",),
    ("host", "api"),  # api: Python wrappers over a Host's hostcalls
    ("trace",),
    ("server",),
    ("audio",),
    ("transports",),
    ("runtime",),
    ("views",),
    ("session",),
    ("explore",),
    ("cli", "cliutil"),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _target(module: str, is_package: bool, node: ast.ImportFrom, alias: str) -> str:
    """The spear_lab module an ``from … import alias`` reaches."""
    if node.level:
        base = module.split(".")
        if not is_package:
            base.pop()
        base = base[:len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    full = f"{source}.{alias}"
    return full if full in MODULES else source


def imports(module: str) -> list[tuple[str, int, bool]]:
    """``(imported module, line, type-only)`` for every spear_lab import of ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for sub in child.body:
                    visit_one(sub, True)
                for sub in child.orelse:
                    visit_one(sub, typing_only)
            else:
                visit_one(child, typing_only)

    def visit_one(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "spear_lab":
                    found.append((alias.name, node.lineno, typing_only))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                target = _target(module, path.name == "__init__.py", node, alias.name)
                if target.split(".")[0] == "spear_lab":
                    found.append((target, node.lineno, typing_only))
        visit(node, typing_only)

    visit(tree, False)
    out = []
    for target, line, typing_only in found:
        while target not in MODULES and "." in target:
            target = target.rsplit(".", 1)[0]
        out.append((target, line, typing_only))
    return out


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_has_a_layer():
    unplaced = sorted({layer(m) for m in MODULES if layer(m) is not None and layer(m) not in RANK})
    assert not unplaced, f"top-level modules without a layer in LAYERS: {unplaced}"


def test_imports_point_down_the_layers():
    upward = []
    for module in MODULES:
        own = layer(module)
        if own is None:  # spear_lab/__init__.py: the public face
            continue
        for target, line, _ in imports(module):
            other = layer(target)
            if other is not None and RANK[other] > RANK[own]:
                upward.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {module} imports {target} "
                              f"({own} is below {other})")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_no_import_circles():
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        for target, _, typing_only in imports(module):
            # a package's __init__ re-exporting its modules is not a circle with them
            if not typing_only and target != module and not module.startswith(target + "."):
                graph.setdefault(module, set()).add(target)
    circles = _circles(graph)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_checker_sees_a_lazy_upward_import_and_a_circle(tmp_path):
    """The checks can fail: a function-level upward import and a two-module circle."""
    graph = {"spear_lab.a": {"spear_lab.b"}, "spear_lab.b": {"spear_lab.a"}}
    assert _circles(graph) == [["spear_lab.a", "spear_lab.b"]]
    src = "def f():\n    from ..views.html import trace_html\n"
    tree = ast.parse(src)
    node = tree.body[0].body[0]
    assert _target("spear_lab.host.host", False, node, "trace_html") == "spear_lab.views.html"
    assert RANK["views"] > RANK["host"]


def test_the_readme_layout_lists_the_layers_in_order():
    readme = (ROOT / "README.md").read_text()
    lines = [ln.split()[0] for ln in readme.splitlines() if ln.startswith("spear_lab.")]
    named = [ln.split(".", 1)[1] for ln in lines]
    order = [name for names in LAYERS for name in names if name in named]
    assert named, "README has no layout block of spear_lab.<layer> lines"
    assert named == order[::-1], f"README layout {named} is not the layer order top-down {order[::-1]}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.count(".") >= 1))
def test_no_module_is_over_450_lines(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= 450, f"{MODULES[module].relative_to(ROOT)} has {lines} lines"
