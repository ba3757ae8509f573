"""Only ltbench/rundir.py spells the names of the files in a run directory (issue 18, item 3).

Every other module reaches spec.json, final.json, failed.json, ... through RunDir's paths and readers, so a
change of layout, an atomic write or a validation on read happens in one place. The check walks the syntax
tree of every module of ltbench/ and methods/ and fails on a string constant that is one of those names (or
ends in "/<name>", as an f-string's literal part does); the bare words `lock` and `tensorboard` count only
where they build a path (`x / "lock"`, `Path(..., "lock")`, `os.path.join(..., "lock")`), since
"tensorboard" is also the tracker's name on the command line. Prose that mentions a name ("final.json is
damaged") is not a file name and passes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ltbench import rundir

ROOT = Path(__file__).resolve().parents[1]
OWNER = ROOT / "ltbench" / "rundir.py"
NAMED = {rundir.SPEC, rundir.ENV, rundir.METRICS, rundir.CHECKPOINT, rundir.SESSIONS, rundir.PREDICTIONS,
         rundir.FAILED, rundir.FINAL}
BARE = {rundir.LOCK, rundir.TENSORBOARD}
PATH_CALLS = {"Path", "PurePath", "join", "joinpath", "with_name"}

# (module path relative to the repository, the constant) -> why that module may spell it. Empty today: add an
# entry only with a reason a reviewer accepts, and the test below fails once the entry is no longer needed.
ALLOWED: dict[tuple[str, str], str] = {}


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def _is_bare(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value in BARE


def spelled_names(source: str) -> list[tuple[int, str]]:
    """(line, constant) of every run-file name the source spells outside RunDir."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            if value in NAMED or any(value.endswith("/" + name) for name in NAMED | BARE):
                found.append((node.lineno, value))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            found += [(side.lineno, side.value) for side in (node.left, node.right) if _is_bare(side)]
        elif isinstance(node, ast.Call) and _call_name(node.func) in PATH_CALLS:
            found += [(arg.lineno, arg.value) for arg in node.args if _is_bare(arg)]
    return found


def _sources() -> list[Path]:
    files = sorted((ROOT / "ltbench").rglob("*.py")) + sorted((ROOT / "methods").rglob("*.py"))
    return [f for f in files if f != OWNER]


def _spelled() -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        for line, value in spelled_names(path.read_text(encoding="utf-8")):
            out.setdefault((rel, value), []).append(line)
    return out


def test_only_rundir_spells_a_run_files_name():
    bad = [f"{rel}:{lines[0]}: {value!r} (use RunDir)" for (rel, value), lines in sorted(_spelled().items())
           if (rel, value) not in ALLOWED]
    assert not bad, "\n".join(bad)


def test_every_allowance_is_still_needed():
    assert not set(ALLOWED) - set(_spelled())


@pytest.mark.parametrize("source", [
    'p = run_dir / "final.json"',
    'read_json(f"{run_dir}/spec.json")',
    'names = ("last.pt", "metrics.jsonl")',
    'lock = Path(run_dir) / "lock"',
    'os.path.join(run_dir, "tensorboard")',
])
def test_the_check_sees_each_way_of_spelling_a_name(source):
    assert spelled_names(source)


@pytest.mark.parametrize("source", [
    'tracker = "tensorboard" if on else None',
    'raise ValueError(f"{path}: final.json is damaged")',
    'state = {"lock": held}',
])
def test_prose_and_other_meanings_pass(source):
    assert not spelled_names(source)
