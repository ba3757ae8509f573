"""Tests for ltbench.data.sampling (CMO's sampler, SMCL eq. 2-3; docs/methods.md §SMCL, row I)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltbench.data.sampling import class_index_table, class_sampling_probabilities, sample_indices

CIFAR100_R100 = [int(500 * 0.01 ** (k / 99)) for k in range(100)]
CIFAR10_R100 = [int(5000 * 0.01 ** (k / 9)) for k in range(10)]


def _effective(n, beta):
    n = np.asarray(n, dtype=np.float64)
    return (1 - beta**n) / (1 - beta)


def test_class_level_appendix_b():
    p = class_sampling_probabilities(CIFAR100_R100, "class-level")  # beta default 0.9999
    assert p.dtype == np.float64 and p.sum() == pytest.approx(1.0, abs=1e-12)
    assert p[-1] == pytest.approx(0.04378, abs=5e-6)
    assert p[0] == pytest.approx(0.000449, abs=5e-7)
    assert p[-1] / p[0] == pytest.approx(97.6, abs=0.05)
    for beta, ratio in ((0.999, 78.9), (0.99, 20.3)):
        q = class_sampling_probabilities(CIFAR100_R100, "class-level", beta=beta)
        assert q[-1] / q[0] == pytest.approx(ratio, abs=0.05)
    p10 = class_sampling_probabilities(CIFAR10_R100, "class-level", beta=0.9999)
    assert p10[-1] == pytest.approx(0.399, abs=5e-4)
    assert p10[0] == pytest.approx(0.00506, abs=5e-6)
    assert p10[-1] / p10[0] == pytest.approx(78.9, abs=0.05)


def test_each_kind_against_formula():
    counts = [40, 3, 250, 1, 17]
    n = np.array(counts, dtype=np.float64)

    def norm(x):
        return x / x.sum()

    cases = {
        ("instance", ()): norm(n),
        ("uniform", ()): np.full(5, 0.2),
        ("cmo", ()): np.full(5, 0.2),  # alpha = 1: class-uniform (CMO get_weighted_sampler)
        ("cmo", (("alpha", 0.0),)): norm(n),
        ("cmo", (("alpha", 0.5),)): norm(np.sqrt(n)),
        ("cmo", (("alpha", 2.0),)): norm(1 / n),
        ("effective-number", ()): norm(n / _effective(n, 0.9999)),
        ("effective-number", (("beta", 0.9),)): norm(n / _effective(n, 0.9)),
        ("class-level", ()): norm(1 / _effective(n, 0.9999)),
        ("class-level", (("beta", 0.0),)): np.full(5, 0.2),
    }
    for (kind, params), expected in cases.items():
        got = class_sampling_probabilities(counts, kind, **dict(params))
        np.testing.assert_allclose(got, expected, rtol=1e-12, err_msg=f"{kind} {params}")
        assert got.sum() == pytest.approx(1.0, abs=1e-12)
    # tensors are accepted
    torch_in = class_sampling_probabilities(torch.tensor(counts), "class-level")
    np.testing.assert_allclose(torch_in, cases[("class-level", ())], rtol=1e-12)


def test_cmo_alpha_one_uniform_and_effective_number_near_uniform():
    uniform = class_sampling_probabilities(CIFAR100_R100, "cmo")
    np.testing.assert_allclose(uniform, np.full(100, 0.01), rtol=1e-12)
    # docs/methods.md §SMCL, row I: the per-sample 1/E_y sampler is nearly class-uniform (~1.03x on heads)
    p = class_sampling_probabilities(CIFAR100_R100, "effective-number")
    assert p[0] / p[-1] == pytest.approx(1.025, abs=0.005)


@pytest.mark.parametrize("kind", ["instance", "uniform", "cmo", "effective-number", "class-level"])
def test_empty_class_gets_zero(kind):
    p = class_sampling_probabilities([10, 0, 5, 0], kind)
    assert p[1] == 0.0 and p[3] == 0.0
    assert p[0] > 0 and p[2] > 0 and p.sum() == pytest.approx(1.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="class-level"):  # message lists the valid kinds
        class_sampling_probabilities([1, 2], "balanced")
    with pytest.raises(ValueError, match="beta"):  # message lists the valid parameter
        class_sampling_probabilities([1, 2], "class-level", alpha=1.0)
    with pytest.raises(ValueError, match="none"):
        class_sampling_probabilities([1, 2], "instance", beta=0.9)
    with pytest.raises(ValueError, match="beta"):
        class_sampling_probabilities([1, 2], "effective-number", beta=1.0)
    with pytest.raises(ValueError, match="non-negative"):
        class_sampling_probabilities([1, -2], "instance")
    with pytest.raises(ValueError, match="non-empty class"):
        class_sampling_probabilities([0, 0], "instance")


def test_class_index_table():
    labels = torch.tensor([2, 0, 1, 0, 2, 2])
    order, offsets = class_index_table(labels, 4)
    assert order.tolist() == [1, 3, 2, 0, 4, 5]
    assert offsets.tolist() == [0, 2, 3, 6, 6]  # class 3 is empty
    assert order.device == labels.device and offsets.device == labels.device
    with pytest.raises(ValueError, match="labels"):
        class_index_table(torch.tensor([0, 4]), 4)
    with pytest.raises(ValueError, match="integer"):
        class_index_table(torch.tensor([0.0, 1.0]), 2)


def _dataset(counts, seed=0):
    labels = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    return labels[perm]


def test_sample_indices_reproducible():
    labels = _dataset([30, 10, 3, 0, 1])
    order, offsets = class_index_table(labels, 5)
    probs = torch.from_numpy(class_sampling_probabilities([30, 10, 3, 0, 1], "class-level", beta=0.9))
    a = sample_indices(probs, order, offsets, 500, torch.Generator().manual_seed(123))
    b = sample_indices(probs, order, offsets, 500, torch.Generator().manual_seed(123))
    assert torch.equal(a, b)
    assert a.dtype == torch.long and a.shape == (500,)
    gen = torch.Generator().manual_seed(123)
    first = sample_indices(probs, order, offsets, 500, gen)
    second = sample_indices(probs, order, offsets, 500, gen)
    assert torch.equal(first, a) and not torch.equal(first, second)
    assert not torch.equal(a, sample_indices(probs, order, offsets, 500, torch.Generator().manual_seed(124)))


def test_sample_indices_frequencies():
    counts = [400, 120, 37, 9, 0, 2]
    labels = _dataset(counts, seed=1)
    order, offsets = class_index_table(labels, len(counts))
    p = class_sampling_probabilities(counts, "class-level", beta=0.99)
    n = 20_000
    idx = sample_indices(torch.from_numpy(p), order, offsets, n, torch.Generator().manual_seed(0))
    assert int(idx.min()) >= 0 and int(idx.max()) < len(labels)
    drawn = labels[idx]
    freq = torch.bincount(drawn, minlength=len(counts)).double().numpy() / n
    sigma = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= 5 * sigma + 1e-12)
    assert freq[4] == 0.0  # empty class never drawn
    # within a class every image is reachable and roughly uniform: class 3 (9 images)
    per_image = torch.bincount(idx[drawn == 3], minlength=len(labels))[labels == 3].double().numpy()
    expected = per_image.sum() / 9
    assert np.all(per_image > 0)
    assert np.all(np.abs(per_image - expected) <= 5 * np.sqrt(expected))
