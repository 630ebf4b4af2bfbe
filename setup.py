"""Package layout that pyproject.toml cannot express: guests/ ships inside the package.

Everything else (metadata, dependencies, package data) lives in pyproject.toml.  The
checkout's ``guests/`` directory (SDK header, guest sources, Makefile, prebuilt .wasm) is
mapped onto the data package ``spear_lab.guests.sdk``, so wheels, sdists and editable
installs all find it with ``importlib.resources`` (see ``spear_lab/guests``).
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

SDK = "spear_lab.guests.sdk"
HERE = Path(__file__).resolve().parent


def sdk_packages() -> list[str]:
    """``spear_lab.guests.sdk`` and one data sub-package per directory under guests/."""
    names = [SDK]
    for d in sorted(p for p in (HERE / "guests").rglob("*") if p.is_dir()):
        rel = d.relative_to(HERE / "guests")
        if all(part.isidentifier() and part != "__pycache__" for part in rel.parts):
            names.append(".".join((SDK, *rel.parts)))
    return names


setup(
    packages=find_namespace_packages(include=["spear_lab", "spear_lab.*"],
                                     exclude=["*.__pycache__"]) + sdk_packages(),
    package_dir={SDK: "guests"},
)
