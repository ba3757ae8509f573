"""The validation split of resident data sets: seeded balanced halves of the test set, never overlapping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ltbench.config import build_spec
from ltbench.data.datasets import build_bundle
from ltbench.data.val_split import balanced_halves
from ltbench.predictions import read_predictions
from ltbench.spec_hash import spec_dict_hash
from ltbench.train import RuntimeOptions, run_directory, train


def _balanced(labels: np.ndarray, idx: np.ndarray, per_class: int, classes: int) -> bool:
    return np.bincount(labels[idx], minlength=classes).tolist() == [per_class] * classes


def test_halves_are_disjoint_cover_the_test_set_and_are_balanced():
    labels = np.random.default_rng(3).permutation(np.repeat(np.arange(10), 1000))  # CIFAR-10's test set
    val, test = balanced_halves(labels)
    assert not set(val.tolist()) & set(test.tolist())  # no test index in both halves
    assert sorted(val.tolist() + test.tolist()) == list(range(len(labels)))
    assert _balanced(labels, val, 500, 10) and _balanced(labels, test, 500, 10)
    again_val, _ = balanced_halves(labels)
    assert np.array_equal(val, again_val)  # fixed seed: every run shares the halves
    assert not np.array_equal(val, balanced_halves(labels, seed=1)[0])


def test_fashion_mnist_halves_are_balanced():
    from ltbench.data.datasets import DEBIAN_FASHION_MNIST, _read_idx

    path = DEBIAN_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz"
    if not path.exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    labels = _read_idx(path).astype(np.int64)
    val, test = balanced_halves(labels)
    assert not np.intersect1d(val, test).size
    assert _balanced(labels, val, 500, 10) and _balanced(labels, test, 500, 10)


def test_bundle_with_val_splits_the_test_set_and_its_metadata():
    full = build_bundle("shapes", 10, max_per_class=60)
    cut = build_bundle("shapes", 10, max_per_class=60, with_val=True)
    val, test = balanced_halves(full.test_labels.numpy())
    assert torch.equal(cut.val_images, full.test_images[torch.from_numpy(val)])
    assert torch.equal(cut.test_images, full.test_images[torch.from_numpy(test)])
    assert torch.equal(cut.test_labels, full.test_labels[torch.from_numpy(test)])
    for name, mask in full.test_meta.items():
        assert torch.equal(cut.test_meta[name], mask[torch.from_numpy(test)])
    assert torch.equal(cut.train_images, full.train_images)  # the training subset is untouched


def test_default_keeps_run_ids_and_val_select_changes_them(tiny):
    plain = build_spec("erm", "cifar10", 100, 0, "paper", {})
    on = build_spec("erm", "cifar10", 100, 0, "paper", {"val_select": True})
    spec = plain.to_dict()
    del spec["train"]["val_select"]  # as written before the field existed
    assert spec_dict_hash(spec) == plain.hash
    assert on.hash != plain.hash


def test_a_val_run_selects_on_val_and_reports_on_the_other_half(tmp_path, tiny):
    spec = build_spec("erm", "shapes", 10, 0, "paper", {**tiny, "epochs": 2, "val_select": True})
    final = train(spec, RuntimeOptions(results_dir=tmp_path, device="cpu", argv=["test"]))
    run_dir = run_directory(spec, tmp_path)
    assert final["eval_set"] == "test-half"
    assert final["val_selected"]["epoch"] in (0, 1)
    test, val = read_predictions(run_dir, json.loads((run_dir / "final.json").read_text()))
    full = build_bundle("shapes", 10, max_per_class=60)
    v_idx, t_idx = balanced_halves(full.test_labels.numpy())
    assert np.array_equal(test.labels, full.test_labels.numpy()[t_idx])
    assert np.array_equal(val.labels, full.test_labels.numpy()[v_idx])
    # the reported top-1 is the test half's, recomputed from the saved logits
    assert 100.0 * float((test.logits.argmax(1) == test.labels).mean()) == pytest.approx(final["top1"], abs=0.5)


def test_table_select_val_reports_the_val_selected_epoch(tmp_path, tiny):
    from typer.testing import CliRunner

    from ltbench.cli import app

    grid = tmp_path / "val.yaml"
    grid.write_text("methods: [erm]\ndatasets: [shapes]\nratios: [10]\nseeds: [0]\npreset: paper\n"
                    "max_per_class: 60\noverrides: {backbone: resnet8, batch_size: 64, epochs: 2, "
                    "val_select: true}\n")
    runs = tmp_path / "runs"
    res = CliRunner().invoke(app, ["sweep", str(grid), "--results-dir", str(runs), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    final = json.loads(next(runs.rglob("final.json")).read_text())
    res = CliRunner().invoke(app, ["table", str(grid), "--results-dir", str(runs), "--out", str(tmp_path / "o"),
                                   "--select", "val", "-f", "csv", "-f", "md"])
    assert res.exit_code == 0, res.output
    import pandas as pd

    csv = pd.read_csv(tmp_path / "o" / "val.csv")
    top1 = csv[csv["metric"] == "top1"]["mean"].iloc[0]
    assert top1 == pytest.approx(final["val_selected"]["top1"], abs=1e-4)
    assert "best validation top-1" in (tmp_path / "o" / "val.md").read_text().replace("\n", " ")
