"""One source for every notebook (issue 14): each .ipynb equals what
notebooks/make_notebooks.py builds from notebooks/lessons/, and the stored lessons
(``STORED = True``) carry the outputs of an execution."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"



def _load_maker():
    """notebooks/make_notebooks.py as a module (it puts notebooks/ on sys.path itself)."""
    spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOKS / "make_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MAKER = _load_maker()


@pytest.fixture(scope="module")
def maker():
    return MAKER


def _shape(cell) -> dict:
    """What the source decides about a cell: type, id, source, metadata."""
    return {"type": cell.cell_type, "id": cell.get("id"), "source": cell.source,
            "metadata": dict(cell.metadata)}


def test_every_notebook_file_has_a_lesson(maker):
    on_disk = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    assert on_disk <= set(maker.LESSONS), f"notebooks without a lesson module: {on_disk - set(maker.LESSONS)}"


@pytest.mark.parametrize("name", list(MAKER.LESSONS))
def test_notebook_equals_its_source(maker, name):
    path = NOTEBOOKS / name
    assert path.exists(), f"{name} missing: run python notebooks/make_notebooks.py {name}"
    on_disk = nbformat.read(path, as_version=4)
    built = maker.build(maker.cells(name), maker.prefix(name))
    assert len(on_disk.cells) == len(built.cells), f"{name}: cell count differs; regenerate it"
    for got, want in zip(on_disk.cells, built.cells):
        assert _shape(got) == _shape(want), (
            f"{name} cell {want.id} differs from notebooks/lessons/{maker.LESSONS[name]}.py; "
            f"regenerate with python notebooks/make_notebooks.py {name}")
    assert dict(on_disk.metadata) == dict(built.metadata), f"{name}: notebook metadata differs"
    if maker.stored(name):
        for cell in on_disk.cells:
            if cell.cell_type == "code":
                assert cell.execution_count is not None, f"{name} cell {cell.id}: not executed"
                assert not any(o.output_type == "error" for o in cell.outputs), (
                    f"{name} cell {cell.id}: stored output is an error")
    else:
        for cell in on_disk.cells:
            if cell.cell_type == "code":
                assert not cell.outputs, f"{name} cell {cell.id}: outputs in a lesson not STORED"
