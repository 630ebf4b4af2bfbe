"""Write every notebook (nbformat v4) from its source in ``notebooks/lessons/``.

    python notebooks/make_notebooks.py          # rewrite all of them next to this file
    python notebooks/make_notebooks.py 07_corpus_on_a_cluster.ipynb   # only the ones named

One module per lesson, ``lessons/nbNN.py``, holds its ``CELLS``.  Each notebook: short
cells, prose first, one idea per cell, a picture where it helps, and a final cell that
checks the notebook's claim with assertions (nbval --nbval-lax runs them unattended).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_notebook

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: notebook file -> lesson module (under ``lessons``)
LESSONS = {
    "01_epoll_tour.ipynb": "nb01",
    "02_backpressure.ipynb": "nb02",
    "03_realtime_asr.ipynb": "nb03",
    "04_live_microphone.ipynb": "nb04",
    "05_segmentation_compare.ipynb": "nb05",
    "06_segmentation_explorer.ipynb": "nb06",
    "07_corpus_on_a_cluster.ipynb": "nb07",
}


def cells(name: str) -> list:
    """The cells of notebook ``name`` (a key of :data:`LESSONS`)."""
    return importlib.import_module(f"lessons.{LESSONS[name]}").CELLS


def build(cell_list: list, prefix: str = "c") -> nbformat.NotebookNode:
    """A notebook of ``cell_list`` with stable cell ids (``prefix-NN``), so regenerating
    it changes only what the source changed."""
    nb = new_notebook(cells=cell_list)
    for i, cell in enumerate(nb.cells):
        cell.id = f"{prefix}-{i:02d}"
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> None:
    wanted = sys.argv[1:] or list(LESSONS)
    unknown = [n for n in wanted if n not in LESSONS]
    if unknown:
        raise SystemExit(f"unknown notebook(s) {unknown}; one of {list(LESSONS)}")
    for name in wanted:
        nb = build(cells(name), name[:2])
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote {name} ({len(nb.cells)} cells)")


if __name__ == "__main__":
    main()
