"""Every name docs/API.md documents imports from the module its section names (the promised paths)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[1] / "docs" / "API.md"
SECTION = re.compile(r"^## .*\(`([\w.]+)`\)")
CALL = re.compile(r"`([A-Za-z_][\w.]*)\(")  # `name(` or `a.b.name(` inside a table's first cell


def documented() -> list[tuple[str, str]]:
    """(module, name) for each function named in the first column of a section's table."""
    out, module = [], None
    for line in API.read_text(encoding="utf-8").splitlines():
        header = SECTION.match(line)
        if header:
            module = header.group(1)
        elif module and line.startswith("| `"):
            first_cell = line.split("|")[1]
            out += [(module, name) for name in CALL.findall(first_cell)]
    return out


NAMES = documented()


def test_the_page_documents_the_promised_paths():
    assert ("ltbench.data", "class_sampling_probabilities") in NAMES
    assert len(NAMES) >= 20


@pytest.mark.parametrize(("module", "name"), NAMES, ids=[f"{m}:{n}" for m, n in NAMES])
def test_documented_name_imports(module, name):
    if "." in name:  # a full dotted path
        module, _, name = name.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))
