"""Write every notebook (nbformat v4) from its source in ``notebooks/lessons/``.

    python notebooks/make_notebooks.py          # rewrite all of them next to this file
    python notebooks/make_notebooks.py 07_corpus_on_a_cluster.ipynb   # only the ones named
    python notebooks/make_notebooks.py --no-execute 01b_fd_table.ipynb  # skip stored outputs

One module per lesson, ``lessons/nbNN.py``, holds its ``CELLS``.  Each notebook: short
cells, prose first, one idea per cell, a picture where it helps, and a final cell that
checks the notebook's claim with assertions (nbval --nbval-lax runs them unattended).

A lesson whose module says ``STORED = True`` is deterministic: it is executed here with
nbclient (in this interpreter's environment, from the repository root's ``notebooks/``
directory) and written with its outputs, so it reads on GitHub; see the conventions in
``lessons/common.py``.  Without ``--execute`` (the default is on) such a lesson is not
written at all, so a stored notebook never loses its outputs by accident.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_notebook

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: notebook file -> lesson module (under ``lessons``), in reading order
LESSONS = {
    "01_epoll_tour.ipynb": "nb01",
    "01b_fd_table.ipynb": "nb01b",
    "01c_epoll_basics.ipynb": "nb01c",
    "01d_epoll_edge_cases.ipynb": "nb01d",
    "01e_fd_ctl_log_and_memory.ipynb": "nb01e",
    "02_backpressure.ipynb": "nb02",
    "02b_rtasr_states.ipynb": "nb02b",
    "02c_mic_fds.ipynb": "nb02c",
    "03_realtime_asr.ipynb": "nb03",
    "03b_rtasr_websocket.ipynb": "nb03b",
    "04_live_microphone.ipynb": "nb04",
    "05_segmentation_compare.ipynb": "nb05",
    "05b_segmentation_rules.ipynb": "nb05b",
    "06_segmentation_explorer.ipynb": "nb06",
    "07_corpus_on_a_cluster.ipynb": "nb07",
}
#: seconds one cell may take when a stored lesson is executed
CELL_TIMEOUT = 300


def module(name: str):
    """The lesson module of notebook ``name`` (a key of :data:`LESSONS`)."""
    return importlib.import_module(f"lessons.{LESSONS[name]}")


def cells(name: str) -> list:
    """The cells of notebook ``name`` (a key of :data:`LESSONS`)."""
    return module(name).CELLS


def stored(name: str) -> bool:
    """True when notebook ``name`` is written with its outputs (``STORED = True``)."""
    return bool(getattr(module(name), "STORED", False))


def prefix(name: str) -> str:
    """The cell-id prefix of notebook ``name``: its number, e.g. ``01b``."""
    return name.split("_", 1)[0]


def build(cell_list: list, prefix: str = "c") -> nbformat.NotebookNode:
    """A notebook of ``cell_list`` with stable cell ids (``prefix-NN``), so regenerating
    it changes only what the source changed."""
    nb = new_notebook(cells=[nbformat.from_dict(c) for c in cell_list])
    for i, cell in enumerate(nb.cells):
        cell.id = f"{prefix}-{i:02d}"
    nb.metadata = nbformat.from_dict(METADATA)
    return nb


METADATA = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}


def execute(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Run ``nb`` with nbclient in this environment (cwd ``notebooks/``); keep only what
    is deterministic: outputs and execution counts, not timings or kernel versions."""
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(HERE)}})
    client.execute()
    nb.metadata = nbformat.from_dict(METADATA)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = coalesce_streams(cell.outputs)
    return nb


def coalesce_streams(outputs: list) -> list:
    """Merge consecutive stream outputs of the same name: how the kernel chunks a cell's
    prints depends on timing, the text does not."""
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (out.output_type == "stream" and prev is not None and prev.output_type == "stream"
                and prev.name == out.name):
            prev.text += out.text
        else:
            merged.append(out)
    return merged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write the notebooks from notebooks/lessons/")
    parser.add_argument("names", nargs="*", help="notebook files (default: all)")
    parser.add_argument("--execute", action=argparse.BooleanOptionalAction, default=True,
                        help="execute the STORED lessons and write their outputs (default on)")
    args = parser.parse_args(argv)
    wanted = args.names or list(LESSONS)
    unknown = [n for n in wanted if n not in LESSONS]
    if unknown:
        raise SystemExit(f"unknown notebook(s) {unknown}; one of {list(LESSONS)}")
    for name in wanted:
        nb = build(cells(name), prefix(name))
        if stored(name):
            if not args.execute:
                print(f"skipped {name}: a stored lesson is written only with --execute")
                continue
            nb = execute(nb)
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote {name} ({len(nb.cells)} cells{', with outputs' if stored(name) else ''})")


if __name__ == "__main__":
    main()
