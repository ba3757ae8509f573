"""Reliability with real processes: SIGKILL at any point, two sweeps on one folder, a diverging run.

Kills are injected with LTBENCH_FAULT (ltbench.faults): the run process SIGKILLs itself at a named
point, e.g. half-way through writing last.pt. After each kill nothing half-done may be read as a
result, and the resumed run must end with exactly the numbers of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ltbench.files import read_jsonl
from ltbench.report import collect
from ltbench.rundir import load_final, run_state

pytestmark = pytest.mark.slow

EPOCHS = 3
RUN = ["run", "--method", "drw", "--dataset", "shapes", "--ratio", "10", "--epochs", str(EPOCHS),
       "--set", "backbone=resnet8", "--set", "max_per_class=60", "--set", "batch_size=64",
       "--set", "drw_start_epoch=1", "--device", "cpu", "--quiet"]
TIMINGS = {"wall_time_s"}  # the only fields of final.json allowed to differ between two runs


def _env(fault: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LTBENCH_FAULT"}
    env["OMP_NUM_THREADS"] = "1"
    if fault:
        env["LTBENCH_FAULT"] = fault
    return env


def _ltbench(args: list[str], fault: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ltbench", *args], env=_env(fault), capture_output=True,
                          text=True, timeout=600)


def _run_dir(results: Path) -> Path:
    dirs = list(results.glob("*/*/*"))  # <setting>/<method>/<seed-hash>
    assert len(dirs) == 1, dirs
    return dirs[0]


def _numbers(final: dict) -> dict:
    return {k: v for k, v in final.items() if k not in TIMINGS}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    results = tmp_path_factory.mktemp("reference")
    done = _ltbench([*RUN, "--results-dir", str(results)])
    assert done.returncode == 0, done.stderr
    return load_final(_run_dir(results))


def _assert_nothing_half_done_is_valid(results: Path) -> None:
    run_dir = _run_dir(results)
    assert run_state(run_dir) in ("interrupted", "missing")  # missing: killed before spec.json existed
    assert load_final(run_dir) is None  # no final.json at all (a torn one would raise)
    assert collect(results, warn=pytest.fail).empty  # `table` sees no result and no damaged file
    epochs = [r["epoch"] for r in read_jsonl(run_dir / "metrics.jsonl")]
    assert epochs == sorted(set(epochs))


# the 5th step is inside the second epoch (4 steps an epoch); files are written once at the start
# (spec.json, metrics.jsonl), once an epoch (last.pt) and at the end (final.json)
KILL_POINTS = ["step:5", "write:spec.json:1", "write:metrics.jsonl:1", "write:last.pt:2",
               "write:last.pt:3", "write:final.json:1"]


@pytest.mark.parametrize("fault", KILL_POINTS)
def test_a_kill_anywhere_resumes_to_the_same_numbers(tmp_path, reference, fault):
    results = tmp_path / "runs"
    killed = _ltbench([*RUN, "--results-dir", str(results)], fault=fault)
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    _assert_nothing_half_done_is_valid(results)

    resumed = _ltbench([*RUN, "--results-dir", str(results)])
    assert resumed.returncode == 0, resumed.stderr
    run_dir = _run_dir(results)
    assert _numbers(load_final(run_dir)) == _numbers(reference)
    assert [r["epoch"] for r in read_jsonl(run_dir / "metrics.jsonl")] == list(range(EPOCHS))
    assert not list(run_dir.glob(".*.tmp")) and not (run_dir / "lock").exists()
    sessions = read_jsonl(run_dir / "sessions.jsonl")
    first_session_began = fault not in ("write:spec.json:1", "write:metrics.jsonl:1")
    assert len(sessions) == (2 if first_session_began else 1)


def test_kills_in_a_row_still_end_in_the_same_numbers(tmp_path, reference):
    results = tmp_path / "runs"
    for fault in ("step:2", "write:last.pt:1", "step:3"):  # each counts from the restart
        assert _ltbench([*RUN, "--results-dir", str(results)], fault=fault).returncode == -9
        _assert_nothing_half_done_is_valid(results)
    assert _ltbench([*RUN, "--results-dir", str(results)]).returncode == 0
    assert _numbers(load_final(_run_dir(results))) == _numbers(reference)


# ----- two sweeps on one results folder -------------------------------------------------------------

GRID = """\
methods: [{methods}]
datasets: [shapes]
ratios: [10]
seeds: [0]
preset: quick
max_per_class: 60
overrides: {{epochs: 2, backbone: resnet8, batch_size: 64}}
"""


def test_two_sweeps_on_one_folder_train_every_run_once(tmp_path):
    results = tmp_path / "runs"
    procs = []
    for name, methods in (("a", "drw, erm"), ("b", "drw, ldam-drw")):  # both start with drw
        grid = tmp_path / f"{name}.yaml"
        grid.write_text(GRID.format(methods=methods), encoding="utf-8")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "ltbench", "sweep", str(grid), "--results-dir", str(results), "--device", "cpu"],
            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    finals = sorted(results.rglob("final.json"))
    assert sorted(f.parent.parent.name for f in finals) == ["drw", "erm", "ldam-drw"]
    for final in finals:
        run_dir = final.parent
        assert load_final(run_dir)["epochs"] == 2
        sessions = read_jsonl(run_dir / "sessions.jsonl")
        assert [s["start_epoch"] for s in sessions] == [0], (run_dir, sessions)  # trained once, by one process
        assert [r["epoch"] for r in read_jsonl(run_dir / "metrics.jsonl")] == [0, 1]
        assert not (run_dir / "lock").exists() and not (run_dir / "failed.json").exists()


# ----- divergence ------------------------------------------------------------------------------------

def test_a_diverging_run_is_failed_with_its_reason_and_the_sweep_goes_on(tmp_path):
    results = tmp_path / "runs"
    grid = tmp_path / "div.yaml"
    # lr 1e30 overflows the weights in the first steps: the loss is non-finite after epoch 0
    grid.write_text(GRID.format(methods="erm, drw") + "vary: {lr: [1e30, 0.1]}\n", encoding="utf-8")
    swept = _ltbench(["sweep", str(grid), "--results-dir", str(results), "--device", "cpu"])
    assert swept.returncode == 1  # the sweep reports the failures ...
    finals = list(results.rglob("final.json"))
    assert len(finals) == 2  # ... after finishing every other run
    failed = sorted(p.parent for p in results.rglob("failed.json"))
    assert len(failed) == 2 and not any((d / "final.json").exists() for d in failed)
    for d in failed:
        assert json.loads((d / "failed.json").read_text())["kind"] == "diverged"
    assert "non-finite training loss" in swept.stderr + swept.stdout

    # sweeping again does not spend compute on them: reported, skipped, the sweep still exits 1
    records = {d: (d / "failed.json").read_bytes() for d in failed}
    again = _ltbench(["sweep", str(grid), "--results-dir", str(results), "--device", "cpu"])
    assert again.returncode == 1
    assert "not rerun: 2 run(s) diverged" in again.stderr and "--retry-diverged" in again.stderr
    assert {d: (d / "failed.json").read_bytes() for d in failed} == records
    planned = _ltbench(["sweep", str(grid), "--results-dir", str(results), "--dry-run", "--retry-diverged"])
    assert planned.returncode == 0 and "would run 2, skip 2" in planned.stdout
    # asked for, they start over from epoch 0 (and diverge again); the first attempt is kept inside the run
    retried = _ltbench(["sweep", str(grid), "--results-dir", str(results), "--device", "cpu", "--retry-diverged"])
    assert retried.returncode == 1
    for d in failed:
        assert (d / "attempt-1" / "failed.json").read_bytes() == records[d]
        assert json.loads((d / "failed.json").read_text())["kind"] == "diverged"
        starts = [s["start_epoch"] for s in read_jsonl(d / "sessions.jsonl")]
        assert starts[-1] == 0, starts

    status = _ltbench(["status", "--results-dir", str(results)])
    assert "failed 2" in status.stdout and "non-finite training loss" in status.stdout
    table = _ltbench(["table", str(grid), "--results-dir", str(results), "--out", str(tmp_path / "rep")])
    assert table.returncode == 0, table.stderr
    md = (tmp_path / "rep" / "div.md").read_text()
    assert "failed" in md and "non-finite training loss" in md  # named as failed, not shown as a number
