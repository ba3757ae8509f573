"""Real data: Fashion-MNIST-LT from Debian's dataset-fashion-mnist (CI installs it)."""

from __future__ import annotations

import pytest

from ltbench.config import build_spec
from ltbench.data import build_bundle
from ltbench.errors import LtbenchError
from ltbench.train import RuntimeOptions, train

try:
    build_bundle("fashion-mnist", 100)
    HAVE_DATA = True
except LtbenchError:
    HAVE_DATA = False

needs_data = pytest.mark.skipif(
    not HAVE_DATA, reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")


@needs_data
def test_subsets_of_real_data():
    full = build_bundle("fashion-mnist", 100)
    assert full.class_counts == [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]
    assert full.train_images.shape == (14886, 1, 28, 28) and full.test_images.shape == (10000, 1, 28, 28)
    assert full.train_labels.bincount().tolist() == full.class_counts
    assert full.test_labels.bincount().tolist() == [1000] * 10
    head500 = build_bundle("fashion-mnist", 100, max_per_class=500)
    assert head500.class_counts == [500, 299, 179, 107, 64, 38, 23, 13, 8, 5]
    assert build_bundle("fashion-mnist", 100, max_per_class=500).subset_sha == head500.subset_sha


@needs_data
def test_one_quick_run_records_the_subset(tmp_path):
    spec = build_spec("erm", "fashion-mnist", 10, 0, "quick", {"epochs": 1, "max_per_class": 100})
    final = train(spec, RuntimeOptions(results_dir=tmp_path, device="cpu", argv=["test"]))
    assert final["train_class_counts"] == [100, 77, 59, 46, 35, 27, 21, 16, 12, 10]
    assert final["group_sizes"] == {"many": 0, "medium": 7, "few": 3}
    assert final["subset_sha"] == build_bundle("fashion-mnist", 10, max_per_class=100).subset_sha
    assert spec.run_id.startswith("fashion-mnist-h100-r10/erm/")
