"""Files in a run directory are data, never code, and never written through a link.

The security cases here fail on a trainer that loads last.pt with weights_only=False or opens `lock` /
`sessions.jsonl` without O_NOFOLLOW: a crafted checkpoint touches a marker file, a planted link gets its
target truncated or appended to.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ltbench.cli import app
from ltbench.config import build_spec
from ltbench.files import atomic_write_json
from ltbench.train import run_directory

runner = CliRunner()
TINY_SET = {"backbone": "resnet8", "max_per_class": 60, "batch_size": 64, "epochs": 1}
TINY_ARGS = ["-m", "erm", "-r", "10", "--set", "backbone=resnet8", "--set", "max_per_class=60", "--set",
             "batch_size=64", "--epochs", "1", "--device", "cpu", "--quiet"]


def _started_run(results: Path) -> Path:
    """A run directory as a killed run leaves it: spec.json, no final.json (a resume would load last.pt)."""
    spec = build_spec("erm", "shapes", 10, 0, "paper", TINY_SET)
    run_dir = run_directory(spec, results)
    atomic_write_json(run_dir / "spec.json", spec.to_dict())
    return run_dir


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): ("link->" + os.readlink(p)) if p.is_symlink() else
            hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_symlink() or p.is_file()}


def _run(results: Path):
    return runner.invoke(app, ["run", *TINY_ARGS, "--results-dir", str(results)])


class _Payload:
    """Unpickling this calls os.system: the classic pickle attack on torch.load(weights_only=False)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _one_line_exit_2(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert needle in lines[0], lines[0]


def test_a_pickled_payload_in_last_pt_never_runs(tmp_path):
    run_dir = _started_run(tmp_path / "runs")
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"spec_hash": "x", "next_epoch": 1, "model": _Payload(marker)}, buf)
    (run_dir / "last.pt").write_bytes(buf.getvalue())
    before = _tree(tmp_path / "runs")
    result = _run(tmp_path / "runs")
    assert not marker.exists(), "unpickling last.pt executed code"
    _one_line_exit_2(result, f"checkpoint {run_dir / 'last.pt'} is damaged or not ltbench's "
                             "(move it away or --force)")
    assert _tree(tmp_path / "runs") == before


CRAFTED = {
    "a list": [1, 2, 3],
    "a dict without the keys": {"next_epoch": 1},
    "garbage bytes": b"\x00not a checkpoint",
    "next_epoch negative": "next_epoch=-1",
    "next_epoch beyond epochs": "next_epoch=7",
    "a wrong state_dict": "model=wrong",
}


def _valid_state(spec) -> dict:
    import numpy as np

    return {"spec_hash": spec.hash, "next_epoch": 1, "best": {"epoch": 0, "top1": 1.0}, "elapsed": 1.0,
            "model": {}, "optimizer": {}, "method": {}, "generator": torch.Generator().get_state(),
            "rng": np.random.default_rng(0).bit_generator.state, "torch_cpu_rng": torch.get_rng_state()}


@pytest.mark.parametrize("kind", list(CRAFTED), ids=list(CRAFTED))
def test_a_checkpoint_of_the_wrong_shape_is_one_line(tmp_path, kind):
    run_dir = _started_run(tmp_path / "runs")
    spec = build_spec("erm", "shapes", 10, 0, "paper", TINY_SET)
    what = CRAFTED[kind]
    if isinstance(what, bytes):
        (run_dir / "last.pt").write_bytes(what)
    else:
        if isinstance(what, str):
            key, value = what.split("=")
            state = _valid_state(spec)
            state[key] = int(value) if key == "next_epoch" else {"conv.weight": torch.zeros(1)}
            what = state
        torch.save(what, run_dir / "last.pt")
    before = _tree(tmp_path / "runs")
    result = _run(tmp_path / "runs")
    _one_line_exit_2(result, "is damaged or not ltbench's (move it away or --force)")
    assert _tree(tmp_path / "runs") == before


@pytest.mark.parametrize("name", ["lock", "sessions.jsonl", "metrics.jsonl", "last.pt"])
def test_a_symlink_in_a_run_directory_is_refused_and_its_target_untouched(tmp_path, name):
    run_dir = _started_run(tmp_path / "runs")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run_dir / name).symlink_to(victim)
    before = _tree(tmp_path / "runs")
    result = _run(tmp_path / "runs")
    _one_line_exit_2(result, f"{run_dir / name} is a symbolic link")
    assert victim.read_text() == "precious\n"
    assert _tree(tmp_path / "runs") == before


def test_the_lock_open_itself_refuses_a_link(tmp_path):
    """Even past the directory check (a link planted in the race window), the lock open does not follow it."""
    from ltbench.errors import LtbenchError
    from ltbench.locks import run_lock

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "lock").symlink_to(victim)
    with pytest.raises(LtbenchError, match="is a symbolic link"), run_lock(tmp_path / "run"):
        pass
    assert victim.read_text() == "precious\n"


def test_append_jsonl_refuses_a_link(tmp_path):
    from ltbench.errors import LtbenchError
    from ltbench.files import append_jsonl

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "sessions.jsonl").symlink_to(victim)
    with pytest.raises(LtbenchError, match="is a symbolic link"):
        append_jsonl(tmp_path / "sessions.jsonl", {"a": 1})
    assert victim.read_text() == "precious\n"


# ----- records that lie -----------------------------------------------------------------------------

FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "runs" / "cifar100-r100" / "erm"


def _fixture_copy(tmp_path: Path) -> tuple[Path, list[Path]]:
    import shutil

    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RUNS, results / "cifar100-r100" / "erm")
    return results, sorted((results / "cifar100-r100" / "erm").iterdir())


def test_a_record_copied_from_another_run_is_damaged_for_every_reader(tmp_path):
    import shutil

    from ltbench.report import collect
    from ltbench.rundir import final_damage, load_final, run_state

    results, (s0, s1, _s2) = _fixture_copy(tmp_path)
    shutil.copy(s1 / "final.json", s0 / "final.json")
    with pytest.raises(ValueError) as exc:
        load_final(s0)
    text = str(exc.value)
    assert text.startswith(f"{s0 / 'final.json'} is damaged: its spec hash {s1.name[-12:]} does not match")
    assert run_state(s0) == "damaged" and final_damage(s0) == text
    warnings: list[str] = []
    frame = collect(results, warn=warnings.append)
    assert sorted(frame["seed"]) == [1, 2]  # the foreign record is not s0's number
    assert any(text in w for w in warnings), warnings
    status = runner.invoke(app, ["status", "--results-dir", str(results)])
    assert status.exit_code == 0 and "Traceback" not in status.output
    assert "damaged 1" in status.output


@pytest.mark.parametrize("key,value,problem", [
    ("top1", "x", "top1 is not a percentage: 'x'"),
    ("top1", None, "top1 is not a percentage: None"),
    ("top1", float("nan"), "top1 is not a percentage: nan"),
    ("few", 250.0, "few is not a percentage: 250.0"),
    ("per_class_acc", [50.0] * 99, "per_class_acc has 99 entries for 100 classes"),
    ("train_class_counts", "many", "train_class_counts is not a list of non-negative integers"),
    ("best_epoch", -3, "best_epoch is not an epoch: -3"),
])
def test_a_record_whose_numbers_are_not_numbers_is_damaged_never_a_number(tmp_path, key, value, problem):
    import json

    from ltbench.report import collect
    from ltbench.rundir import load_final

    results, (s0, _s1, _s2) = _fixture_copy(tmp_path)
    data = json.loads((s0 / "final.json").read_text())
    data[key] = value
    (s0 / "final.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=re.escape(f"{s0 / 'final.json'} is damaged: {problem}")):
        load_final(s0)
    warnings: list[str] = []
    assert sorted(collect(results, warn=warnings.append)["seed"]) == [1, 2]
    assert any(problem in w for w in warnings)
    status = runner.invoke(app, ["status", "--results-dir", str(results)])
    assert status.exit_code == 0 and "Traceback" not in status.output and "damaged 1" in status.output


def test_every_committed_record_passes_the_schema():
    from ltbench.rundir import load_final

    root = Path(__file__).parent.parent
    finals = [p for p in (root / "results").rglob("final.json")] + list((root / "tests").rglob("final.json"))
    assert len(finals) >= 50
    for path in finals:
        assert load_final(path.parent) is not None


def test_a_bad_line_in_metrics_jsonl_ends_the_log_with_one_warning(tmp_path):
    from ltbench.files import read_jsonl

    for bad in (b"[1, 2]", b"5", b"\xff\xfe\x00binary", b'{"epoch": "zero"}', b'{"epoch": 1, "lo'):
        path = tmp_path / "metrics.jsonl"
        path.write_bytes(b'{"epoch": 0, "loss": 1.0}\n' + bad + b'\n{"epoch": 2, "loss": 0.5}\n')
        warnings: list[str] = []
        assert read_jsonl(path, warnings.append) == [{"epoch": 0, "loss": 1.0}]
        assert warnings == [f"{path} line 2 is not a valid record; the log is read up to line 1"]
    path.write_bytes(b'{"epoch": 0}\n{"epoch": 1, "lo')  # torn last line: a kill mid-append, not news
    warnings = []
    assert read_jsonl(path, warnings.append) == [{"epoch": 0}] and warnings == []


def test_a_foreign_record_in_a_started_run_is_warned_about_and_the_run_trained(tmp_path, monkeypatch):
    """`run` never shows another run's final.json as its result; the read-only check then lets a finished
    run print its result from a folder it may not write to."""
    import json

    run_dir = _started_run(tmp_path / "runs")
    foreign = json.loads((FIXTURE_RUNS / "s1-cef9eacab925" / "final.json").read_text())
    (run_dir / "final.json").write_text(json.dumps(foreign))
    result = _run(tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert f"warning: {run_dir / 'final.json'} is damaged: its spec hash cef9eacab925" in result.output
    assert json.loads((run_dir / "final.json").read_text())["spec_hash"] == run_dir.name[-12:]
    def read_only(path):
        from ltbench.errors import LtbenchError

        raise LtbenchError(f"results dir {path} is not writable")

    monkeypatch.setattr("ltbench.launch.check_writable", read_only)  # a read-only results folder
    again = _run(tmp_path / "runs")
    assert again.exit_code == 0, again.output
    assert "run directory:" in again.output and "warning" not in again.output


# ----- smaller things -------------------------------------------------------------------------------

def test_an_empty_results_variable_means_unset(monkeypatch):
    from ltbench.rundir import default_results_dir

    monkeypatch.setenv("LTBENCH_RESULTS", "")
    assert default_results_dir() == Path("results/runs")


def test_splits_out_writes_exactly_the_named_file(tmp_path):
    import numpy as np

    np.save(tmp_path / "labels.npy", np.arange(10).repeat(500))
    out = tmp_path / "subset.txt"
    result = runner.invoke(app, ["splits", "--labels", str(tmp_path / "labels.npy"), "--ratio", "10",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and not Path(f"{out}.npy").exists() and str(out) in result.output.replace("\n", "")
    assert len(np.load(out)) == sum(int(500 * 0.1 ** (k / 9)) for k in range(10))


def test_a_worker_that_found_the_run_finished_elsewhere_did_not_train_it(tmp_path):
    import json
    import socket

    from ltbench.launch import trained_by

    (tmp_path / "sessions.jsonl").write_text(json.dumps({"pid": 111, "host": socket.gethostname()}) + "\n")
    assert trained_by(tmp_path, 111)
    assert not trained_by(tmp_path, 222)


SWEEPER = """
import sys, time
from pathlib import Path
from ltbench.launch import Job
from ltbench.launchers.local import LocalLauncher
pid_file = Path(sys.argv[1])
job = Job("sleeper", [sys.executable, "-c", "import time; time.sleep(120)"], pid_file.parent / "log.txt",
          pid_file=pid_file)
LocalLauncher(jobs=1).run([job])
"""


def test_sigterm_to_a_sweep_stops_its_workers(tmp_path):
    """A worker runs in its own session; SIGTERM to the sweep must still end it (no orphan training on)."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from ltbench.locks import pid_alive

    pid_file = tmp_path / "worker.json"
    sweeper = subprocess.Popen([sys.executable, "-c", SWEEPER, str(pid_file)])
    try:
        for _ in range(600):
            if pid_file.exists():
                break
            time.sleep(0.1)
        worker = json.loads(pid_file.read_text())["pid"]
        sweeper.send_signal(signal.SIGTERM)
        sweeper.wait(60)
        for _ in range(300):
            if not pid_alive(worker):
                break
            time.sleep(0.1)
        alive = pid_alive(worker)
    finally:
        if sweeper.poll() is None:
            sweeper.kill()
    if alive:
        os.kill(worker, signal.SIGKILL)
    assert not alive, "the worker kept running after the sweep got SIGTERM"
    assert not pid_file.exists()  # no stale worker.json
