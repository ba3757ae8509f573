"""The sweep library without the CLI: launcher options, the Launcher interface, a quiet sweep's outcome."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ltbench.errors import LtbenchError
from ltbench.grid import load_grid
from ltbench.launchers import LAUNCHERS, LaunchOptions, check_options
from ltbench.sweep import sweep_grid

GRID = """\
methods: [erm, drw]
datasets: [shapes]
ratios: [10]
seeds: [0]
preset: quick
max_per_class: 60
overrides: {epochs: 1, backbone: resnet8, batch_size: 64}
"""
LIBRARY = Path(__file__).parent.parent / "ltbench"


def test_an_option_of_another_launcher_is_refused_naming_its_launchers():
    with pytest.raises(LtbenchError, match=r"^--partition is an option of --launcher submitit$"):
        check_options("local", LaunchOptions(partition="gpu"))
    with pytest.raises(LtbenchError, match=r"^--gpus-per-run is an option of --launcher submitit or print$"):
        check_options("local", LaunchOptions(gpus_per_run=2))
    check_options("print", LaunchOptions(gpus_per_run=2))
    check_options("submitit", LaunchOptions(partition="gpu", wait=True, slurm_args=("account=x",)))
    check_options("local", LaunchOptions(partition="gpu"), dry_run=True)  # a dry run only plans
    with pytest.raises(LtbenchError, match="--jobs and --gpus pick local worker slots"):
        check_options("submitit", LaunchOptions(jobs=2))


def test_every_launcher_declares_only_options_that_exist():
    flagged = {name for name, _flag in LaunchOptions(partition="p", gpus_per_run=1, cpus_per_run=1, timeout_min=1,
                                                      array_parallelism=1, slurm_args=("a",), wait=True,
                                                      cluster="local").given()}
    for cls in LAUNCHERS.values():
        assert cls.reads <= flagged, cls


def test_a_sweep_from_code_prints_nothing_but_what_the_launcher_prints(tmp_path, capsys):
    grid_file = tmp_path / "two.yaml"
    grid_file.write_text(GRID, encoding="utf-8")
    outcome = sweep_grid(load_grid(grid_file), tmp_path / "runs", launcher="print", device="cpu")
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 and all("run-spec" in line for line in out.splitlines()) and not err
    assert outcome.ok and not outcome.waited and outcome.left_line.startswith("printed 2 command(s)")
    assert [p.action for p in outcome.planned] == ["run", "run"]


def test_orchestration_and_launchers_hold_no_console_code():
    files = [LIBRARY / "sweep.py", LIBRARY / "launch.py", LIBRARY / "cells.py",
             *sorted((LIBRARY / "launchers").glob("*.py"))]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad = [n for n in names if n.split(".")[0] in ("rich", "typer") or n.startswith("ltbench.cli")]
            assert not bad, f"{path.name} imports {bad}"
