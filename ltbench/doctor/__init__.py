"""`ltbench doctor`: is this machine ready to train, and on which device?

Each check returns one `Check` (a status, what was found, and a hint on what to do). `run_checks`
collects them for a requested device; `ready` says whether everything *required* for that device is
there (the command's exit code). Optional items (bf16, TF32, torch.compile, data sets other than the
procedural `shapes`) are reported but never fail the run.

Everything here must work on torch versions older than the pinned one (down to 2.4, the GPU images we
are lent ship such versions): APIs newer than that are reached through `getattr`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ltbench.doctor.check import FAIL, INFO, MIN_PYTHON, MIN_TORCH, OK, SKIP, WARN, Check, _version_tuple
from ltbench.doctor.device import check_bf16, check_compile, check_cuda_build, check_device, check_tf32
from ltbench.doctor.local import _FASHION_STEMS, check_datasets, check_results_dir, check_threads, find_dataset
from ltbench.doctor.software import check_opencv, check_packages, check_python, check_torch, check_torchvision

__all__ = ["FAIL", "INFO", "MIN_PYTHON", "MIN_TORCH", "OK", "SKIP", "WARN", "Check", "DoctorOptions",
           "_FASHION_STEMS", "_version_tuple", "check_bf16", "check_compile", "check_cuda_build", "check_datasets",
           "check_device", "check_opencv", "check_packages", "check_python", "check_results_dir", "check_tf32",
           "check_threads", "check_torch", "check_torchvision", "find_dataset", "ready", "report", "run_checks",
           "target_device"]

COMPILE_TIMEOUT_S = 120.0


@dataclass
class DoctorOptions:
    device: str = "auto"  # auto, cpu or cuda[:N]
    data_dir: Path | None = None
    results_dir: Path | None = None
    compile: bool = False  # try torch.compile (cold compile: tens of seconds)
    compile_timeout_s: float = COMPILE_TIMEOUT_S



def target_device(name: str) -> str:
    """'cpu' or 'cuda[:N]' for a --device value; ValueError for anything else (no CUDA needed to answer)."""
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu" or name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda[:N]")



# ----- the whole report ----------------------------------------------------------------------------

def run_checks(opts: DoctorOptions) -> list[Check]:
    """Every check for the requested device, in report order. Checks that need torch are skipped without it."""
    device = opts.device
    checks = [check_python(), check_torch()]
    if checks[-1].status == FAIL and "not importable" in checks[-1].value:
        return checks + [check_packages()]
    try:
        device = target_device(opts.device)
    except ValueError as exc:
        return checks + [Check("device", FAIL, str(exc), required=True)]
    steps: list[Callable[[], Check | list[Check]]] = [
        check_torchvision, check_packages, lambda: check_cuda_build(device), lambda: check_device(device),
        lambda: check_bf16(device), lambda: check_tf32(device),
        lambda: check_compile(device, opts.compile, opts.compile_timeout_s), check_opencv,
        lambda: check_datasets(opts.data_dir), lambda: check_results_dir(opts.results_dir), check_threads,
    ]
    for step in steps:
        try:
            got = step()
        except Exception as exc:  # a probe that breaks is a finding, not a crash of the report
            got = Check(getattr(step, "__name__", "check"), FAIL, f"{type(exc).__name__}: {exc}", required=True)
        checks.extend(got if isinstance(got, list) else [got])
    return checks


def ready(checks: list[Check]) -> bool:
    """True when no required check failed."""
    return not any(c.required and c.status == FAIL for c in checks)


def report(checks: list[Check], device: str) -> dict[str, Any]:
    """The JSON form: the device asked for, the verdict and every check."""
    return {"device": device, "ready": ready(checks), "checks": [asdict(c) for c in checks]}
