"""The README's notebook example, pasted cell by cell into a fresh notebook in a folder
outside the checkout and run by a real kernel (nbclient), with no magics: every cell
runs, the figure renders as a picture, the result prints one line, and the live view is
replaced by its static snapshot when the session closes."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

README = Path(__file__).resolve().parents[1] / "README.md"
WIDGET = "application/vnd.jupyter.widget-view+json"


def readme_cells() -> list[str]:
    text = README.read_text()
    start = text.index("<!-- readme-notebook")
    end = text.index("\n## ", start)
    return re.findall(r"```python\n(.*?)```", text[start:end], re.S)


def test_the_readme_lists_the_cells():
    cells = readme_cells()
    assert len(cells) >= 5 and not any("%" in c.splitlines()[0] for c in cells if c)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in readme_cells()])
    folder = tmp_path_factory.mktemp("anywhere")
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def _outputs(nb, needle: str) -> list:
    cell = next(c for c in nb.cells if needle in c.source)
    return cell.outputs


def test_no_cell_fails(executed):
    errors = [o for c in executed.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors


def test_the_result_is_one_line(executed):
    out = [o for o in _outputs(executed, "await handle") if o.output_type == "execute_result"]
    text = out[0].data["text/plain"]
    assert text.startswith("<GuestResult realtime_asr: exit 0") and "\n" not in text.strip(), text


def test_the_figure_is_a_picture(executed):
    out = [o for o in _outputs(executed, "timeline_figure(") if o.output_type in ("execute_result", "display_data")]
    assert out and "image/png" in out[0].data, out
    assert "<Figure size" not in out[0].data.get("text/plain", "")


def test_the_live_view_became_a_snapshot_of_the_transcript(executed):
    out = [o for o in _outputs(executed, "TranscriptView(") if o.output_type in ("execute_result", "display_data")]
    assert out, "the view displayed nothing"
    data = out[0].data
    assert WIDGET not in data, "still a live widget after session.close()"
    html = data.get("text/html", "").lower()
    # the final transcript of the bundled recording (espeak-ng; Whisper tiny.en hears
    # "quick brown fox" as "round fast", so check the phrases it gets right)
    assert "lazy dog" in html and "call me back" in html and "station" in html, html[:500]


def test_the_status_line_says_the_guest_ended(executed):
    out = [o for o in _outputs(executed, "handle = session.start") if o.output_type in ("execute_result", "display_data")]
    assert out
    shown = out[0].data.get("text/html", "") + out[0].data.get("text/plain", "")
    assert "exit" in shown and "running" not in shown, shown
