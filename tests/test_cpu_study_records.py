"""The CPU study's committed reports are what its committed records give (docs/cpu-study.md).

`ltbench table` and `ltbench ablate --collect-only` are re-run on results/cpu-study/ and must rebuild
results/reports/ byte for byte: a report edited by hand, or records changed without regenerating the
reports (`bash experiments/cpu-study-report.sh`), fails here. No training, no torch work.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltbench.cli import app
from ltbench.results import spec_dict_hash

ROOT = Path(__file__).parent.parent
RUNS = ROOT / "results" / "cpu-study"
REPORTS = ROOT / "results" / "reports"
runner = CliRunner()

COMMITTED_KINDS = ("final.json", "spec.json", "failed.json")  # what .gitignore lets through

REBUILT = [  # (command, experiment file, the report it writes)
    ("table", "cpu-study.yaml", "cpu-study"),
    ("ablate", "cpu-study-masking.yaml", "ablate-cpu-study-masking"),
    ("ablate", "cpu-study-fill.yaml", "ablate-cpu-study-fill"),
    ("ablate", "cpu-study-depth.yaml", "ablate-cpu-study-depth"),
]

pytestmark = pytest.mark.skipif(not RUNS.is_dir(), reason="no committed CPU-study records")


@pytest.fixture(scope="module")
def committed_runs(tmp_path_factory) -> Path:
    """The records as a clean clone has them (a local checkout also holds logs and checkpoints)."""
    root = tmp_path_factory.mktemp("cpu-study")
    for path in RUNS.rglob("*.json"):
        if path.name in COMMITTED_KINDS:
            target = root / path.relative_to(RUNS)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return root


@pytest.mark.parametrize("command,grid,name", REBUILT, ids=[r[2] for r in REBUILT])
def test_committed_reports_rebuild_from_committed_records(tmp_path, monkeypatch, committed_runs, command, grid,
                                                          name):
    monkeypatch.chdir(ROOT)
    extra = ["--collect-only", "--no-show"] if command == "ablate" else []
    result = runner.invoke(app, [command, f"experiments/{grid}", "--results-dir", str(committed_runs),
                                 "--out", str(tmp_path), *extra])
    assert result.exit_code == 0, result.output
    for suffix in (".md", ".csv", ".tex"):
        rebuilt, committed = tmp_path / f"{name}{suffix}", REPORTS / f"{name}{suffix}"
        assert committed.exists(), f"{committed} is not committed"
        assert rebuilt.read_text() == committed.read_text(), f"{committed} differs from what the records give"


def test_every_committed_record_is_a_finished_run_of_its_own_spec():
    finals = sorted(RUNS.rglob("final.json"))
    assert finals, "no final.json under results/cpu-study"
    for final in finals:
        run_dir = final.parent
        spec = json.loads((run_dir / "spec.json").read_text())
        # the directory name ends with the spec's hash: a record cannot sit under another run's name
        assert run_dir.name.split("-")[-1] == spec_dict_hash(spec), run_dir
        record = json.loads(final.read_text())
        assert 0.0 <= record["top1"] <= 100.0
        assert not (run_dir / "failed.json").exists()
