"""class_order: which classes become head and tail, as a spec field, in the subset and in `ltbench splits`."""

from __future__ import annotations

import json

import pytest
import torch

from ltbench.cli import app
from ltbench.config import build_spec
from ltbench.data.datasets import build_bundle
from ltbench.data.longtail import class_permutation, longtail_counts, ordered_counts
from ltbench.data.shots import shot_groups
from ltbench.errors import LtbenchError
from ltbench.splits import split_summary


def test_class_order_permutes_train_class_counts():
    ranked = longtail_counts(10, 60, 10)
    plain = build_bundle("shapes", 10, max_per_class=60)
    assert plain.class_counts == ranked  # 0 is the identity
    for order in (1, 2, 7):
        bundle = build_bundle("shapes", 10, max_per_class=60, class_order=order)
        counts = bundle.class_counts
        assert counts != ranked and sorted(counts, reverse=True) == ranked
        perm = class_permutation(10, order)
        assert sorted(perm) == list(range(10))
        assert [counts[c] for c in perm] == ranked  # the class at rank r gets the r-th count
        assert torch.bincount(bundle.train_labels, minlength=10).tolist() == counts  # the subset follows
        assert bundle.subset_sha != plain.subset_sha


def test_orders_differ_and_are_fixed():
    perms = {tuple(class_permutation(10, k)) for k in range(1, 6)}
    assert len(perms) == 5 and class_permutation(10, 3) == class_permutation(10, 3)
    with pytest.raises(ValueError):
        ordered_counts([3, 2, 1], -1)


def test_shot_groups_follow_the_permuted_counts():
    counts = ordered_counts(longtail_counts(10, 500, 100), 3)
    groups = shot_groups(counts, "shots-100-20")
    assert groups["many"] == sorted(c for c in range(10) if counts[c] > 100)
    assert groups["few"] == sorted(c for c in range(10) if counts[c] < 20)


def test_class_order_is_in_the_spec_and_run_id_only_when_set():
    base = build_spec("erm", "shapes", 100, 0, "cpu", {"max_per_class": 500})
    zero = build_spec("erm", "shapes", 100, 0, "cpu", {"max_per_class": 500, "class_order": 0})
    one = build_spec("erm", "shapes", 100, 0, "cpu", {"max_per_class": 500, "class_order": 1})
    assert base.run_id == zero.run_id and "class_order" not in base.canonical_json()
    assert one.class_order == 1 and one.run_id != base.run_id and '"class_order":1' in one.canonical_json()
    assert one.to_dict()["class_order"] == 1


@pytest.mark.parametrize("value,match", [(-1, "class_order"), (1.5, "integer")])
def test_bad_class_order_is_a_one_line_error(value, match):
    with pytest.raises(LtbenchError, match=match):
        build_spec("erm", "shapes", 100, 0, "cpu", {"class_order": value})


def test_splits_shows_the_permutation():
    from typer.testing import CliRunner

    summary = split_summary("fashion-mnist", 100, max_per_class=500, class_order=3)
    assert summary["permutation"] == class_permutation(10, 3)
    assert summary["counts"] == ordered_counts(longtail_counts(10, 500, 100), 3)
    res = CliRunner().invoke(app, ["splits", "-d", "fashion-mnist", "-r", "100", "--max-per-class", "500",
                                   "--class-order", "3", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["permutation"] == class_permutation(10, 3)
    res = CliRunner().invoke(app, ["splits", "-d", "fashion-mnist", "--class-order", "3"])
    assert "class order 3, head to tail: " + ", ".join(map(str, class_permutation(10, 3))) in res.output
