"""Training through the real trainer for tests: `runtime` (CPU options for a results folder) and
`check_exact_resume`, which trains a spec straight and stopped-after-one-epoch-then-resumed and checks the
two runs are bit-identical (numbers, weights, per-epoch losses). Shared by tests/test_train.py and the
BCL-family tests.
"""

from __future__ import annotations

import torch

from ltbench.files import read_jsonl
from ltbench.train import RuntimeOptions, run_directory, train

RESUMED_KEYS = ("top1", "many", "medium", "few", "per_class_acc", "best_top1", "best_epoch")


def runtime(path, **kw):
    return RuntimeOptions(results_dir=path, device="cpu", argv=["test"], **kw)


def check_exact_resume(spec, tmp_path):
    straight = train(spec, runtime(tmp_path / "a"))
    assert train(spec, runtime(tmp_path / "b", stop_after_epochs=1)) == {}
    assert [r["epoch"] for r in read_jsonl(run_directory(spec, tmp_path / "b") / "metrics.jsonl")] == [0]
    resumed = train(spec, runtime(tmp_path / "b"))
    for key in RESUMED_KEYS:
        assert resumed[key] == straight[key], key
    a = torch.load(run_directory(spec, tmp_path / "a") / "last.pt", weights_only=True)["model"]
    b = torch.load(run_directory(spec, tmp_path / "b") / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows_a = read_jsonl(run_directory(spec, tmp_path / "a") / "metrics.jsonl")
    rows_b = read_jsonl(run_directory(spec, tmp_path / "b") / "metrics.jsonl")
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]
    return straight
