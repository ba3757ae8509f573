"""RunDir: the one owner of a run directory's file names, its failed.json and its final.json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ltbench.rundir import RunDir, run_state


def _failed(rd: RunDir) -> dict:
    return json.loads(rd.failed_path.read_text())


def test_record_failure_writes_the_record_every_reader_knows(tmp_path):
    rd = RunDir(tmp_path / "run")
    assert rd.record_failure("non-finite loss", "diverged")
    assert rd.failed_path.read_text() == '{\n "kind": "diverged",\n "reason": "non-finite loss"\n}\n'
    assert rd.record_failure("ValueError: x", traceback="Traceback ...")  # an unexpected error has no kind
    assert _failed(rd) == {"reason": "ValueError: x", "traceback": "Traceback ..."}
    assert rd.failure_kind() is None and run_state(rd.path) == "failed"


def test_a_note_after_the_fact_never_replaces_the_runs_own_record(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.record_failure("non-finite loss", "diverged")
    assert not rd.record_failure("worker exited with code 1", "worker", when="unrecorded", log_tail=[])
    assert rd.failure_kind() == "diverged"
    assert rd.record_failure("submitit job 7 stopped", "launcher", when="unfinished")  # a launcher's stop
    assert rd.failure_kind() == "launcher"
    rd.clear_failure()
    assert rd.record_failure("worker exited with code 1", "worker", when="unrecorded", log_tail=["x"])
    assert _failed(rd) == {"reason": "worker exited with code 1", "kind": "worker", "log_tail": ["x"]}


def test_a_finished_run_is_never_marked_failed_after_the_fact(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    rd.final_path.write_text("{}")  # present (even damaged): the worker got that far
    assert not rd.record_failure("worker exited with code 1", "worker", when="unrecorded")
    assert rd.record_failure("stopped", "launcher", when="unfinished")  # damaged is not done
    assert _failed(rd) == {"reason": "stopped", "kind": "launcher"}


def test_prepare_drops_the_old_failure_and_with_force_the_old_result(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    for path in (rd.final_path, rd.failed_path, rd.checkpoint_path, rd.metrics_path, rd.sessions_path,
                 rd.spec_path):
        path.write_text("x")
    rd.prepare(force=False)
    assert not rd.failed_path.exists() and rd.final_path.exists() and rd.checkpoint_path.exists()
    rd.prepare(force=True)
    assert {p.name for p in rd.path.iterdir()} == {"sessions.jsonl", "spec.json"}


def test_metrics_are_cut_back_to_the_finished_epochs(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    for epoch in range(3):
        rd.append_metrics({"epoch": epoch, "loss": 1.0})
    rd.keep_metrics_before(2)
    assert rd.metrics_path.read_text() == '{"epoch": 0, "loss": 1.0}\n{"epoch": 1, "loss": 1.0}\n'


def test_a_failed_attempt_is_archived_and_nothing_is_lost(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    for path in (rd.spec_path, rd.checkpoint_path, rd.metrics_path, rd.failed_path):
        path.write_text(path.name)
    first = rd.archive_attempt()
    assert first.name == "attempt-1" and {p.name for p in first.iterdir()} == {"last.pt", "metrics.jsonl",
                                                                             "failed.json"}
    assert {p.name for p in rd.path.iterdir()} == {"spec.json", "attempt-1"}
    assert rd.archive_attempt().name == "attempt-2"


def test_a_listing_is_a_run_directory_when_it_holds_a_spec_or_a_result():
    assert RunDir.holds_a_run(["spec.json", "log.txt"]) and RunDir.holds_a_run({"final.json"})
    assert not RunDir.holds_a_run(["log.txt", "worker.json"])


@pytest.mark.parametrize("module", ["ltbench.rundir", "ltbench.files", "ltbench.spec_hash", "ltbench.locks",
                                    "ltbench.predictions", "ltbench.data.bundle"])
def test_reading_records_does_not_import_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
