"""The CPU study's committed reports are what its committed records give (docs/cpu-study.md).

experiments/cpu-study-report.sh is run on the committed records (final.json, spec.json, failed.json
under results/cpu-study/) and must rebuild the committed tables (md/csv/tex), the paired comparisons
(cpu-study-questions.md) and the cost tables (cost/) byte for byte: a report edited by hand, or records
committed without regenerating the reports, fails here. Figures are not compared (PDF/PNG bytes vary
with matplotlib). No training.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ltbench.spec_hash import spec_dict_hash

ROOT = Path(__file__).parent.parent
RUNS = ROOT / "results" / "cpu-study"
REPORTS = ROOT / "results" / "reports"
COMMITTED_KINDS = ("final.json", "spec.json", "failed.json")  # what .gitignore lets through

pytestmark = pytest.mark.skipif(not RUNS.is_dir(), reason="no committed CPU-study records")


def _committed_record_files() -> list[Path]:
    """The records git tracks (a checkout may also hold runs still training); every record on disk
    when this is not a git checkout (e.g. an unpacked sdist)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "results/cpu-study"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode()
        tracked = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        tracked = list(RUNS.rglob("*.json"))
    return sorted(p for p in tracked if p.name in COMMITTED_KINDS)


@pytest.fixture(scope="module")
def committed_runs(tmp_path_factory) -> Path:
    """The records as a clean clone has them, copied out of the checkout."""
    root = tmp_path_factory.mktemp("cpu-study")
    for path in _committed_record_files():
        target = root / path.relative_to(RUNS)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return root


def test_committed_reports_rebuild_from_committed_records(tmp_path, committed_runs):
    # the script calls `$LTBENCH`: point it at this interpreter's ltbench
    wrapper = tmp_path / "ltbench"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ltbench "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    out = tmp_path / "reports"
    env = {**os.environ, "LTBENCH": str(wrapper), "RUNS": str(committed_runs), "OUT": str(out)}
    done = subprocess.run(["bash", str(ROOT / "experiments" / "cpu-study-report.sh")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rebuilt = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.suffix in (".md", ".csv", ".tex"))
    assert {"cpu-study.md", "cpu-study-questions.md", "cost/cpu-study2.md"} <= set(rebuilt), rebuilt
    for name in rebuilt:
        committed = REPORTS / name
        assert committed.exists(), f"{committed} is not committed"
        assert (out / name).read_text() == committed.read_text(), f"{committed} differs from what the records give"


def test_every_committed_record_is_a_finished_run_of_its_own_spec():
    finals = [p for p in _committed_record_files() if p.name == "final.json"]
    assert finals, "no final.json under results/cpu-study"
    for final in finals:
        run_dir = final.parent
        spec = json.loads((run_dir / "spec.json").read_text())
        # the directory name ends with the spec's hash: a record cannot sit under another run's name
        assert run_dir.name.split("-")[-1] == spec_dict_hash(spec), run_dir
        record = json.loads(final.read_text())
        assert 0.0 <= record["top1"] <= 100.0
        assert not (run_dir / "failed.json").exists()


@pytest.mark.parametrize("grid", ["cpu-study", "cpu-study-masking", "cpu-study-fill"])
def test_current_code_gives_the_committed_run_ids(grid):
    """A setting added later must leave earlier run ids alone: the finished grids of the first round,
    expanded by today's code, name exactly the committed records (a new hyperparameter whose default
    entered the hash made 18 of these 54 runs 'missing' once; results.py omits such defaults)."""
    from ltbench.grid import expand, load_grid

    committed = {p.parent.relative_to(RUNS).as_posix() for p in _committed_record_files() if p.name == "final.json"}
    expected = {r.run_id for r in expand(load_grid(ROOT / "experiments" / f"{grid}.yaml"))}
    assert expected <= committed, sorted(expected - committed)[:3]


def test_second_round_cells_keep_class_orders_apart(tmp_path, committed_runs):
    """First-round records predate `class_order` (their spec.json lacks it): they ran with order 0 and
    must count only there, never in a class-order-1 cell; the second round's ERM / DRW cells hold the
    5 training seeds of each class order (a missing field once agreed with any value and mixed them)."""
    import csv

    subprocess.run([sys.executable, "-m", "ltbench", "table", str(ROOT / "experiments" / "cpu-study2.yaml"),
                    "--results-dir", str(committed_runs), "--out", str(tmp_path)], check=True, capture_output=True)
    rows = list(csv.DictReader((tmp_path / "cpu-study2.csv").open()))
    cells = {(r["method"], r["class_order"]): int(r["n"]) for r in rows if r["column"] == "All"}
    for method in ("erm", "drw"):
        assert cells[(method, "0")] == 5 and cells[(method, "1")] == 5, cells
