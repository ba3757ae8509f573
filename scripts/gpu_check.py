"""The steps of scripts/gpu-check.sh: doctor, CUDA tests, bench, Fashion-MNIST-LT runs; JSON + Markdown out.

Run through the shell script (it arranges how `ltbench` is imported). Each step is a child process with
a time limit taken from the total budget; a step that fails or times out is recorded and the next one
runs; a step that would not fit in what is left of the budget is skipped, with the reason. Standard
library only (the machine may have nothing but torch and ltbench's dependencies), Python >= 3.10.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

STEPS = ("doctor", "pytest", "bench", "train")
BENCH_METHODS = ("erm", "scl", "smcl")
TRAIN_METHODS = ("erm", "drw", "drw+smcl")
FASHION_ENV = "LTBENCH_FASHION_MNIST_DIR"
LOG_LIMIT = 1_000_000  # bytes of pytest output kept (the tail)
RESERVE_S = 10.0  # kept back for writing the summaries
CONTRIB = "opencv (contrib saliency)"


class Budget:
    def __init__(self, total_s: float):
        self.total, self.t0 = total_s, time.monotonic()

    def left(self) -> float:
        return self.total - RESERVE_S - (time.monotonic() - self.t0)


def _tail(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else "..." + text[-limit:]


def run_step(name: str, cmd: list[str], budget: Budget, need_s: float, limit_s: float, steps: list[dict],
             env: dict | None = None) -> dict:
    """Run one child process within min(limit_s, budget left); skip it when less than need_s is left."""
    left = budget.left()
    rec: dict = {"step": name, "command": " ".join(cmd)}
    if left < need_s:
        rec.update(status="skipped", seconds=0.0,
                   note=f"needs about {need_s:.0f} s, {max(left, 0):.0f} s of the budget left")
        steps.append(rec)
        return rec
    timeout = max(1.0, min(limit_s, left))
    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        rec.update(rc=res.returncode, stdout=res.stdout, stderr=res.stderr)
        rec["status"] = "ok" if res.returncode == 0 else "failed"
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        rec.update(status="timed out", rc=None, stdout=out, stderr=err, note=f"stopped after {timeout:.0f} s")
    except OSError as exc:
        rec.update(status="failed", rc=None, stdout="", stderr=str(exc))
    rec["seconds"] = round(time.monotonic() - t0, 1)
    steps.append(rec)
    return rec


def _json_or_none(text: str):
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None


def _public(rec: dict) -> dict:
    """A step record for summary.json: outputs shortened to their tails."""
    out = {k: v for k, v in rec.items() if k not in ("stdout", "stderr")}
    if rec.get("status") not in ("ok", "skipped"):
        out["stderr_tail"] = _tail(rec.get("stderr", ""))
        out["stdout_tail"] = _tail(rec.get("stdout", ""), 1000)
    return out


# ----- the steps ---------------------------------------------------------------------------------

def step_doctor(py, a, budget, steps, outdir: Path) -> dict | None:
    cmd = [py, "-m", "ltbench", "doctor", "--device", a.device, "--json", "--results-dir", str(a.work / "runs")]
    if not a.reduced:
        cmd += ["--compile", "--compile-timeout", "60"]
    rec = run_step("doctor", cmd, budget, 5, 120, steps)
    report = _json_or_none(rec.get("stdout", ""))
    if report is not None:
        (outdir / "doctor.json").write_text(json.dumps(report, indent=1))
        # exit 1 = "not ready" (a finding, e.g. no OpenCV contrib), still a completed step
        if rec.get("rc") == 1:
            rec["status"], rec["note"] = "ok", "doctor ran; the machine is NOT ready (see doctor.json)"
    return report


def step_pytest(py, a, budget, steps, outdir: Path) -> dict:
    files = ["tests/test_cuda.py"] if a.reduced else ["tests/test_cuda.py", "tests/test_host_sync.py",
                                                      "tests/test_doctor.py"]
    cmd = [py, "-m", "pytest", *files, "-q", "-rfEsx", "-p", "no:cacheprovider"]
    rec = run_step("pytest", cmd, budget, 30, 210, steps)
    if rec["status"] != "skipped":
        text = rec.get("stdout", "") + rec.get("stderr", "")
        (outdir / "pytest.log").write_text(text[-LOG_LIMIT:])
    rec["counts"] = pytest_counts(rec.get("stdout", ""))
    return rec["counts"]


def pytest_counts(stdout: str) -> dict[str, int]:
    """The counts of pytest's final line ("3 passed, 26 skipped in 4.2s"); empty when there is none."""
    for line in reversed(stdout.strip().splitlines()):
        found = re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)", line)
        if found and re.search(r" in [\d.]+s", line):
            return {kind: int(n) for n, kind in found}
    return {}


def step_bench(py, a, budget, steps, outdir: Path, contrib: bool) -> dict:
    figures = {}
    for method in BENCH_METHODS:
        cmd = [py, "-m", "ltbench", "bench", "--method", method, "--device", a.device, "--json",
               "--precision", "bf16", "--channels-last"]
        if a.reduced:
            cmd += ["--steps", "1", "--rounds", "1", "--batch-size", "16", "--workers", "0", "--ratio", "10",
                    "--set", "backbone=resnet8", "--set", "max_per_class=20"]
        else:
            cmd += ["--steps", "5", "--rounds", "5"]
        if method == "smcl" and not contrib:
            cmd += ["--set", "saliency=spectral-residual"]
        rec = run_step(f"bench {method}", cmd, budget, 20, 90 if not a.reduced else 300, steps)
        result = _json_or_none(rec.get("stdout", ""))
        if result is not None:
            (outdir / f"bench-{method}.json").write_text(json.dumps(result, indent=1))
            figures[method] = {k: result.get(k) for k in ("overhead_ratio", "step_vs_erm", "bf16_speedup",
                                                          "channels_last_speedup", "bf16_channels_last_speedup",
                                                          "pipeline_speedup", "saliency_ms")}
            figures[method]["medians_ms"] = result.get("medians_ms")
        if method == "smcl" and not contrib:
            fallback = "OpenCV contrib missing: saliency=spectral-residual (not SMCL's fine-grained operator)"
            rec["note"] = "; ".join(filter(None, [rec.get("note"), fallback]))
    return figures


def _fashion_dir(doctor: dict | None) -> tuple[str | None, str]:
    env = os.environ.get(FASHION_ENV)
    if env:
        return (env, f"${FASHION_ENV}") if Path(env).is_dir() else (None, f"${FASHION_ENV}={env} is not a folder")
    for check in (doctor or {}).get("checks", []):
        if check["name"] == "data: fashion-mnist" and check["status"] == "ok":
            return check["data"]["path"], "found by ltbench doctor"
    return None, f"Fashion-MNIST raw files not found (set {FASHION_ENV} to their folder)"


def _final(results: Path) -> dict | None:
    finals = sorted(results.rglob("final.json"))
    return _json_or_none(finals[0].read_text()) if finals else None


def _epochs_done(results: Path) -> int:
    rows = sorted(results.rglob("metrics.jsonl"))
    return sum(1 for line in rows[0].read_text().splitlines() if line.strip()) if rows else 0


def step_train(py, a, budget, steps, outdir: Path, doctor, contrib: bool) -> dict:
    folder, why = _fashion_dir(doctor)
    out: dict = {"data_dir": folder, "data_note": why, "runs": {}}
    if folder is None:
        steps.append({"step": "fashion-mnist runs", "status": "skipped", "seconds": 0.0, "note": why})
        (outdir / "train.json").write_text(json.dumps(out, indent=1))
        return out
    methods = a.train_methods
    for i, method in enumerate(methods):
        results = a.work / f"fm-{method.replace('+', '_')}"
        cmd = [py, "-m", "ltbench", "run", "--method", method, "--dataset", "fashion-mnist", "--seed", "0",
               "--preset", "paper", "--device", a.device, "--data-dir", folder, "--results-dir", str(results), "-q"]
        cmd += (["--ratio", "10", "--epochs", "1", "--set", "backbone=resnet8", "--set", "max_per_class=60",
                 "--set", "batch_size=64"] if a.reduced else ["--ratio", "100"])
        if method == "drw+smcl" and not contrib:
            cmd += ["--set", "saliency=spectral-residual"]
        share = budget.left() / (len(methods) - i)  # what is left, shared by the runs still to come
        rec = run_step(f"fashion-mnist {method}", cmd, budget, 30, share, steps)
        final = _final(results)
        entry = {"status": rec["status"], "wall_s": rec.get("seconds"), "epochs_done": _epochs_done(results),
                 "saliency": "spectral-residual" if method == "drw+smcl" and not contrib else None}
        if final is not None:
            entry.update({k: final.get(k) for k in ("top1", "many", "medium", "few", "best_top1", "best_epoch",
                                                    "wall_time_s", "epochs")})
        out["runs"][method] = entry
    (outdir / "train.json").write_text(json.dumps(out, indent=1))
    return out


# ----- summaries ---------------------------------------------------------------------------------

def _fmt(v, digits=3) -> str:
    if v is None:
        return "—"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def markdown(summary: dict) -> str:
    m = summary["machine"]
    lines = [f"# ltbench GPU self-check — {m['hostname']}", "",
             f"- started {summary['started']}, mode `{summary['mode']}`, device `{summary['device']}`, "
             f"budget {summary['budget_s']:.0f} s, took {summary['total_s']:.0f} s",
             f"- device: {m.get('device') or '—'}", f"- torch {m.get('torch') or '—'}, Python {m['python']}, "
             f"ltbench imported as `{summary['install']}`"]
    if not summary["opencv_contrib"]:
        lines.append("- **OpenCV contrib saliency missing**: SMCL ran with `saliency=spectral-residual` "
                     "(a different map; `pip install opencv-contrib-python-headless` for the reference operator)")
    lines += ["", "## Steps", "", "| step | status | s | note |", "|---|---|---|---|"]
    for s in summary["steps"]:
        lines.append(f"| {s['step']} | {s['status']} | {_fmt(s.get('seconds'))} | {s.get('note', '')} |")
    doc = summary.get("doctor") or {}
    if doc:
        lines += ["", f"## Doctor (ready: {doc.get('ready')})", ""]
        lines += [f"- {c['status']}: **{c['name']}**: {c['value']}" for c in doc.get("checks", [])]
    lines += ["", "## Tests", "", f"`{json.dumps(summary.get('pytest') or {})}` (pytest.log has the details)"]
    bench = summary.get("bench") or {}
    if bench:
        lines += ["", "## Bench (bf16, channels-last; medians)", "",
                  "| method | step / bare | step / ERM | bf16 speed-up | channels-last speed-up | input speed-up |",
                  "|---|---|---|---|---|---|"]
        for meth, f in bench.items():
            lines.append(f"| {meth} | {_fmt(f.get('overhead_ratio'))} | {_fmt(f.get('step_vs_erm'))} | "
                         f"{_fmt(f.get('bf16_speedup'))} | {_fmt(f.get('channels_last_speedup'))} | "
                         f"{_fmt(f.get('pipeline_speedup'))} |")
    train = summary.get("train") or {}
    if train.get("runs"):
        lines += ["", f"## Fashion-MNIST-LT ({train.get('data_note')})", "",
                  "| method | status | epochs | top1 | many | medium | few | wall s |", "|---" * 8 + "|"]
        for meth, r in train["runs"].items():
            lines.append(f"| {meth} | {r['status']} | {r.get('epochs_done')} | {_fmt(r.get('top1'), 4)} | "
                         f"{_fmt(r.get('many'), 4)} | {_fmt(r.get('medium'), 4)} | {_fmt(r.get('few'), 4)} | "
                         f"{_fmt(r.get('wall_s'))} |")
    elif train:
        lines += ["", f"## Fashion-MNIST-LT: skipped ({train.get('data_note')})"]
    return "\n".join(lines) + "\n"


def _machine(doctor: dict | None) -> dict:
    checks = {c["name"]: c for c in (doctor or {}).get("checks", [])}
    return {"hostname": socket.gethostname(), "python": platform.python_version(),
            "torch": checks.get("torch", {}).get("value"), "device": checks.get("device", {}).get("value")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", type=Path)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (the plumbing check)")
    p.add_argument("--budget", type=float, default=480.0, help="total seconds for every step (default 480)")
    p.add_argument("--reduced", action="store_true", help="tiny settings everywhere (a smoke test of the script)")
    p.add_argument("--skip", default="", help="comma-separated steps not to run: doctor, pytest, bench, train")
    p.add_argument("--train-methods", default=",".join(TRAIN_METHODS), help="Fashion-MNIST-LT runs (comma list)")
    p.add_argument("--install", default="importable", help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    if skip - set(STEPS):
        p.error(f"--skip: unknown step(s) {', '.join(sorted(skip - set(STEPS)))}; choose from {', '.join(STEPS)}")
    a.train_methods = tuple(m.strip() for m in a.train_methods.split(",") if m.strip())
    outdir = a.outdir
    outdir.mkdir(parents=True, exist_ok=True)
    if a.work is None:
        import tempfile

        a.work = Path(tempfile.mkdtemp(prefix="ltbench-gpu-check-"))
    a.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LTBENCH_RESULTS", str(a.work / "runs"))  # never write into the checkout
    py, budget, steps = sys.executable, Budget(a.budget), []
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def skipped(name: str) -> None:
        steps.append({"step": name, "status": "skipped", "seconds": 0.0, "note": "--skip"})

    doctor = None if "doctor" in skip else step_doctor(py, a, budget, steps, outdir)
    if "doctor" in skip:
        skipped("doctor")
    checks = {c["name"]: c for c in (doctor or {}).get("checks", [])}
    contrib = checks.get(CONTRIB, {}).get("status") == "ok" if doctor else _probe_contrib(py)
    counts = skipped("pytest") if "pytest" in skip else step_pytest(py, a, budget, steps, outdir)
    bench = skipped("bench") if "bench" in skip else step_bench(py, a, budget, steps, outdir, contrib)
    train = skipped("train") if "train" in skip else step_train(py, a, budget, steps, outdir, doctor, contrib)

    summary = {"started": started, "mode": "reduced" if a.reduced else "full", "device": a.device,
               "budget_s": a.budget, "total_s": round(time.monotonic() - budget.t0, 1), "install": a.install,
               "machine": _machine(doctor), "opencv_contrib": contrib, "doctor": doctor, "pytest": counts,
               "bench": bench, "train": train, "steps": [_public(s) for s in steps]}
    (outdir / "summary.json").write_text(json.dumps(summary, indent=1))
    (outdir / "summary.md").write_text(markdown(summary))
    failed = [s["step"] for s in steps if s["status"] in ("failed", "timed out")]
    print(f"gpu-check: {len(steps)} steps, failed or timed out: {', '.join(failed) or 'none'}; "
          f"summaries in {outdir}")
    return 1 if failed else 0


def _probe_contrib(py: str) -> bool:
    code = "import cv2; cv2.saliency.StaticSaliencyFineGrained_create()"
    try:
        return subprocess.run([py, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


if __name__ == "__main__":
    sys.exit(main())
