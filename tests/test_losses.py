"""Tests for ltbench.losses against hand-computed and independent float64 references (sources: docs/methods.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ltbench.losses import (
    balanced_softmax_loss,
    class_balanced_weights,
    focal_loss,
    inverse_frequency_weights,
    ldam_loss,
    ldam_margins,
    sigmoid_focal_cb_loss,
    supcon_loss,
)

# LDAM-DRW imbalance_cifar.py construction of the CIFAR-LT per-class counts, ratio 100 (docs/methods.md)
CIFAR100_R100 = [int(500 * 0.01 ** (k / 99)) for k in range(100)]
CIFAR10_R100 = [int(5000 * 0.01 ** (k / 9)) for k in range(10)]


def test_cifar_counts_match_appendix_a():
    assert sum(CIFAR100_R100) == 10847
    assert CIFAR100_R100[:5] == [500, 477, 455, 434, 415]
    assert CIFAR100_R100[-5:] == [6, 5, 5, 5, 5]
    assert CIFAR10_R100 == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


# ----------------------------------------------------------------------------------------------
# class-balanced / inverse-frequency weights
# ----------------------------------------------------------------------------------------------


def _cb_reference(counts, beta):
    n = np.asarray(counts, dtype=np.float64)
    w = (1 - beta) / (1 - beta**n)
    return w / w.sum() * len(n)


def test_cb_weights_appendix_b_constants():
    # DRW CB weights, beta = 0.9999, sum = C, computed (docs/methods.md §ERM and DRW)
    w = class_balanced_weights(CIFAR100_R100, 0.9999)
    assert w.dtype == torch.float32 and w.shape == (100,)
    assert w[0].item() == pytest.approx(0.0449, abs=5e-5)
    assert w[-1].item() == pytest.approx(4.378, abs=5e-4)
    assert w.sum().item() == pytest.approx(100.0, rel=1e-6)
    w10 = class_balanced_weights(CIFAR10_R100, 0.9999)
    assert w10[0].item() == pytest.approx(0.0506, abs=5e-5)
    assert w10[-1].item() == pytest.approx(3.993, abs=5e-4)


def test_cb_weights_unsorted_and_single_image_class():
    counts = [7, 1, 300, 40]
    w = class_balanced_weights(counts, 0.999)
    np.testing.assert_allclose(w.numpy(), _cb_reference(counts, 0.999), rtol=1e-6)
    # weights follow their class, not their position
    perm = [2, 0, 3, 1]
    w_perm = class_balanced_weights([counts[i] for i in perm], 0.999)
    np.testing.assert_allclose(w_perm.numpy(), w.numpy()[perm], rtol=1e-6)
    # a one-image class has raw weight (1-b)/(1-b) = 1, the largest possible
    assert int(torch.argmax(w)) == 1
    # hand computation for two classes [1, 1000], beta = 0.999
    raw_head = 0.001 / (1 - 0.999**1000)
    expected = np.array([1.0, raw_head]) * 2 / (1.0 + raw_head)
    np.testing.assert_allclose(class_balanced_weights([1, 1000], 0.999).numpy(), expected, rtol=1e-6)


def test_cb_weights_equal_counts_and_beta_zero_are_ones():
    np.testing.assert_allclose(class_balanced_weights([50] * 6, 0.9999).numpy(), np.ones(6), rtol=1e-6)
    np.testing.assert_array_equal(class_balanced_weights(CIFAR100_R100, 0.0).numpy(), np.ones(100))


def test_cb_weights_input_types_and_errors():
    ref = class_balanced_weights([3, 9, 27], 0.99)
    for counts in (np.array([3, 9, 27]), torch.tensor([3, 9, 27])):
        w = class_balanced_weights(counts, 0.99)
        assert w.dtype == torch.float32 and w.device == torch.device("cpu")
        torch.testing.assert_close(w, ref)
    with pytest.raises(ValueError, match="beta"):
        class_balanced_weights([3, 9], 1.0)
    with pytest.raises(ValueError, match="positive"):
        class_balanced_weights([3, 0], 0.9)


def test_inverse_frequency_weights():
    w = inverse_frequency_weights([1, 2, 4])
    np.testing.assert_allclose(w.numpy(), np.array([1.0, 0.5, 0.25]) * 3 / 1.75, rtol=1e-6)
    assert w.sum().item() == pytest.approx(3.0)


# ----------------------------------------------------------------------------------------------
# LDAM
# ----------------------------------------------------------------------------------------------


def test_ldam_margins_appendix_b():
    for counts in (CIFAR100_R100, CIFAR10_R100):
        m = ldam_margins(counts)
        assert m[0].item() == pytest.approx(0.158, abs=5e-4)
        assert m[-1].item() == pytest.approx(0.5, abs=1e-7)
    m = ldam_margins([16, 1, 81], max_m=0.3)
    # n^-1/4 = [1/2, 1, 1/3], scaled so that the max is 0.3
    np.testing.assert_allclose(m.numpy(), [0.15, 0.3, 0.1], rtol=1e-6)


def _ldam_reference(logits, targets, counts, max_m, s, weight):
    z = logits.double().clone()
    n = torch.tensor(counts, dtype=torch.float64)
    m = n**-0.25
    m = m * max_m / m.max()
    for b, y in enumerate(targets.tolist()):
        z[b, y] -= m[y]
    nll = -torch.log_softmax(s * z, dim=1)[torch.arange(len(targets)), targets]
    w_y = weight.double()[targets]
    return (w_y * nll).sum() / w_y.sum(), (w_y * nll).mean()


def test_ldam_loss_matches_manual_weighted_mean():
    gen = torch.Generator().manual_seed(0)
    counts = [100, 50, 20, 10, 5]
    logits = torch.rand(8, 5, generator=gen) * 2 - 1  # cosine logits
    targets = torch.tensor([0, 1, 2, 3, 4, 4, 0, 2])
    weight = class_balanced_weights(counts, 0.9999)
    got = ldam_loss(logits, targets, counts, max_m=0.5, s=30.0, weight=weight)
    expected, plain_mean = _ldam_reference(logits, targets, counts, 0.5, 30.0, weight)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    # PyTorch's weighted mean normalises by sum w_y, not by the batch size
    assert abs(expected.item() - plain_mean.item()) > 1e-2
    # precomputed margins give the same value, and no weight == all-ones weight
    margins = ldam_margins(counts, 0.5)
    precomputed = ldam_loss(logits, targets, None, weight=weight, margins=margins)
    assert precomputed.item() == pytest.approx(got.item())
    unweighted, _ = _ldam_reference(logits, targets, counts, 0.5, 30.0, torch.ones(5))
    assert ldam_loss(logits, targets, counts).item() == pytest.approx(unweighted.item(), rel=1e-5)


def test_ldam_margin_only_on_true_class():
    # with zero margins LDAM is plain CE of s * z
    logits = torch.tensor([[0.2, -0.1, 0.5]])
    targets = torch.tensor([1])
    zero = ldam_loss(logits, targets, None, margins=torch.zeros(3), s=10.0)
    assert zero.item() == pytest.approx(F.cross_entropy(10.0 * logits, targets).item(), rel=1e-6)
    # hand computation: margin 0.2 on class 1 only, s = 10 -> logits [2, -3, 5]
    loss = ldam_loss(logits, targets, None, margins=torch.tensor([0.9, 0.2, 0.9]), s=10.0)
    expected = 3.0 + math.log(math.exp(2.0) + math.exp(-3.0) + math.exp(5.0))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_ldam_loss_errors():
    with pytest.raises(ValueError, match="margins"):
        ldam_loss(torch.zeros(2, 3), torch.tensor([0, 1]), None)
    with pytest.raises(ValueError, match="targets"):
        ldam_loss(torch.zeros(2, 3), torch.tensor([0, 1, 2]), [1, 2, 3])


# ----------------------------------------------------------------------------------------------
# focal losses
# ----------------------------------------------------------------------------------------------


def _batch(seed=1, batch=6, classes=4, scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, generator=gen) * scale
    targets = torch.randint(0, classes, (batch,), generator=gen)
    return logits, targets


def test_focal_gamma_zero_is_ce():
    logits, targets = _batch()
    assert focal_loss(logits, targets, 0.0).item() == pytest.approx(
        F.cross_entropy(logits, targets).item(), rel=1e-6
    )


def test_focal_ldam_code_convention():
    logits, targets = _batch()
    weight = torch.tensor([0.5, 1.0, 2.0, 0.5])
    z = logits.double()
    ce = -torch.log_softmax(z, 1)[torch.arange(6), targets] * weight.double()[targets]
    expected = ((1 - torch.exp(-ce)) ** 2.0 * ce).mean()
    assert focal_loss(logits, targets, 2.0, weight=weight).item() == pytest.approx(expected.item(), rel=1e-5)
    # gamma = 0 with a weight is the plain batch mean of weighted CE (not the weighted mean)
    assert focal_loss(logits, targets, 0.0, weight=weight).item() == pytest.approx(ce.mean().item(), rel=1e-5)


def _sigmoid_focal_reference(logits, targets, weight, gamma):
    z = logits.double()
    y = F.one_hot(targets, z.shape[1]).double()
    bce = -(y * F.logsigmoid(z) + (1 - y) * F.logsigmoid(-z))
    one_minus_pt = torch.where(y > 0, torch.sigmoid(-z), torch.sigmoid(z))
    alpha = torch.ones(len(targets), dtype=torch.float64) if weight is None else weight.double()[targets]
    return (alpha[:, None] * one_minus_pt**gamma * bce).sum() / z.shape[0]


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_sigmoid_focal_cb_matches_float64_formula(gamma):
    logits, targets = _batch(seed=2, scale=3.0)
    weight = class_balanced_weights([40, 20, 5, 1], 0.99)
    for w in (weight, None):
        got = sigmoid_focal_cb_loss(logits, targets, w, gamma)
        expected = _sigmoid_focal_reference(logits, targets, w, gamma)
        assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_sigmoid_focal_cb_extreme_logits_are_stable():
    logits = torch.tensor([[100.0, -100.0, 0.0], [-100.0, 100.0, 30.0]], requires_grad=True)
    targets = torch.tensor([0, 0])
    loss = sigmoid_focal_cb_loss(logits, targets, None, 2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.all(torch.isfinite(logits.grad))
    expected = _sigmoid_focal_reference(logits.detach(), targets, None, 2.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # gamma = 0 is the class-balanced sigmoid BCE, summed over classes, divided by the batch size
    logits2, targets2 = _batch(seed=3)
    bce = F.binary_cross_entropy_with_logits(logits2, F.one_hot(targets2, 4).float(), reduction="sum") / 6
    assert sigmoid_focal_cb_loss(logits2, targets2, None, 0.0).item() == pytest.approx(bce.item(), rel=1e-6)


# ----------------------------------------------------------------------------------------------
# balanced softmax
# ----------------------------------------------------------------------------------------------


def test_balanced_softmax_matches_manual():
    logits, targets = _batch(seed=4)
    counts = [300, 50, 10, 2]
    log_prior = torch.log(torch.tensor(counts, dtype=torch.float64) / sum(counts))
    nll = -torch.log_softmax(logits.double() + log_prior, 1)[torch.arange(6), targets]
    assert balanced_softmax_loss(logits, targets, counts).item() == pytest.approx(nll.mean().item(), rel=1e-5)
    weight = torch.tensor([0.2, 1.0, 1.5, 3.0])
    w_y = weight.double()[targets]
    got = balanced_softmax_loss(logits, targets, torch.tensor(counts), weight=weight)
    assert got.item() == pytest.approx(((w_y * nll).sum() / w_y.sum()).item(), rel=1e-5)
    # equal counts: plain CE
    assert balanced_softmax_loss(logits, targets, [5, 5, 5, 5]).item() == pytest.approx(
        F.cross_entropy(logits, targets).item(), rel=1e-6
    )


# ----------------------------------------------------------------------------------------------
# supervised contrastive loss
# ----------------------------------------------------------------------------------------------


def _supcon_reference(features, labels, temperature, base_temperature, contrast_mode="all"):
    """Independent float64 reference: a double loop over anchors and contrast vectors (SupCon eq. 2)."""
    batch, views, _ = features.shape
    if labels is None:
        labels = list(range(batch))
    else:
        labels = labels.tolist()
    vecs = [features[b, v] for v in range(views) for b in range(batch)]  # view-major
    labs = [labels[b] for v in range(views) for b in range(batch)]
    anchors = range(len(vecs)) if contrast_mode == "all" else range(batch)
    out = []
    for a in anchors:
        others = [q for q in range(len(vecs)) if q != a]
        log_den = torch.logsumexp(torch.stack([vecs[a] @ vecs[q] / temperature for q in others]), 0)
        positives = [p for p in others if labs[p] == labs[a]]
        if not positives:
            out.append(torch.zeros((), dtype=features.dtype))
            continue
        terms = torch.stack([vecs[a] @ vecs[p] / temperature - log_den for p in positives])
        out.append(-(temperature / base_temperature) * terms.mean())
    return torch.stack(out)


def _unit_features(batch, views, dim, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(batch, views, dim, generator=gen, dtype=dtype), dim=-1)


def test_supcon_hand_checked_single_view_with_singleton():
    # f0 = f1 = e1 (label 0), f2 = e2 (label 1, no positive), T = base = 1
    features = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]], [[0.0, 1.0]]])
    labels = torch.tensor([0, 0, 1])
    per_anchor = supcon_loss(features, labels, temperature=1.0, base_temperature=1.0, reduction="none")
    # anchor 0: -log(e^1 / (e^1 + e^0)) = log(1 + e^-1); the singleton contributes 0 but counts in the mean
    a0 = math.log1p(math.exp(-1.0))
    np.testing.assert_allclose(per_anchor.numpy(), [a0, a0, 0.0], rtol=1e-6, atol=1e-7)
    mean = supcon_loss(features, labels, temperature=1.0, base_temperature=1.0)
    assert mean.item() == pytest.approx(2 * a0 / 3, rel=1e-6)


def test_supcon_hand_checked_three_views_simclr_and_one_mode():
    # one sample, three views e1, e2, e1; SimCLR mode: every other view is a positive
    features = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
    per_anchor = supcon_loss(features, None, temperature=1.0, base_temperature=1.0, reduction="none")
    # view 0: positives dot 0 and 1, denominator e^0 + e^1 -> log(1 + e) - 0.5; view 1: log 2
    v0 = math.log1p(math.e) - 0.5
    np.testing.assert_allclose(per_anchor.numpy(), [v0, math.log(2.0), v0], rtol=1e-6)
    one = supcon_loss(features, None, temperature=1.0, base_temperature=1.0, contrast_mode="one")
    assert one.item() == pytest.approx(v0, rel=1e-6)


@pytest.mark.parametrize("views", [1, 2, 3])
@pytest.mark.parametrize("contrast_mode", ["all", "one"])
def test_supcon_matches_double_loop_reference(views, contrast_mode):
    features = _unit_features(5, views, 4, seed=views)
    labels = torch.tensor([0, 1, 0, 2, 1])  # label 2 is a singleton: no positive when V = 1
    for lab in (labels, None):
        got = supcon_loss(
            features,
            lab,
            temperature=0.2,
            base_temperature=0.3,
            contrast_mode=contrast_mode,
            reduction="none",
        )
        ref = _supcon_reference(features.double(), lab, 0.2, 0.3, contrast_mode)
        assert got.shape == (5 * views if contrast_mode == "all" else 5,)
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


def test_supcon_labels_none_equals_distinct_labels():
    features = _unit_features(4, 2, 3, seed=7)
    assert supcon_loss(features).item() == pytest.approx(supcon_loss(features, torch.arange(4)).item())


def test_supcon_gradient_matches_float64_reference():
    base = _unit_features(4, 2, 3, seed=11, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 3])
    x = base.clone().requires_grad_(True)
    supcon_loss(x, labels, temperature=0.5, base_temperature=0.7).backward()
    x_ref = base.clone().requires_grad_(True)
    _supcon_reference(x_ref, labels, 0.5, 0.7).mean().backward()
    np.testing.assert_allclose(x.grad.numpy(), x_ref.grad.numpy(), rtol=1e-4, atol=1e-6)
    # the reference itself agrees with finite differences
    probe = base.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: _supcon_reference(f, labels, 0.5, 0.7).mean(), (probe,))


def test_supcon_base_temperature_scaling():
    features = _unit_features(6, 2, 8, seed=3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    hidden_scale = supcon_loss(features, labels, temperature=0.1)  # base 0.07 by default
    no_scale = supcon_loss(features, labels, temperature=0.1, base_temperature=0.1)
    assert hidden_scale.item() == pytest.approx(no_scale.item() * 0.1 / 0.07, rel=1e-6)


def test_supcon_runs_in_fp32_on_half_input():
    features = _unit_features(4, 2, 8, seed=5)
    labels = torch.tensor([0, 1, 0, 1])
    out = supcon_loss(features.to(torch.bfloat16), labels)
    assert out.dtype == torch.float32
    ref = supcon_loss(features.to(torch.bfloat16).float(), labels)
    assert out.item() == pytest.approx(ref.item(), rel=1e-6)


def test_supcon_errors():
    f = _unit_features(3, 2, 4, seed=0)
    with pytest.raises(ValueError, match=r"\[B, V, d\]"):
        supcon_loss(f[:, 0])
    with pytest.raises(ValueError, match="labels"):
        supcon_loss(f, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="contrast_mode"):
        supcon_loss(f, contrast_mode="two")
    with pytest.raises(ValueError, match="reduction"):
        supcon_loss(f, reduction="sum")
    with pytest.raises(ValueError, match="at least 2"):
        supcon_loss(f[:1, :1])
