"""Edge cases of ltbench.losses that tests/test_losses.py leaves open: count validation, input dtypes, autocast,
default hyper-parameters and numerical range. Every expected value is an independent float64 computation here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ltbench.losses import (
    _autocast_off,
    balanced_softmax_loss,
    class_balanced_weights,
    focal_loss,
    inverse_frequency_weights,
    ldam_loss,
    ldam_margins,
    sigmoid_focal_cb_loss,
    supcon_loss,
)


def _batch(seed=0, batch=6, classes=4):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, classes, generator=gen) * 2
    targets = torch.tensor([k % classes for k in range(batch)])
    return logits, targets


def _unit_features(batch, views, dim, seed):
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(batch, views, dim, generator=gen), dim=-1)


def _supcon_ref(features, labels, temperature, base_temperature):
    """float64 SupCon L^sup_out over all B*V anchors (view-major), via logsumexp over the non-self vectors."""
    batch, views, _ = features.shape
    vecs = features.double().transpose(0, 1).reshape(batch * views, -1)
    labs = labels.repeat(views)
    out = []
    for a in range(len(vecs)):
        others = [q for q in range(len(vecs)) if q != a]
        log_den = torch.logsumexp(torch.stack([vecs[a] @ vecs[q] / temperature for q in others]), 0)
        pos = [p for p in others if labs[p] == labs[a]]
        if not pos:
            out.append(0.0)
            continue
        mean_lp = sum((vecs[a] @ vecs[p] / temperature - log_den).item() for p in pos) / len(pos)
        out.append(-(temperature / base_temperature) * mean_lp)
    return float(np.mean(out))


# ----- class counts: shape and value validation -------------------------------------------------------------


@pytest.mark.parametrize("fn", [lambda c: class_balanced_weights(c, 0.9), inverse_frequency_weights, ldam_margins])
def test_counts_must_be_a_non_empty_1d_sequence(fn):
    with pytest.raises(ValueError, match="1-D"):
        fn([[3, 4], [5, 6]])
    with pytest.raises(ValueError, match="1-D"):
        fn([])
    with pytest.raises(ValueError):
        fn([5, None])  # a missing count is a bad value, not a type error


def test_single_class_counts_are_accepted():
    np.testing.assert_array_equal(class_balanced_weights([7], 0.9).numpy(), [1.0])
    np.testing.assert_array_equal(inverse_frequency_weights([7]).numpy(), [1.0])
    np.testing.assert_allclose(ldam_margins([7], max_m=0.4).numpy(), [0.4], rtol=1e-7)


def test_float32_count_tensor_is_computed_in_float64():
    # 1 - 0.9999**n loses ~4 digits in float32 for small n; the documented float64 path does not
    counts = [5000.0, 50.0, 3.0]
    n = np.asarray(counts)
    raw = (1 - 0.9999) / (1 - 0.9999**n)
    expected = raw / raw.sum() * 3
    for dtype in (torch.float32, torch.float16):
        w = class_balanced_weights(torch.tensor(counts, dtype=dtype), 0.9999)
        assert w.dtype == torch.float32
        np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)


def test_ldam_margins_are_float32():
    m = ldam_margins(np.array([16, 1, 81]), max_m=0.3)
    assert m.dtype == torch.float32
    np.testing.assert_allclose(m.numpy(), [0.15, 0.3, 0.1], rtol=1e-6)


# ----- per-class vectors are cast to float32 --------------------------------------------------------------


def test_float64_weight_is_cast_to_float32():
    logits, targets = _batch()
    w32 = torch.tensor([0.5, 1.0, 2.0, 0.25])
    w64 = w32.double()
    z = logits.double()
    ce = -torch.log_softmax(z, 1)[torch.arange(6), targets] * w64[targets]
    focal = ((1 - torch.exp(-ce)) ** 2.0 * ce).mean().item()
    got = focal_loss(logits, targets, 2.0, weight=w64)
    assert got.dtype == torch.float32 and got.item() == pytest.approx(focal, rel=1e-5)
    for out in (
        sigmoid_focal_cb_loss(logits, targets, w64, 1.0),
        balanced_softmax_loss(logits, targets, torch.tensor([4, 3, 2, 1]), weight=w64),
        ldam_loss(logits, targets, None, weight=w64, margins=torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)),
    ):
        assert out.dtype == torch.float32


# ----- LDAM: max_m reaches the margins ------------------------------------------------------------------------


def test_ldam_loss_uses_max_m():
    logits, targets = _batch(seed=1)
    counts = [16, 1, 81, 256]
    m = np.asarray(counts, dtype=np.float64) ** -0.25
    m = m * 0.3 / m.max()
    z = logits.double().numpy().copy()
    z[np.arange(6), targets.numpy()] -= m[targets.numpy()]
    z = 10.0 * z
    nll = -(z[np.arange(6), targets.numpy()] - np.log(np.exp(z).sum(axis=1)))
    got = ldam_loss(logits, targets, counts, max_m=0.3, s=10.0)
    assert got.item() == pytest.approx(nll.mean(), rel=1e-5)


# ----- Balanced Softmax with a list of counts --------------------------------------------------------------


def test_balanced_softmax_list_counts_with_weight_is_float32():
    logits, targets = _batch(seed=2)
    counts = [300, 50, 10, 2]
    weight = torch.tensor([0.2, 1.0, 1.5, 3.0])
    log_prior = np.log(np.asarray(counts, dtype=np.float64) / sum(counts))
    z = logits.double().numpy() + log_prior
    nll = -(z[np.arange(6), targets.numpy()] - np.log(np.exp(z).sum(axis=1)))
    w_y = weight.double().numpy()[targets.numpy()]
    for c in (counts, np.asarray(counts, dtype=np.float64)):
        got = balanced_softmax_loss(logits, targets, c, weight=weight)
        assert got.dtype == torch.float32
        assert got.item() == pytest.approx((w_y * nll).sum() / w_y.sum(), rel=1e-5)
    assert balanced_softmax_loss(logits, targets, counts).dtype == torch.float32


# ----- SupCon -----------------------------------------------------------------------------------------------


def test_supcon_default_temperatures_are_0_07():
    features = _unit_features(4, 2, 5, seed=3)
    labels = torch.tensor([0, 1, 0, 1])
    expected = _supcon_ref(features, labels, 0.07, 0.07)
    assert supcon_loss(features, labels).item() == pytest.approx(expected, rel=1e-5)


def test_supcon_two_vectors_are_enough():
    # one sample with two views (SimCLR), or two single-view samples: the loss is defined (and 0: one candidate)
    pair = _unit_features(1, 2, 3, seed=4)
    np.testing.assert_allclose(supcon_loss(pair, reduction="none").numpy(), [0.0, 0.0], atol=1e-6)
    single = _unit_features(2, 1, 3, seed=5)
    assert supcon_loss(single, torch.tensor([0, 0])).item() == pytest.approx(0.0, abs=1e-6)


def test_supcon_small_temperature_is_finite():
    # 1/T = 50: exp of an unshifted logit pair sum (up to 2/T = 100) overflows float32, the max-shifted one does not
    features = _unit_features(5, 2, 4, seed=6)
    labels = torch.tensor([0, 1, 0, 1, 2])
    got = supcon_loss(features, labels, temperature=0.02, base_temperature=0.02)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(_supcon_ref(features, labels, 0.02, 0.02), rel=1e-5)


def test_supcon_disables_cpu_autocast():
    # under autocast the matmul would run in bfloat16 (about 3 significant digits); the loss must stay float32
    features = _unit_features(6, 2, 16, seed=7)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    expected = _supcon_ref(features, labels, 0.1, 0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = supcon_loss(features, labels, temperature=0.1, base_temperature=0.1)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_autocast_off_on_a_device_without_autocast():
    # the meta device has no autocast: the helper must not try to switch it off there (torch.autocast would raise)
    with _autocast_off(torch.device("meta")):
        pass
    with torch.autocast("cpu", dtype=torch.bfloat16), _autocast_off(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")


def test_supcon_without_is_autocast_available(monkeypatch):
    # torch < 2.4 (pyproject allows torch >= 2.1) has no torch.amp.is_autocast_available: the loss still runs
    monkeypatch.delattr(torch.amp, "is_autocast_available")
    features = _unit_features(4, 2, 5, seed=8)
    labels = torch.tensor([0, 1, 1, 0])
    got = supcon_loss(features, labels, temperature=0.5, base_temperature=0.5)
    assert got.item() == pytest.approx(_supcon_ref(features, labels, 0.5, 0.5), rel=1e-5)
