"""Scale-out: `ltbench sweep --launcher submitit|print`, the job array's SLURM parameters, time estimates.

The two trained grids (the local pool, and submitit's local executor with one task pre-empted mid-run)
are module fixtures shared by the tests that read them: 4 tiny `shapes` runs each, CPU only.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ltbench import launch
from ltbench.cli import app
from ltbench.grid import expand, load_grid
from tests.conftest import TINY

submitit = pytest.importorskip("submitit")
from ltbench.launchers.submitit_launcher import (  # noqa: E402
    SIGNAL_DELAY_S,
    SubmititOptions,
    parse_slurm_args,
    slurm_parameters,
)
from ltbench.launchers.submitit_task import RunTask  # noqa: E402  (needs submitit)

runner = CliRunner()
EPOCHS = 2  # the pre-empted run is stopped after its first epoch; the second is left to resume
TIMING_KEYS = ("wall_time_s", "epoch_time_s", "data_time_s")


def _grid_text(epochs: int = EPOCHS, methods: str = "[erm, drw]", seeds: str = "[0, 1]") -> str:
    overrides = {"epochs": epochs, "backbone": TINY["backbone"], "batch_size": TINY["batch_size"]}
    return (f"methods: {methods}\ndatasets: [shapes]\nratios: [10]\nseeds: {seeds}\npreset: quick\n"
            f"max_per_class: {TINY['max_per_class']}\noverrides: {yaml.safe_dump(overrides, default_flow_style=True)}")


def _write_grid(folder: Path, name: str = "four", **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(_grid_text(**kw), encoding="utf-8")
    return path


def _invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _content(run_dir: Path) -> tuple[dict, list[dict]]:
    """final.json and metrics.jsonl without timings (the numbers a run produced)."""
    final = json.loads((run_dir / "final.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    strip = lambda d: {k: v for k, v in d.items() if k not in TIMING_KEYS and not k.endswith("_time_s")}  # noqa: E731
    return strip(final), [strip(r) for r in rows]


# ----- the two trained grids (module fixtures) ----------------------------------------------------

@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("grid")


@pytest.fixture(scope="module")
def local_results(grid_dir) -> Path:
    """The 4-run grid trained by the local pool."""
    results = grid_dir / "local" / "runs"
    grid = _write_grid(grid_dir)
    result = _invoke("sweep", grid, "--jobs", "2", "--results-dir", results, "--device", "cpu")
    assert result.exit_code == 0, result.output
    return results


@pytest.fixture(scope="module")
def submitit_run(grid_dir):
    """The same grid through submitit's local executor; the first run's task is pre-empted (USR2, as SLURM
    signals before a time limit) once its first epoch is checkpointed."""
    results = grid_dir / "submitit" / "runs"
    grid = _write_grid(grid_dir)
    target = results / expand(load_grid(grid))[0].run_id
    out: dict = {}

    def sweep() -> None:
        out["result"] = _invoke("sweep", grid, "--launcher", "submitit", "--cluster", "local", "--results-dir",
                                results, "--device", "cpu")

    thread = threading.Thread(target=sweep, daemon=True)
    thread.start()
    deadline = time.monotonic() + 600
    worker = target / launch.WORKER_FILE
    while time.monotonic() < deadline and thread.is_alive():
        rows = (target / "metrics.jsonl").read_text().splitlines() if (target / "metrics.jsonl").exists() else []
        if rows and (target / "last.pt").exists() and worker.exists():
            break
        time.sleep(0.05)
    assert thread.is_alive(), "the sweep ended before the first run had a checkpoint"
    epoch0 = (target / "metrics.jsonl").read_text().splitlines()[0]
    task_pid = json.loads(worker.read_text())["task_pid"]
    os.kill(task_pid, signal.SIGUSR2)  # pre-emption: submitit checkpoints the task and requeues it
    thread.join(600)
    assert not thread.is_alive(), "the submitit sweep did not finish"
    return {"results": results, "result": out["result"], "target": target, "epoch0": epoch0, "grid": grid}


@pytest.mark.slow
def test_submitit_grid_matches_the_local_launcher(local_results, submitit_run):
    result, results = submitit_run["result"], submitit_run["results"]
    assert result.exit_code == 0, result.output
    assert "4 done, 0 failed" in result.output
    local_finals = sorted(p.parent.relative_to(local_results) for p in local_results.rglob("final.json"))
    sub_finals = sorted(p.parent.relative_to(results) for p in results.rglob("final.json"))
    assert len(local_finals) == 4 and sub_finals == local_finals
    for rel in local_finals:
        assert _content(results / rel) == _content(local_results / rel), rel
        run_dir = results / rel
        record = json.loads((run_dir / launch.SUBMITTED_FILE).read_text())
        assert record["launcher"] == "submitit" and record["cluster"] == "local" and record["job_id"]
        assert not (run_dir / launch.WORKER_FILE).exists() and not (run_dir / "lock").exists()
        # submitit's pickles and logs live next to the results, never in a run directory
        assert not [p for p in run_dir.iterdir() if p.suffix in (".pkl", ".out", ".err")]
    launcher_dir = results.parent / "launcher" / "four"
    assert list(launcher_dir.glob("*_submitted.pkl")) and list(launcher_dir.glob("*_log.err"))
    status = _invoke("status", submitit_run["grid"], "--results-dir", results)
    assert status.exit_code == 0 and "done 4" in status.output and record["job_id"] in status.output
    again = _invoke("sweep", submitit_run["grid"], "--launcher", "submitit", "--cluster", "local",
                    "--results-dir", results, "--device", "cpu")
    assert again.exit_code == 0 and "nothing to run" in again.output


@pytest.mark.slow
def test_a_preempted_task_is_requeued_and_resumes(submitit_run):
    target = submitit_run["target"]
    log = (target / "log.txt").read_text()
    assert "attempt 1" in log and "attempt 2" in log  # the same task, requeued
    rows = (target / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == list(range(EPOCHS))
    # resumed from last.pt: epoch 0 was not trained again (its row, timings included, is the first attempt's)
    assert rows[0] == submitit_run["epoch0"]
    logs = "".join(p.read_text() for p in (submitit_run["results"].parent / "launcher" / "four").glob("*_log.err"))
    assert "Caught signal SIGUSR2" in logs and "this job is preempted" in logs


# ----- SLURM without SLURM -----------------------------------------------------------------------

def test_slurm_parameters_of_the_job_array():
    opts = SubmititOptions(partition="gpu", gpus_per_run=2, cpus_per_run=16, timeout_min=240, array_parallelism=8,
                           slurm_args=parse_slurm_args(["account=lt", "--constraint=a100", "exclusive"]))
    assert slurm_parameters(opts) == {
        "name": "ltbench", "timeout_min": 240, "nodes": 1, "tasks_per_node": 1, "gpus_per_node": 2,
        "cpus_per_task": 16, "slurm_partition": "gpu", "slurm_array_parallelism": 8,
        "slurm_signal_delay_s": SIGNAL_DELAY_S,
        "slurm_additional_parameters": {"account": "lt", "constraint": "a100", "exclusive": True}}
    # CPU runs ask for no GPU; unset options are left to the cluster's defaults
    assert slurm_parameters(SubmititOptions(gpus_per_run=0)) == {
        "name": "ltbench", "timeout_min": 1440, "nodes": 1, "tasks_per_node": 1,
        "slurm_signal_delay_s": SIGNAL_DELAY_S}
    with pytest.raises(Exception, match="key=value"):
        parse_slurm_args(["account="])
    with pytest.raises(Exception, match="--timeout-min must be >= 1"):
        slurm_parameters(SubmititOptions(timeout_min=0))


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """`srun` and `sbatch` stand-ins: sbatch keeps each script and answers with a new job id."""
    bin_dir, capture = tmp_path / "bin", tmp_path / "sbatch"
    bin_dir.mkdir()
    capture.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{capture}/next" 2>/dev/null || echo 4242)\n'
        f'echo $((n + 1)) > "{capture}/next"\n'
        f'cp "$1" "{capture}/job-$n.sh"\n'
        'echo "Submitted batch job $n"\n')
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return capture


def _mark_done(run_dir: Path, spec) -> None:
    """A well-formed finished record (load_final refuses malformed ones, which would not count as done)."""
    from ltbench.rundir import FINAL_KEYS
    from ltbench.spec_hash import spec_dict_hash

    run_dir.mkdir(parents=True)
    (run_dir / "spec.json").write_text(json.dumps(spec.to_dict()))
    final = {k: 0 for k in FINAL_KEYS}
    final.update(group_sizes={}, shot_rule="shots-100-20", per_class_acc=[0.0] * 10,
                 train_class_counts=[1] * 10, best_epoch=None, spec_hash=spec_dict_hash(spec.to_dict()))
    (run_dir / "final.json").write_text(json.dumps(final))


def test_slurm_array_submission_skips_done_runs(tmp_path, fake_slurm):
    grid = _write_grid(tmp_path)
    runs = expand(load_grid(grid))
    results = tmp_path / "results" / "runs"
    _mark_done(results / runs[1].run_id, runs[1].spec)
    args = ["sweep", grid, "--launcher", "submitit", "--partition", "gpu", "--gpus-per-run", "2",
            "--cpus-per-run", "8", "--timeout-min", "90", "--array-parallelism", "2", "--slurm-arg", "account=lt",
            "--slurm-arg", "constraint=a100", "--results-dir", results]
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    (script,) = sorted(fake_slurm.glob("job-*.sh"))
    text = script.read_text()
    for line in ("--array=0-2%2", "--partition=gpu", "--gpus-per-node=2", "--cpus-per-task=8", "--time=90",
                 "--nodes=1", "--ntasks-per-node=1", "--account=lt", "--constraint=a100",
                 f"--signal=USR2@{SIGNAL_DELAY_S}"):
        assert f"#SBATCH {line}\n" in text, line
    launcher_dir = tmp_path / "results" / "launcher" / "four"
    assert f"#SBATCH --output={launcher_dir}/%A_%a/%A_%a_0_log.out" in text
    # one pickled task per run that is not done; the done run is never submitted
    pickles = sorted(launcher_dir.glob("*/*_submitted.pkl"))
    assert [p.parent.name for p in pickles] == ["4242_0", "4242_1", "4242_2"]
    tasks = [submitit.helpers.DelayedSubmission.load(p).function for p in pickles]
    assert all(isinstance(t, RunTask) for t in tasks)
    todo = [r for i, r in enumerate(runs) if i != 1]
    assert [t.run_dir for t in tasks] == [results / r.run_id for r in todo]
    for t in tasks:
        assert t.argv[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
        assert t.argv[5:8] == ["-m", "ltbench", "run-spec"] and Path(t.argv[8]).exists()
        assert t.env["OMP_NUM_THREADS"] == os.environ.get("OMP_NUM_THREADS", "4")  # 8 CPUs / 2 GPUs
    records = [json.loads((results / r.run_id / launch.SUBMITTED_FILE).read_text()) for r in todo]
    assert [(r["job_id"], r["array_index"]) for r in records] == [("4242_0", 0), ("4242_1", 1), ("4242_2", 2)]
    assert not (results / runs[1].run_id / launch.SUBMITTED_FILE).exists()

    status = _invoke("status", grid, "--results-dir", results)
    assert status.exit_code == 0, status.output
    assert "done 1" in status.output and "submitted 3" in status.output and "4242_2" in status.output
    # submitted runs are left to their jobs, unless asked to submit them again
    again = _invoke(*args)
    assert again.exit_code == 0 and "nothing to run" in again.output and "--resubmit" in again.output
    assert len(list(fake_slurm.glob("job-*.sh"))) == 1
    third = _invoke(*args, "--resubmit")
    assert third.exit_code == 0, third.output
    assert "--array=0-2%2" in (fake_slurm / "job-4243.sh").read_text()
    assert json.loads((results / todo[0].run_id / launch.SUBMITTED_FILE).read_text())["job_id"] == "4243_0"


def test_without_submitit_the_error_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` now raises ImportError
    grid = _write_grid(tmp_path)
    result = _invoke("sweep", grid, "--launcher", "submitit", "--results-dir", tmp_path / "runs")
    assert result.exit_code == 2
    assert "submitit is not installed; pip install 'ltbench[slurm]'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()


def test_cluster_options_need_the_submitit_launcher(tmp_path):
    result = _invoke("sweep", _write_grid(tmp_path), "--partition", "gpu", "--results-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "--partition is an option of --launcher submitit" in result.output


# ----- the print launcher, status of submitted runs, stale locks ----------------------------------

def test_print_launcher_prints_one_command_per_run(tmp_path):
    grid = _write_grid(tmp_path)
    runs = expand(load_grid(grid))
    results = tmp_path / "runs"
    _mark_done(results / runs[0].run_id, runs[0].spec)
    result = _invoke("sweep", grid, "--launcher", "print", "--results-dir", results, "--device", "cpu")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()  # stdout holds the commands only
    assert len(lines) == 3
    for line, run in zip(lines, runs[1:], strict=True):
        argv = shlex.split(line)
        assert argv[1:4] == ["-m", "ltbench", "run-spec"] and argv[argv.index("--device") + 1] == "cpu"
        assert Path(argv[4]) == (results / run.run_id / "spec.json").resolve() and Path(argv[4]).exists()
    assert not list(results.rglob("log.txt"))  # nothing ran
    multi = _invoke("sweep", grid, "--launcher", "print", "--gpus-per-run", "4", "--results-dir", results)
    assert multi.exit_code == 0
    assert all("torch.distributed.run --standalone --nproc-per-node=4 -m ltbench run-spec" in line
               for line in multi.stdout.strip().splitlines())


def test_state_of_a_submitted_run(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "spec.json").write_text("{}")
    assert launch.state_of(run_dir) == "interrupted"
    record = {"launcher": "submitit", "cluster": "slurm", "job_id": "77_3", "host": "login1"}
    (run_dir / launch.SUBMITTED_FILE).write_text(json.dumps(record))
    assert launch.state_of(run_dir) == "submitted"
    # a local-executor job is a pid of this host: alive -> submitted, gone -> back to interrupted
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pid, state in ((os.getpid(), "submitted"), (dead.pid, "interrupted")):
        record.update(cluster="local", host=socket.gethostname(), job_id=str(pid))
        (run_dir / launch.SUBMITTED_FILE).write_text(json.dumps(record))
        assert launch.state_of(run_dir) == state
    (run_dir / "failed.json").write_text('{"reason": "x"}')
    assert launch.state_of(run_dir) == "failed"


# ----- time estimates ------------------------------------------------------------------------------

def test_dry_run_estimates_time_from_a_bench_file(tmp_path):
    from ltbench.data.longtail import longtail_counts

    grid = _write_grid(tmp_path, epochs=20, methods="[erm, drw, smcl]", seeds="[0]")
    bench = tmp_path / "bench" / "gpu.json"
    bench.parent.mkdir()
    # 64 images per step: ERM 1 ms per image; SMCL's plain step 2 ms, its masked step 5 ms per image
    bench.write_text(json.dumps({
        "config": {"dataset": "shapes", "backbone": "resnet8", "batch_size": 64, "device": "cuda",
                   "precision": "fp32"},
        "steps": {"erm": {"full_ms": 64.0}, "smcl:masked": {"full_ms": 320.0}, "smcl:plain": {"full_ms": 128.0}}}))
    results = tmp_path / "runs"  # the default bench folder is <results dir>/../bench
    result = _invoke("sweep", grid, "--dry-run", "--results-dir", results)
    assert result.exit_code == 0, result.output
    n = sum(longtail_counts(10, TINY["max_per_class"], 10.0))
    steps = 20 * -(-n // TINY["batch_size"])
    erm_s = steps * 64 * 1.0 / 1000
    assert "erm rate" in result.output  # DRW was not benched: ERM's step, labelled
    spec = {r.spec.method: r.spec for r in expand(load_grid(grid))}["smcl"]
    share = spec.hparams["mask_prob"] * (20 - spec.hparams["mask_start_epoch"]) / 20
    smcl_s = steps * 64 * (2.0 + share * 3.0) / 1000
    assert f"{2 * erm_s + smcl_s:.0f} s" in result.output or f"{(2 * erm_s + smcl_s) / 60:.0f} min" in result.output
    assert not results.exists()

    other = _invoke("sweep", grid, "--dry-run", "--results-dir", tmp_path / "elsewhere" / "runs")
    assert other.exit_code == 0 and "no time estimate" in other.output
