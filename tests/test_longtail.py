"""Long-tailed subsets: counts by the LDAM formula, indices equal to the reference's, nesting."""

from __future__ import annotations

import numpy as np
import pytest

from ltbench.data import longtail_counts, longtail_indices, shot_groups, subset_sha

# CIFAR-100-LT r = 100 by the LDAM-DRW formula (docs/methods.md §CIFAR-LT subsets)
C100_R100 = [
    500, 477, 455, 434, 415, 396, 378, 361, 344, 328, 314, 299, 286, 273, 260, 248, 237, 226, 216, 206,
    197, 188, 179, 171, 163, 156, 149, 142, 135, 129, 123, 118, 112, 107, 102, 98, 93, 89, 85, 81,
    77, 74, 70, 67, 64, 61, 58, 56, 53, 51, 48, 46, 44, 42, 40, 38, 36, 35, 33, 32,
    30, 29, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 15, 14, 13, 13, 12,
    12, 11, 11, 10, 10, 9, 9, 8, 8, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5,
]


@pytest.mark.parametrize("classes,head,ratio,total,groups", [
    (100, 500, 100, 10847, (35, 35, 30)),
    (100, 500, 50, 12608, (41, 41, 18)),
    (100, 500, 10, 19573, (69, 31, 0)),
    (10, 5000, 100, 12406, (8, 2, 0)),
    (10, 5000, 50, 13996, (9, 1, 0)),
    (10, 5000, 10, 20431, (10, 0, 0)),
])
def test_cifar_totals_and_groups(classes, head, ratio, total, groups):
    counts = longtail_counts(classes, head, ratio)
    assert sum(counts) == total
    assert counts[0] == head and counts[-1] == int(head / ratio)
    sizes = shot_groups(counts)
    assert (len(sizes["many"]), len(sizes["medium"]), len(sizes["few"])) == groups


def test_cifar100_r100_counts_match_appendix():
    assert longtail_counts(100, 500, 100) == C100_R100
    assert longtail_counts(10, 5000, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_step_profile_and_bad_ratio():
    assert longtail_counts(4, 100, 10, "step") == [100, 100, 10, 10]
    with pytest.raises(ValueError):
        longtail_counts(10, 100, 0.5)
    with pytest.raises(ValueError):
        longtail_counts(10, 100, 10, "linear")


def _reference_indices(targets, counts, seed):
    """The LDAM-DRW gen_imbalanced_data procedure, with the global NumPy RNG it uses."""
    np.random.seed(seed)
    out = []
    for cls, n in enumerate(counts):
        idx = np.where(targets == cls)[0]
        np.random.shuffle(idx)
        out.append(idx[:n])
    return np.concatenate(out)


def test_indices_equal_reference_and_leave_global_rng_alone():
    rng = np.random.RandomState(7)
    targets = np.repeat(np.arange(10), 50)
    rng.shuffle(targets)
    counts = longtail_counts(10, 50, 10)
    expected = _reference_indices(targets, counts, seed=3)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    got = longtail_indices(targets, counts, seed=3)
    assert np.array_equal(np.random.get_state()[1], before)  # the global stream is untouched
    assert got.dtype == np.int64
    assert np.array_equal(got, expected)


def test_indices_hand_made_case():
    targets = np.array([1, 0, 0, 2, 1, 0])
    idx = longtail_indices(targets, [2, 1, 1], seed=0)
    assert len(idx) == 4
    assert list(targets[idx]) == [0, 0, 1, 2]  # grouped by class, head first
    assert set(idx[:2]) <= {1, 2, 5} and idx[2] in (0, 4) and idx[3] == 3
    with pytest.raises(ValueError):
        longtail_indices(targets, [4, 1, 1])


def test_subsets_nested_across_ratios_and_hash():
    targets = np.repeat(np.arange(10), 100)
    big = longtail_indices(targets, longtail_counts(10, 100, 10), seed=0)
    small = longtail_indices(targets, longtail_counts(10, 100, 100), seed=0)
    assert set(small) <= set(big)
    assert subset_sha(small) == subset_sha(small.copy()) != subset_sha(big)
