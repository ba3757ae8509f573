"""No module under tests/ imports a test module (issue 16): helpers shared by several test modules live in
helper modules (tests/fakes.py, tests/reference.py, tests/bcl_helpers.py, tests/records.py), whose names
do not start with `test_`, so pytest does not collect them and importing one runs no other module's tests
or module-level set-up. Every import counts, also one inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def _is_test_module(name: str) -> bool:
    return name.split(".")[0].startswith("test_")


def imported_test_modules(source: str) -> list[str]:
    """The test modules `source` (a module directly under tests/) imports, in any of the import forms."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):  # import tests.test_x
            found += [a.name for a in node.names if a.name.startswith("tests.") and _is_test_module(a.name[6:])]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and (module == "tests" or module.startswith("tests.")):  # from tests.test_x import y
                inside = module[6:]
            elif node.level == 1:  # from .test_x import y
                inside = module
            else:
                continue
            if inside:
                found += [module] if _is_test_module(inside) else []
            else:  # from tests import test_x / from . import test_x
                found += [a.name for a in node.names if _is_test_module(a.name)]
    return found


@pytest.mark.parametrize("source", [
    "from tests.test_bcl import make_bcl",
    "from .test_bcl import make_bcl",
    "import tests.test_bcl",
    "import tests.test_bcl as tb",
    "from tests import test_bcl",
    "from . import test_bcl",
    "def f():\n    from tests.test_fashion_mnist import HAVE_DATA\n",
])
def test_every_import_form_of_a_test_module_is_found(source):
    assert len(imported_test_modules(source)) == 1


@pytest.mark.parametrize("source", [
    "from tests.fakes import FakeServices",
    "from .reference import TOL",
    "from tests.conftest import TINY",
    "from . import fakes",
    "import tests",
    "from ltbench.test_util import x",
])
def test_helper_and_outside_imports_are_allowed(source):
    assert imported_test_modules(source) == []


def test_no_module_under_tests_imports_a_test_module():
    modules = sorted(TESTS.glob("*.py"))
    assert TESTS / "test_bcl.py" in modules  # the scan sees the test modules
    offenders = {p.name: found for p in modules if (found := imported_test_modules(p.read_text(encoding="utf-8")))}
    assert offenders == {}, "move shared helpers into a helper module under tests/ (not named test_*)"
