"""Run records for the report tests: the committed fixture runs, and records written as the trainer writes them.

Shared by tests/test_report.py and tests/test_figures.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from ltbench.spec_hash import spec_dict_hash

RUNS = Path(__file__).resolve().parent / "fixtures" / "runs"


def put_run(setting_dir: Path, spec: dict, final: dict) -> Path:
    """A record as the trainer writes it: the directory named, and final.json stamped, with the spec's hash."""
    digest = spec_dict_hash(spec)
    d = setting_dir / spec["method"] / f"s{spec['seed']}-{digest}"
    d.mkdir(parents=True)
    (d / "spec.json").write_text(json.dumps(spec))
    (d / "final.json").write_text(json.dumps({**final, "spec_hash": digest}))
    return d


def fake_ablation(root: Path) -> None:
    """drw+smcl, mask_locator x 3, 2 seeds, CIFAR-100-LT r100 (fake numbers)."""
    base = json.loads(next((RUNS / "cifar100-r100" / "smcl").iterdir()).joinpath("spec.json").read_text())
    final = json.loads(next((RUNS / "cifar100-r100" / "smcl").iterdir()).joinpath("final.json").read_text())
    for i, loc in enumerate(("random", "center", "saliency")):
        for seed in (0, 1):
            spec = json.loads(json.dumps(base))
            spec.update(method="drw+smcl", seed=seed)
            spec["hparams"].update(drw=True, mask_locator=loc)
            put_run(root / "cifar100-r100", spec, {**final, "top1": 49.0 + i + seed, "few": 10.0 + i})
