"""Shot rules at their boundaries, empty groups, and accuracy from one confusion matrix."""

from __future__ import annotations

import pytest
import torch

from ltbench.data import shot_groups
from ltbench.metrics import confusion_matrix, subset_accuracy, summarize

COUNTS = [101, 100, 21, 20, 19]


@pytest.mark.parametrize("rule,expected", [
    ("shots-100-20", {"many": [0], "medium": [1, 2, 3], "few": [4]}),
    ("shots-cmo-imagenet", {"many": [0], "medium": [1, 2], "few": [3, 4]}),
    ("shots-oltr", {"many": [0, 1], "medium": [2], "few": [3, 4]}),
])
def test_rules_at_the_boundaries(rule, expected):
    assert shot_groups(COUNTS, rule) == expected


def test_unknown_rule():
    with pytest.raises(ValueError, match="shots-100-20"):
        shot_groups(COUNTS, "thirds")


def test_confusion_matrix_and_summary_by_hand():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    preds = torch.tensor([0, 0, 0, 1, 1, 0, 2, 2])
    conf = confusion_matrix(preds, labels, 3)
    assert conf.tolist() == [[3, 1, 0], [1, 1, 0], [0, 0, 2]]
    out = summarize(conf, [500, 50, 5], "shots-100-20")
    assert out["top1"] == pytest.approx(100 * 6 / 8)  # plain top-1, not the class mean
    assert out["per_class_acc"] == [75.0, 50.0, 100.0]
    assert (out["many"], out["medium"], out["few"]) == (75.0, 50.0, 100.0)
    assert out["group_sizes"] == {"many": 1, "medium": 1, "few": 1}


def test_empty_group_is_none_not_zero():
    conf = confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1]), 2)
    out = summarize(conf, [5000, 2000], "shots-100-20")
    assert out["many"] == 100.0 and out["medium"] is None and out["few"] is None
    assert out["group_sizes"] == {"many": 2, "medium": 0, "few": 0}


def test_group_mean_is_unweighted_over_classes():
    # class 0: 1 of 1 right; class 1: 0 of 3 right; both "many": group = (100 + 0) / 2
    conf = confusion_matrix(torch.tensor([0, 0, 0, 0]), torch.tensor([0, 1, 1, 1]), 2)
    assert summarize(conf, [200, 200], "shots-100-20")["many"] == 50.0


def test_subset_accuracy():
    labels = torch.tensor([0, 0, 1, 1])
    preds = torch.tensor([0, 1, 1, 1])
    seen = torch.tensor([True, False, True, True])
    assert subset_accuracy(preds, labels, seen, [200, 10], "shots-100-20")["top1"] == 100.0
    assert subset_accuracy(preds, labels, ~seen, [200, 10], "shots-100-20")["few"] is None
    empty = subset_accuracy(preds, labels, torch.zeros(4, dtype=torch.bool), [200, 10], "shots-100-20")
    assert empty["top1"] is None
