"""The CLI through typer's CliRunner: a run, listings, splits, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from ltbench.cli import app

runner = CliRunner()
TINY_SET = ["--set", "backbone=resnet8", "--set", "max_per_class=60", "--set", "batch_size=64"]


def _ok(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_run_then_rerun_is_a_noop(tmp_path):
    args = ["run", "--method", "erm", "--dataset", "shapes", "--ratio", "10", "--epochs", "1", "--device", "cpu",
            "--results-dir", str(tmp_path), *TINY_SET]
    out = _ok(args)
    assert "top1" in out
    finals = list(tmp_path.rglob("final.json"))
    assert len(finals) == 1
    stamp = finals[0].stat().st_mtime_ns
    _ok(args)
    assert finals[0].stat().st_mtime_ns == stamp


def test_listings():
    out = _ok(["list", "methods"])
    for name in ("erm", "ldam-drw", "drw+cmo", "smcl", "drw+smcl"):
        assert name in out
    out = _ok(["list", "datasets"])
    assert "fashion-mnist" in out and "shapes" in out


def test_splits_json():
    data = json.loads(_ok(["splits", "--dataset", "cifar100", "--ratio", "100", "--json"]))
    assert data["total"] == 10847
    assert data["group_sizes"]["shots-100-20"] == {"many": 35, "medium": 35, "few": 30}


def test_splits_export(tmp_path):
    labels = np.repeat(np.arange(5), 20)
    np.save(tmp_path / "labels.npy", labels)
    _ok(["splits", "--labels", str(tmp_path / "labels.npy"), "--ratio", "10", "--seed", "0",
         "--out", str(tmp_path / "idx.npy")])
    idx = np.load(tmp_path / "idx.npy")
    assert np.bincount(labels[idx]).tolist() == [20, 11, 6, 3, 2]


# Bad input: the corpus in tests/test_bad_input.py.
