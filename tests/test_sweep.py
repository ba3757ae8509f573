"""Sweeps: plan, launchers (fake and local), GPU slots, status, and one real 2-run sweep on shapes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ltbench import launch, launchers
from ltbench.cli import app
from ltbench.grid import expand, load_grid
from ltbench.launch import Job, JobResult, plan
from ltbench.launchers.local import LocalLauncher, slot_gpus, visible_gpus

runner = CliRunner()
GRID = """\
methods: [erm, drw]
datasets: [shapes]
ratios: [10]
seeds: [0]
preset: quick
max_per_class: 60
overrides: {epochs: 1, backbone: resnet8, batch_size: 64}
"""


@pytest.fixture
def grid_file(tmp_path) -> Path:
    path = tmp_path / "two.yaml"
    path.write_text(GRID, encoding="utf-8")
    return path


def _invoke(*args: str):
    return runner.invoke(app, list(args))


# ----- slots and the local pool (no training) ------------------------------------------------------

def test_gpu_slots_round_robin():
    assert slot_gpus(4, ["0", "1"]) == ["0", "1", "0", "1"]
    assert slot_gpus(3, ["5"]) == ["5", "5", "5"]
    assert slot_gpus(2, []) == [None, None]
    assert visible_gpus(2, {}) == ["0", "1"]
    assert visible_gpus(2, {"CUDA_VISIBLE_DEVICES": "3,5"}) == ["3", "5"]
    assert visible_gpus(0, {}) == []


def test_local_launcher_runs_jobs_and_keeps_going(tmp_path):
    show = "import os; e = os.environ; print('gpu', e.get('CUDA_VISIBLE_DEVICES'), e.get('OMP_NUM_THREADS'))"
    jobs = [Job("a", [sys.executable, "-c", show], tmp_path / "a" / "log.txt"),
            Job("b", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
                tmp_path / "b" / "log.txt", files={tmp_path / "b" / "spec.json": b"{}\n"}),
            Job("c", [sys.executable, "-c", show], tmp_path / "c" / "log.txt")]
    events = []
    results = LocalLauncher(jobs=2, gpus=["7", "9"], threads_per_job=1).run(
        jobs, lambda kind, job, res: events.append((kind, job.name)))
    assert [r.returncode for r in results] == [0, 3, 0]
    assert (tmp_path / "b" / "spec.json").read_bytes() == b"{}\n"
    assert "boom" in (tmp_path / "b" / "log.txt").read_text()
    assert "gpu 7 1" in (tmp_path / "a" / "log.txt").read_text()  # slot 0 -> GPU 7
    assert sorted(e for e in events if e[0] == "end") == [("end", "a"), ("end", "b"), ("end", "c")]
    assert len([e for e in events if e[0] == "start"]) == 3


def test_interrupt_stops_the_children(tmp_path):
    log = tmp_path / "a" / "log.txt"
    code = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    job = Job("a", [sys.executable, "-c", code], log, pid_file=tmp_path / "a" / launch.WORKER_FILE)

    def hook(kind, job, res):
        if kind == "start":
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(log.read_text().splitlines()) < 2:
                time.sleep(0.05)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalLauncher(jobs=1).run([job], hook)
    pid = int(log.read_text().splitlines()[1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (tmp_path / "a" / launch.WORKER_FILE).exists()


class FakeLauncher(LocalLauncher):
    """Records the commands; every job 'fails' without writing anything."""

    calls: list[list[Job]] = []

    def run(self, jobs, on_event=None):
        FakeLauncher.calls.append(list(jobs))
        out = []
        for job in jobs:
            for path, data in job.files.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            job.log_path.write_text("line 1\nCUDA out of memory\n")
            res = JobResult(job, 1, 0.1, 0, None)
            if on_event:
                on_event("start", job, JobResult(job, None))
                on_event("end", job, res)
            out.append(res)
        return out


def test_sweep_with_a_fake_launcher(tmp_path, grid_file, monkeypatch):
    monkeypatch.setitem(launchers.LAUNCHERS, "fake", FakeLauncher)
    FakeLauncher.calls = []
    results = tmp_path / "runs"
    result = _invoke("sweep", str(grid_file), "--launcher", "fake", "--results-dir", str(results),
                     "--device", "cpu")
    assert result.exit_code == 1, result.output
    (jobs,) = FakeLauncher.calls
    assert len(jobs) == 2
    runs = expand(load_grid(grid_file))
    for job, run in zip(jobs, runs, strict=True):
        assert job.argv[1:4] == ["-m", "ltbench", "run-spec"]
        spec_path = Path(job.argv[4])
        assert spec_path == (results / run.run_id / "spec.json").resolve()
        assert json.loads(spec_path.read_text()) == json.loads(json.dumps(run.spec.to_dict()))
        assert job.argv[job.argv.index("--device") + 1] == "cpu"
    assert "2 run(s) failed" in result.output and "CUDA out of memory" in result.output
    # the failure is recorded for `status`, which shows the reason and the log tail
    status = _invoke("status", str(grid_file), "--results-dir", str(results))
    assert status.exit_code == 0
    assert "failed 2" in status.output and "worker exited with code 1" in status.output
    assert "CUDA out of memory" in status.output


def test_dry_run_prints_the_plan(tmp_path, grid_file):
    result = _invoke("sweep", str(grid_file), "--dry-run", "--results-dir", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    assert "would run 2, skip 0" in result.output and "missing" in result.output
    assert not (tmp_path / "runs").exists()


def test_plan_classifies_run_directories(tmp_path, grid_file):
    runs = expand(load_grid(grid_file))
    root = tmp_path / "runs"
    (root / runs[0].run_id).mkdir(parents=True)
    (root / runs[0].run_id / "spec.json").write_text("{}")
    assert [p.state for p in plan(runs, root)] == ["interrupted", "missing"]
    assert [p.action for p in plan(runs, root)] == ["resume", "run"]
    (root / runs[0].run_id / "failed.json").write_text('{"reason": "x"}')
    assert plan(runs, root)[0].action == "rerun"
    # a diverged run is held (the same spec diverges again) unless asked for
    (root / runs[0].run_id / "failed.json").write_text('{"reason": "non-finite loss", "kind": "diverged"}')
    assert (plan(runs, root)[0].state, plan(runs, root)[0].action) == ("failed", "skip")
    assert plan(runs, root, retry_diverged=True)[0].action == "rerun"
    (root / runs[0].run_id / "failed.json").write_text('{"reason": "x", "kind": "error"}')
    assert plan(runs, root)[0].action == "rerun"
    # a live worker (here: this very process) holds the run: another sweep leaves it alone
    worker = root / runs[0].run_id / launch.WORKER_FILE
    worker.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert (plan(runs, root)[0].state, plan(runs, root)[0].action) == ("running", "skip")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    worker.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    assert plan(runs, root)[0].state == "failed"


def test_a_retried_diverged_run_starts_over_and_keeps_its_attempt(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "spec.json").write_text("{}")
    attempt = {"last.pt": "ckpt", "metrics.jsonl": '{"epoch": 0}\n', "failed.json": '{"kind": "diverged"}'}
    for name, text in attempt.items():
        (run_dir / name).write_text(text)
    first = launch.archive_attempt(run_dir)
    assert first == run_dir / "attempt-1"
    assert {p.name for p in first.iterdir()} == {"last.pt", "metrics.jsonl", "failed.json"}
    assert (first / "last.pt").read_text() == "ckpt"
    assert {p.name for p in run_dir.iterdir()} == {"spec.json", "attempt-1"}  # nothing to resume from
    (run_dir / "failed.json").write_text('{"kind": "diverged"}')
    assert launch.archive_attempt(run_dir) == run_dir / "attempt-2"  # an earlier attempt is never overwritten
    assert (run_dir / "attempt-1" / "last.pt").read_text() == "ckpt"


def test_held_diverged_runs_fail_a_sweep_only_when_it_waited():
    from ltbench.sweep import SweepOutcome

    assert not SweepOutcome(held=["a run"]).ok
    assert SweepOutcome(held=["a run"], waited=False).ok  # printed or submitted: that part worked
    assert SweepOutcome().ok


# ----- one real sweep ------------------------------------------------------------------------------

def test_real_sweep_skips_done_runs_and_reruns_a_deleted_one(tmp_path, grid_file):
    results = tmp_path / "runs"
    args = ["sweep", str(grid_file), "--jobs", "2", "--results-dir", str(results), "--device", "cpu"]
    first = _invoke(*args)
    assert first.exit_code == 0, first.output
    finals = sorted(results.rglob("final.json"))
    assert len(finals) == 2
    for final in finals:
        assert (final.parent / "log.txt").exists() and not (final.parent / launch.WORKER_FILE).exists()
        assert "run-spec" in (final.parent / "log.txt").read_text()

    again = _invoke(*args)
    assert again.exit_code == 0 and "nothing to run" in again.output

    # a deleted result is rerun, the other run is left alone. (last.pt goes too: resuming a run whose
    # checkpoint already holds the last epoch is the trainer's business, not the sweep's.)
    keep_stamp = finals[1].stat().st_mtime_ns
    finals[0].unlink()
    (finals[0].parent / "last.pt").unlink()
    third = _invoke(*args)
    assert third.exit_code == 0, third.output
    assert "running 1 run(s)" in third.output
    assert finals[0].exists() and finals[1].stat().st_mtime_ns == keep_stamp

    status = _invoke("status", "--results-dir", str(results))
    assert status.exit_code == 0 and "done 2" in status.output

    table = _invoke("table", str(grid_file), "--results-dir", str(results), "--out", str(tmp_path / "rep"))
    assert table.exit_code == 0, table.output
    md = (tmp_path / "rep" / "two.md").read_text()
    assert "| ERM" in md and "| DRW" in md and "(1)" in md


def test_cpu_workers_get_passive_openmp_and_the_heap_allocator(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")  # a user's own value wins
    job = Job("a", ["true"], Path("log.txt"))
    cpu_env = LocalLauncher(jobs=1, threads_per_job=1)._env(job, None)
    assert cpu_env["OMP_WAIT_POLICY"] == "PASSIVE" and cpu_env["OMP_NUM_THREADS"] == "1"
    assert cpu_env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2"
    gpu_env = LocalLauncher(jobs=1, gpus=["3"])._env(job, "3")
    assert gpu_env["CUDA_VISIBLE_DEVICES"] == "3" and "OMP_WAIT_POLICY" not in gpu_env
