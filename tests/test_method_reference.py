"""Each method's training step against an independent computation of its formula, on fixed tensors.

The formulas are written out literally (float64, loops where that is clearer) from their sources, not by
calling the library: here LDAM (Cao et al., arXiv 1906.07413; kaidic/LDAM-DRW losses.py), the sigmoid focal
loss (Cui et al.; richardaecn/class-balanced-loss src/cifar_main.py), Balanced Softmax (Ren et al., arXiv
2007.10740), Mixup / CutMix / CMO (naver-ai/cmo cifar_train.py) and SMCL (arXiv 2406.02223, as reconstructed
in the module docstring of methods/smcl.py); in tests/reference.py (shared with other test modules)
cross-entropy with PyTorch's weighted-mean reduction, class-balanced weights and SupCon, and the helpers
that build a method and take one step. The fake trainer's model (tests/fakes.py) gives logits and features
that depend on the pixels, so wrong labels, weights, views or lambdas change the numbers.
"""

from __future__ import annotations

import math

import pytest
import torch

from ltbench.config import build_spec
from ltbench.registry import get_method
from ltbench.saliency import locate

from .fakes import COUNTS, FakeServices
from .reference import TOL, batch_for, cb_weights, ce_rows, logits_of, make, step, supcon, weighted_ce

# ----- SMCL / SCL --------------------------------------------------------------------------------

SMCL_SET = {"w_ce": 0.7, "w_sc": 0.4, "temperature": 0.2, "base_temperature": 0.15, "mask_prob": 1.0,
            "mask_start_epoch": 2, "mask_beta": 0.6, "target_beta": 0.99}


def smcl_expected(method, sv, batch, rng, drw_on: bool):
    """(loss, ce, supcon, xm, lam_b) of SMCL's masked step from eq. (5), (7), (8) (docs/methods.md §SMCL)."""
    hp = method.hp
    x1, x2 = batch.views
    y = batch.labels
    h, w = x1.shape[-2:]
    assert rng.random() < hp.mask_prob  # the per-batch masking draw
    lam_tilde = rng.beta(hp.mask_beta, hp.mask_beta)
    # the target images: the pool images that were drawn, augmented with the two source pipelines
    target_images, yt = sv.drawn[-1]
    xt1, xt2 = sv.augment(hp.view1, target_images), sv.augment(hp.view2, target_images)
    # box: centre from the locator, side int(H sqrt(1 - lam~)) per axis, [c - cut//2, c + cut//2) clipped
    if hp.mask_locator == "center":
        rows, cols = [h // 2] * len(y), [w // 2] * len(y)
    else:
        # RGB: SaliencyMix's own statistics for the normalised input
        r, c = locate(x1, "saliency", hp.saliency, hp.saliency_input, pad=getattr(hp, "saliency_pad", "include"))
        rows, cols = r.tolist(), c.tolist()
    half_r, half_c = int(h * math.sqrt(1 - lam_tilde)) // 2, int(w * math.sqrt(1 - lam_tilde)) // 2
    xm = x1.clone()
    lam_b = []
    for b in range(len(y)):
        top, bottom = max(rows[b] - half_r, 0), min(rows[b] + half_r, h)
        left, right = max(cols[b] - half_c, 0), min(cols[b] + half_c, w)
        for ch in range(x1.shape[1]):
            fill = sv.mean[ch] if hp.mask_fill == "erase" else xt1[b, ch, top:bottom, left:right]
            xm[b, ch, top:bottom, left:right] = fill
        lam_b.append((bottom - top) * (right - left) / (h * w))
    lam = sum(lam_b) / len(lam_b)
    z, f = logits_of(sv, [x1, x2, xt1, xt2, xm])
    ys = torch.cat([y, y, yt, yt, y])  # the masked view keeps its source label ...
    yt5 = torch.cat([y, y, yt, yt, yt])  # ... or takes the target's
    cw = cb_weights(COUNTS, hp.drw_beta) if drw_on else None
    rows_ce = torch.arange(5 * len(y)) if hp.target_in_ce else \
        torch.cat([torch.arange(2 * len(y)), torch.arange(4 * len(y), 5 * len(y))])
    zc, ysc, ytc = z[rows_ce], ys[rows_ce], yt5[rows_ce]
    if hp.lambda_per_sample:
        lam_i = torch.full((len(rows_ce),), lam, dtype=torch.float64)
        lam_i[-len(y):] = torch.tensor(lam_b, dtype=torch.float64)
        wts = torch.ones(len(rows_ce), dtype=torch.float64) if cw is None else cw[ysc]
        wtt = torch.ones(len(rows_ce), dtype=torch.float64) if cw is None else cw[ytc]
        ce = float(((1 - lam_i) * wts * ce_rows(zc, ysc)).sum() / wts.sum()
                   + (lam_i * wtt * ce_rows(zc, ytc)).sum() / wtt.sum())
    else:
        ce = (1 - lam) * weighted_ce(zc, ysc, cw) + lam * weighted_ce(zc, ytc, cw)
    sc = (1 - lam) * supcon(f, ys, hp.temperature, hp.base_temperature) \
        + lam * supcon(f, yt5, hp.temperature, hp.base_temperature)
    return hp.w_ce * ce + hp.w_sc * sc, ce, sc, xm, lam_b


@pytest.mark.parametrize("name", ["smcl", "drw+smcl"])
@pytest.mark.parametrize("variant", [
    {},
    {"mask_fill": "paste-target"},
    {"target_in_ce": False},
    {"lambda_per_sample": True},
    {"mask_locator": "center"},
    {"mask_locator": "center", "mask_fill": "paste-target", "target_in_ce": False},
    {"target_sampler": "instance"},
    {"target_sampler": "effective-number"},
])
def test_smcl_masked_step_matches_the_equations(name, variant):
    method, sv = make(name, drw_start_epoch=3, **SMCL_SET, **variant)
    batch = batch_for(method, sv)
    out, rng, _ = step(method, sv, 4, batch)
    kind = variant.get("target_sampler", "class-level")
    assert sv.draws == [(kind, {"beta": 0.99} if kind != "instance" else {})]  # the target sampler, its beta
    assert sv.augmented == ["cutout", "sim"]  # the targets get the source's two pipelines
    loss, ce, sc, xm, lam_b = smcl_expected(method, sv, batch, rng, drw_on=name == "drw+smcl")
    x1, x2 = batch.views
    assert len(sv.seen) == 5
    assert torch.equal(sv.seen[0], x1) and torch.equal(sv.seen[1], x2)
    assert torch.equal(sv.seen[4], xm)  # the masked view: x1 with the box filled, nothing else changed
    assert max(lam_b) > 0  # a box was drawn (a paste may still copy equal pixels, e.g. two zero strips)
    assert out.logs["mask_share"].item() == pytest.approx(sum(lam_b) / len(lam_b), **TOL)
    assert out.logs["ce"].item() == pytest.approx(ce, **TOL)
    assert out.logs["supcon"].item() == pytest.approx(sc, **TOL)
    assert out.loss.item() == pytest.approx(loss, **TOL)
    assert out.loss.requires_grad


def test_smcl_box_clipping_makes_per_sample_lambdas_differ():
    """The lambda_per_sample case above is only a test if the clipped shares differ in that batch."""
    method, sv = make("smcl", **SMCL_SET, lambda_per_sample=True)
    batch = batch_for(method, sv)
    step(method, sv, 4, batch)
    x1 = batch.views[0]
    mask = (sv.seen[4] != x1).any(dim=1)  # pixels that changed (the erase fill differs from every pixel)
    shares = mask.flatten(1).float().mean(dim=1)
    assert len(set(shares.tolist())) > 1


def test_lambda_per_sample_equals_the_batch_form_when_lambdas_are_equal():
    """Centre boxes are never clipped differently: every lam_b is equal, so per-sample = batch form, DRW on."""
    losses = []
    for per_sample in (False, True):
        entry = get_method("drw+smcl")
        spec = build_spec("drw+smcl", "shapes", 10, overrides={"epochs": 10, **SMCL_SET, "drw_start_epoch": 0,
                                                                "mask_locator": "center"})
        hp = entry.cls.Hparams(**{**spec.hparams, "lambda_per_sample": per_sample})  # not normalised away
        sv = FakeServices(image=(16, 16))
        method = entry.cls(hp, sv)
        out, _, _ = step(method, sv, 4, batch_for(method, sv))
        assert method.class_weights is not None
        losses.append(out.logs["ce"].item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def test_smcl_before_its_start_epoch_is_a_plain_scl_step():
    method, sv = make("drw+smcl", drw_start_epoch=1, **SMCL_SET)
    batch = batch_for(method, sv)
    out, _, _ = step(method, sv, 1, batch)  # mask_start_epoch = 2
    assert len(sv.seen) == 2 and sv.draws == []
    x1, x2 = batch.views
    z, f = logits_of(sv, [x1, x2])
    y2 = torch.cat([batch.labels, batch.labels])
    hp = method.hp
    ce = weighted_ce(z, y2, cb_weights(COUNTS, hp.drw_beta))
    sc = supcon(f, y2, hp.temperature, hp.base_temperature)
    assert out.loss.item() == pytest.approx(hp.w_ce * ce + hp.w_sc * sc, **TOL)
    assert out.logs["masked"].item() == 0.0
    out, _, _ = step(method, sv, 2, batch)
    assert len(sv.seen) == 5 and out.logs["masked"].item() == 1.0


@pytest.mark.parametrize("name", ["scl", "scl+drw"])
def test_scl_step_matches_the_equations(name):
    method, sv = make(name, w_ce=1.3, w_sc=0.6, temperature=0.3, drw_start_epoch=2)
    batch = batch_for(method, sv)
    for epoch in (1, 2):
        out, _, _ = step(method, sv, epoch, batch)
        x1, x2 = batch.views
        assert sv.seen[0].equal(x1) and sv.seen[1].equal(x2) and len(sv.seen) == 2
        z, f = logits_of(sv, [x1, x2])
        y2 = torch.cat([batch.labels, batch.labels])
        cw = cb_weights(COUNTS, 0.9999) if name == "scl+drw" and epoch >= 2 else None
        expected = 1.3 * weighted_ce(z, y2, cw) + 0.6 * supcon(f, y2, 0.3, 0.3)
        assert out.loss.item() == pytest.approx(expected, **TOL)


# ----- mixing methods ------------------------------------------------------------------------------

MIX_SET = {"mix_prob": 1.0, "mix_alpha": 2.0, "mix_start_epoch": 2, "mix_end_epoch": 6, "drw_start_epoch": 4}


def cutmix_box_ref(h, w, lam, row, col):
    cut_r, cut_c = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    top, bottom = min(max(row - cut_r // 2, 0), h), min(max(row + cut_r // 2, 0), h)
    left, right = min(max(col - cut_c // 2, 0), w), min(max(col + cut_c // 2, 0), w)
    return top, bottom, left, right, 1 - (bottom - top) * (right - left) / (h * w)


def mixing_expected(name, method, sv, batch, rng, gen, drw_on):
    (x,) = batch.views
    y = batch.labels
    assert rng.random() < method.hp.mix_prob
    lam = rng.beta(method.hp.mix_alpha, method.hp.mix_alpha)
    if name.endswith("mixup"):
        perm = torch.randperm(len(y), generator=gen)
        mixed, y_b = lam * x + (1 - lam) * x[perm], y[perm]
    else:
        h, w = x.shape[-2:]
        row, col = int(rng.integers(h)), int(rng.integers(w))
        top, bottom, left, right, lam = cutmix_box_ref(h, w, lam, row, col)
        if name.endswith("cutmix"):
            perm = torch.randperm(len(y), generator=gen)
            partner, y_b = x[perm], y[perm]
        else:  # CMO: the minority-weighted draw, augmented with the method's one pipeline
            fg_images, y_b = sv.drawn[-1]
            partner = sv.augment(method.views()[0], fg_images)
        mixed = x.clone()
        mixed[:, :, top:bottom, left:right] = partner[:, :, top:bottom, left:right]
    z, _ = logits_of(sv, [mixed])
    cw = cb_weights(COUNTS, 0.9999) if drw_on else None
    return mixed, lam * weighted_ce(z, y, cw) + (1 - lam) * weighted_ce(z, y_b, cw)


@pytest.mark.parametrize("name", ["mixup", "cutmix", "cmo", "drw+mixup", "drw+cutmix", "drw+cmo"])
@pytest.mark.parametrize("epoch", [1, 2, 4, 6])
def test_mixing_step_matches_the_reference(name, epoch):
    extra = {"weighted_alpha": 0.5} if name.endswith("cmo") else {}
    method, sv = make(name, **MIX_SET, **extra)
    batch = batch_for(method, sv)
    out, rng, gen = step(method, sv, epoch, batch)
    drw_on = name.startswith("drw+") and epoch >= 4
    (x,) = batch.views
    if not 2 <= epoch < 6:  # outside the window: plain CE on the batch, nothing drawn
        z, _ = logits_of(sv, [x])
        assert torch.equal(sv.seen[0], x) and sv.draws == []
        cw = cb_weights(COUNTS, 0.9999) if drw_on else None
        assert out.loss.item() == pytest.approx(weighted_ce(z, batch.labels, cw), **TOL)
        return
    if name.endswith("cmo"):
        assert sv.draws == [("cmo", {"alpha": 0.5})]
    mixed, loss = mixing_expected(name, method, sv, batch, rng, gen, drw_on)
    assert torch.allclose(sv.seen[0], mixed, atol=1e-6)
    assert not torch.equal(sv.seen[0], x)
    assert out.loss.item() == pytest.approx(loss, **TOL)


# ----- re-weighting and margin losses ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["erm", "drw"])
def test_erm_and_drw(name):
    method, sv = make(name, drw_start_epoch=3, drw_beta=0.999)
    batch = batch_for(method, sv)
    for epoch in (2, 3):
        out, _, _ = step(method, sv, epoch, batch)
        z, _ = logits_of(sv, batch.views)
        cw = cb_weights(COUNTS, 0.999) if name == "drw" and epoch >= 3 else None
        assert out.loss.item() == pytest.approx(weighted_ce(z, batch.labels, cw), **TOL)


def test_drw_inverse_weighting():
    method, sv = make("drw", drw_start_epoch=0, drw_weighting="inverse")
    batch = batch_for(method, sv)
    out, _, _ = step(method, sv, 0, batch)
    inv = torch.tensor([1 / n for n in COUNTS], dtype=torch.float64)
    z, _ = logits_of(sv, batch.views)
    assert out.loss.item() == pytest.approx(weighted_ce(z, batch.labels, inv * len(COUNTS) / inv.sum()), **TOL)


@pytest.mark.parametrize("name", ["ldam", "ldam-drw"])
def test_ldam_drw(name):
    method, sv = make(name, max_m=0.4, s=20.0, drw_start_epoch=3)
    batch = batch_for(method, sv)
    margins = [n ** -0.25 for n in COUNTS]
    margins = torch.tensor([0.4 * m / max(margins) for m in margins], dtype=torch.float64)
    for epoch in (2, 3):
        out, _, _ = step(method, sv, epoch, batch)
        z, _ = logits_of(sv, batch.views)
        y = batch.labels
        z = z.double() - torch.nn.functional.one_hot(y, 4).double() * margins[y].unsqueeze(1)
        cw = cb_weights(COUNTS, 0.9999) if name == "ldam-drw" and epoch >= 3 else None
        assert out.loss.item() == pytest.approx(weighted_ce(20.0 * z, y, cw), **TOL)


def test_cb_focal_sigmoid():
    method, sv = make("cb-focal", cb_beta=0.99, gamma=2.0)
    batch = batch_for(method, sv)
    out, _, _ = step(method, sv, 0, batch)
    z, _ = logits_of(sv, batch.views)
    y = batch.labels
    alpha = cb_weights(COUNTS, 0.99)
    total = 0.0
    for b in range(len(y)):
        for k in range(4):
            p = 1 / (1 + math.exp(-float(z[b, k])))
            p_t = p if k == y[b] else 1 - p
            total += float(alpha[y[b]]) * (1 - p_t) ** 2.0 * -math.log(p_t)
    assert out.loss.item() == pytest.approx(total / len(y), **TOL)
    # prior init of the bias and no weight decay on it (Cui et al.)
    method.setup_model(sv.model)
    assert torch.allclose(sv.model.classifier.bias, torch.full((4,), -math.log(3)))
    groups = method.param_groups(sv.model)
    bias = sv.model.classifier.bias
    assert groups[1]["params"] == [bias] and groups[1]["weight_decay"] == 0.0
    rest = groups[0]["params"]
    assert len(rest) == len(list(sv.model.parameters())) - 1 and all(p is not bias for p in rest)


def test_cb_focal_bias_init_only_for_the_sigmoid_variant():
    method, sv = make("cb-focal", variant="softmax")
    before = sv.model.classifier.bias.detach().clone()
    method.setup_model(sv.model)
    assert torch.equal(sv.model.classifier.bias, before)
    entry = get_method("cb-focal")
    sv2 = FakeServices(num_classes=2)
    two = entry.cls(entry.cls.Hparams(), sv2)
    two.setup_model(sv2.model)
    assert torch.equal(sv2.model.classifier.bias, torch.zeros(2))  # -log(C - 1) = 0


def test_cb_focal_with_drw_uses_the_drw_weights_from_its_start():
    method, sv = make("cb-focal", drw=True, drw_weighting="inverse", drw_start_epoch=2, gamma=0.0)
    batch = batch_for(method, sv)
    inv = torch.tensor([1 / n for n in COUNTS], dtype=torch.float64)
    for epoch, alpha in ((1, cb_weights(COUNTS, 0.9999)), (2, inv * len(COUNTS) / inv.sum())):
        out, _, _ = step(method, sv, epoch, batch)
        z, _ = logits_of(sv, batch.views)
        y = torch.nn.functional.one_hot(batch.labels, 4).double()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z.double(), y, reduction="none")
        expected = float((bce * alpha[batch.labels].unsqueeze(1)).sum() / len(batch.labels))
        assert out.loss.item() == pytest.approx(expected, **TOL)


def test_cb_focal_softmax_variant():
    method, sv = make("cb-focal", variant="softmax", cb_beta=0.99, gamma=2.0)
    batch = batch_for(method, sv)
    out, _, _ = step(method, sv, 0, batch)
    z, _ = logits_of(sv, batch.views)
    y = batch.labels
    ce = cb_weights(COUNTS, 0.99)[y] * ce_rows(z, y)
    expected = float(((1 - torch.exp(-ce)) ** 2.0 * ce).mean())
    assert out.loss.item() == pytest.approx(expected, **TOL)
    assert method.param_groups(sv.model) is None


@pytest.mark.parametrize("drw", [False, True])
def test_balanced_softmax(drw):
    method, sv = make("balanced-softmax", drw=drw, drw_start_epoch=0)
    batch = batch_for(method, sv)
    out, _, _ = step(method, sv, 0, batch)
    z, _ = logits_of(sv, batch.views)
    log_prior = torch.tensor([math.log(n / sum(COUNTS)) for n in COUNTS], dtype=torch.float64)
    cw = cb_weights(COUNTS, 0.9999) if drw else None
    assert out.loss.item() == pytest.approx(weighted_ce(z.double() + log_prior, batch.labels, cw), **TOL)
