"""pyproject.toml and environment.yml list the same dependencies."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from the PyPI names
CONDA_TO_PYPI = {"python-sounddevice": "sounddevice", "python-build": "build"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _yaml_deps() -> set[str]:
    names = set()
    text = (ROOT / "environment.yml").read_text()
    deps = text[text.index("dependencies:"):]
    for line in deps.splitlines():
        m = re.match(r"^\s*-\s+(?!pip:)([^#\s]+)", line)
        if not m:
            continue
        item = m.group(1)
        if item in ("-e", "pip") or item.startswith((".", "-")):
            continue
        name = _name(item)
        if name == "python":
            continue
        names.add(CONDA_TO_PYPI.get(name, name))
    return names


def _make_extras() -> list[str]:
    """The extras of the Makefile's ``pip install -e '.[...]'`` line."""
    m = re.search(r"pip install[^\n]*-e '\.\[([^\]]+)\]'", (ROOT / "Makefile").read_text())
    assert m, "Makefile installs no extras"
    return [e.strip() for e in m.group(1).split(",")]


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in _make_extras():  # the extras `make` installs
        wanted |= {_name(r) for r in project["optional-dependencies"][extra]}
    assert _yaml_deps() == wanted


def test_environment_installs_the_package():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s+-\s+-e \.\s*$", text, re.M)
