"""scripts/gpu-check.sh on the CPU: the plumbing (import set-up, steps, budget, failure recording, summaries).

The GPU figures themselves come from running the script on a GPU machine (docs/performance.md, "GPU").
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu-check.sh"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _flat_and_few(outdir: Path) -> list[str]:
    entries = list(outdir.iterdir())
    assert all(p.is_file() for p in entries), "OUTDIR must stay flat"
    assert len(entries) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in entries)
    return sorted(p.name for p in entries)


def test_no_budget_left_skips_every_step_and_still_writes_the_summaries(tmp_path, monkeypatch):
    gc = _module()
    monkeypatch.setattr(gc, "_probe_contrib", lambda py: False)
    monkeypatch.delenv(gc.FASHION_ENV, raising=False)
    out = tmp_path / "out"
    rc = gc.main([str(out), "--device", "cpu", "--reduced", "--budget", "0", "--work", str(tmp_path / "w")])
    assert rc == 0  # nothing failed: everything was skipped, with the reason
    summary = json.loads((out / "summary.json").read_text())
    assert {s["status"] for s in summary["steps"]} == {"skipped"}
    assert [s["step"] for s in summary["steps"]][:2] == ["doctor", "pytest"]
    assert all("budget left" in s["note"] or "not found" in s["note"] or "is not a folder" in s["note"]
               for s in summary["steps"])
    assert summary["opencv_contrib"] is False
    assert "spectral-residual" in (out / "summary.md").read_text()  # the fallback is stated
    assert _flat_and_few(out) == ["summary.json", "summary.md", "train.json"]


def test_pytest_counts_reads_the_final_line():
    gc = _module()
    text = ("..s\n=== short test summary info ===\nSKIPPED [2] x.py:3: no cuda\n"
            "3 passed, 2 skipped, 1 xfailed in 4.20s\n")
    assert gc.pytest_counts(text) == {"passed": 3, "skipped": 2, "xfailed": 1}
    assert gc.pytest_counts("SKIPPED [2] x.py:3: 2 skipped things\n") == {}


def test_usage_errors_exit_2(tmp_path):
    res = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "usage:" in res.stderr
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), str(tmp_path), "--skip", "nap"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "unknown step" in res.stderr


@pytest.mark.slow
def test_script_end_to_end_on_cpu_records_a_failure_and_carries_on(tmp_path):
    """Reduced mode on the CPU: doctor, then two Fashion-MNIST-LT runs of which the first cannot start.
    (The CUDA tests and the bench are left out here: they run in their own tests and take minutes on a
    loaded 2-core box; the budget-skip path above covers how the script treats steps it does not run.)"""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)}
    env.pop("LTBENCH_FASHION_MNIST_DIR", None)
    res = subprocess.run(["bash", str(SCRIPT), str(out), "--device", "cpu", "--reduced", "--budget", "500",
                          "--skip", "pytest,bench", "--train-methods", "no-such-method,erm"],
                         capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    steps = {s["step"]: s for s in summary["steps"]}
    doctor = json.loads((out / "doctor.json").read_text())
    assert doctor["device"] == "cpu" and steps["doctor"]["status"] == "ok"
    assert summary["install"] == "importable" and summary["mode"] == "reduced"
    train = json.loads((out / "train.json").read_text())
    if train["data_dir"] is None:  # no Fashion-MNIST on this machine: the step says so
        assert res.returncode == 0 and steps["fashion-mnist runs"]["status"] == "skipped"
    else:
        assert res.returncode == 1, res.stderr  # one step failed ...
        assert steps["fashion-mnist no-such-method"]["status"] == "failed"
        assert "unknown method" in steps["fashion-mnist no-such-method"]["stderr_tail"]
        erm = train["runs"]["erm"]  # ... and the next one still ran
        assert erm["status"] == "ok" and erm["epochs_done"] == 1 and 0 <= erm["top1"] <= 100
        assert "| erm | ok | 1 |" in (out / "summary.md").read_text()
    assert _flat_and_few(out) == sorted(["doctor.json", "summary.json", "summary.md", "train.json"])
    assert not list(tmp_path.glob("ltbench-gpu-check.*"))  # the work folder is removed
