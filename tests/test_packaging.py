"""The package list in pyproject.toml names every package in the tree.

setuptools ships only the packages listed under [tool.setuptools]; an editable install hides a missing
entry (the source folder is on the path), a plain `pip install .` does not. This test catches the gap
that a new sub-package (ltbench/<name>/__init__.py) would otherwise open.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _listed() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def _in_tree() -> set[str]:
    found = {"ltbench.methods"}  # methods/ is installed as ltbench.methods (package-dir)
    for init in (ROOT / "ltbench").rglob("__init__.py"):
        found.add(".".join(init.parent.relative_to(ROOT).parts))
    return found


def test_every_package_in_the_tree_is_listed() -> None:
    assert _in_tree() == _listed()


def test_methods_folder_maps_to_ltbench_methods() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["package-dir"]["ltbench.methods"] == "methods"
