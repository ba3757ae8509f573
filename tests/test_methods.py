"""Every registered method trains one epoch through the one trainer (new methods are covered automatically)."""

from __future__ import annotations

import pytest

from ltbench.config import build_spec
from ltbench.registry import list_methods
from ltbench.train import RuntimeOptions, run_directory, train

METHODS = [entry.name for entry in list_methods()]


def test_expected_methods_are_registered():
    assert set(METHODS) >= {"erm", "drw", "ldam-drw", "cb-focal", "balanced-softmax", "mixup", "cutmix", "cmo",
                            "drw+mixup", "drw+cutmix", "drw+cmo", "scl", "scl+drw", "smcl", "drw+smcl",
                            "bcl", "concutmix"}
    assert all(entry.description for entry in list_methods())


@pytest.mark.parametrize("method", METHODS)
def test_one_epoch_on_shapes(method, tmp_path, tiny):
    spec = build_spec(method, "shapes", 10, 0, "paper", {**tiny, "epochs": 1})
    final = train(spec, RuntimeOptions(results_dir=tmp_path, device="cpu", argv=["test"]))
    assert 0.0 <= final["top1"] <= 100.0
    assert (run_directory(spec, tmp_path) / "final.json").exists()
