"""Edges of the method contract, the mixing base and the box arithmetic that the reference tests leave open.

Each test pins one behaviour against values computed by hand here: a mixing method with mix_prob = 0
keeps its DRW settings and drops only its mixing settings; epoch fractions reset against the run's
epochs; the per-batch draw mixes only when r < mix_prob; a fresh method's state before the first
`on_epoch_start`; CutMix/SMCL boxes with a half-width of 0 stay empty; a float32 lam is evaluated in
float64; the sigmoid-head bias init with a single class.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from ltbench.augment import box_masks, cutmix_box
from ltbench.config import build_spec
from ltbench.method import Batch, Method, reset_to_default
from ltbench.registry import get_method

from .fakes import FakeServices


def _method(name: str, sv: FakeServices | None = None, **overrides):
    spec = build_spec(name, "shapes", 10, overrides={"epochs": 10, **overrides})
    entry = get_method(name)
    sv = sv or FakeServices()
    return entry.cls(entry.cls.Hparams(**spec.hparams), sv), sv


# ----- resolve_hparams ------------------------------------------------------------------------------

def test_mix_prob_zero_resets_the_mixing_settings_and_keeps_drw():
    """mix_prob = 0 never mixes: the mixing fields go back to their defaults, mix_prob and DRW stay as given."""
    cls = get_method("cmo").cls
    values = {**{f.name: f.default for f in dataclasses.fields(cls.Hparams)},
              "mix_prob": 0.0, "mix_alpha": 0.3, "weighted_alpha": 2.0, "mix_start_epoch": 2, "mix_end_epoch": 5,
              "drw": True, "drw_weighting": "cb", "drw_beta": 0.99}
    out = cls.resolve_hparams(values, 10)
    # 10 epochs: margin round(3 * 10 / 200) = 0, so the default window is the whole run [0, 10)
    expected = {"mix_prob": 0.0, "mix_alpha": 1.0, "weighted_alpha": 1.0, "mix_start_epoch": 0, "mix_end_epoch": 10,
                "drw": True, "drw_weighting": "cb", "drw_beta": 0.99, "drw_start_epoch": 8}  # round(0.8 * 10)
    assert {k: out[k] for k in expected} == expected


def test_drw_off_resets_drw_start_epoch_to_its_share_of_the_epochs():
    values = {"drw": False, "drw_weighting": "inverse", "drw_beta": 0.5, "drw_start_epoch": 3}
    assert Method.resolve_hparams(values, 20) == {"drw": False, "drw_weighting": "cb", "drw_beta": 0.9999,
                                                  "drw_start_epoch": 16}  # round(0.8 * 20)
    fields = {"drw_start_epoch": 1}
    reset_to_default(Method.Hparams, fields, 7, "drw_start_epoch")
    assert fields == {"drw_start_epoch": 6}  # round(5.6)


# ----- the per-batch mixing draw -----------------------------------------------------------------------

class _FixedDraw:
    """A host RNG whose uniform draw is a chosen value (the mixing decision compares it with mix_prob)."""

    def __init__(self, r: float):
        self.r = r

    def random(self) -> float:
        return self.r


@pytest.mark.parametrize(("prob", "r", "mixes"), [
    (0.5, 0.5, False),  # r < mix_prob is strict: a draw equal to the probability does not mix
    (0.5, math.nextafter(0.5, 0.0), True),
    (0.0, 0.0, False),  # mix_prob = 0 never mixes, even on a draw of exactly 0
])
def test_a_batch_mixes_only_when_the_draw_is_below_mix_prob(prob, r, mixes):
    method, sv = _method("mixup", mix_prob=prob)
    method.on_epoch_start(0)
    sv.rng = _FixedDraw(r)
    assert method.mix_now() is mixes


def test_an_unresolved_window_is_refused():
    method, _ = _method("mixup", mix_prob=1.0)
    method.hp.mix_end_epoch = None  # resolve_hparams always fills it; a hand-built one without it is a bug
    method.hp.mix_start_epoch = 5
    with pytest.raises(AssertionError):
        method.mix_now()


# ----- the state of a fresh method ----------------------------------------------------------------------

def test_a_fresh_method_is_at_epoch_zero_without_weights_or_extra_forwards():
    """Before the first on_epoch_start: epoch 0, no DRW weights, no no-grad images (what `ltbench bench` reads)."""
    method, sv = _method("erm", drw=True, drw_start_epoch=0)
    assert method.epoch == 0 and method.class_weights is None and method.nograd_images == 0
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3])
    out = method.training_step(Batch(x.byte(), y, [x]))
    ((logits, _),) = sv.model_outputs([x])
    assert out.loss.item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)  # unweighted
    assert method.nograd_images == 0  # a plain step has no extra forward


# ----- box arithmetic -------------------------------------------------------------------------------------

def test_cutmix_box_with_a_zero_half_width_at_the_border_is_empty():
    # lam = 0.999: r = 0.0316, int(32 r) = 1, half 0: the box [c, c) is empty wherever c is, also at 0
    assert cutmix_box(32, 32, 0.999, 0, 5) == (0, 5, 0, 5, 1.0)
    assert cutmix_box(32, 32, 0.999, 5, 0) == (5, 0, 5, 0, 1.0)
    # 4 x 32, lam = 0.9: r = 0.316; rows int(1.26) = 1 (half 0), columns int(10.1) = 10 (half 5): no rows, no area
    assert cutmix_box(4, 32, 0.9, 0, 10) == (0, 5, 0, 15, 1.0)
    assert cutmix_box(32, 4, 0.9, 10, 0) == (5, 0, 15, 0, 1.0)


@pytest.mark.parametrize(("h", "w", "row", "col"), [(4, 32, 0, 10), (32, 4, 10, 0)])
def test_box_masks_with_a_zero_half_side_at_the_border_are_empty(h, w, row, col):
    """lam = 0.9 on a thin image: the short side's half is 0, so a box centred on its first pixel is empty."""
    for lam in (0.9, torch.tensor([0.9], dtype=torch.float64)):
        mask, lam_b = box_masks(h, w, lam, torch.tensor([row]), torch.tensor([col]))
        assert not mask.any() and lam_b.tolist() == [0.0]


def test_box_masks_evaluate_a_float32_lam_in_float64():
    """lam = 2^-24 (a float32): sqrt(1 - lam) = 0.99999997 in float64, so int(32 r) = 31 (half 15), as the
    Python reference computes it; in float32 r rounds to 1.0 and the box would cover the whole image."""
    lam = torch.tensor([2.0 ** -24], dtype=torch.float32)
    assert int(32 * math.sqrt(1 - float(lam))) == 31
    mask, lam_b = box_masks(32, 32, lam, torch.tensor([16]), torch.tensor([16]))
    assert lam_b.tolist() == [30 * 30 / 1024]  # rows and columns [1, 31)
    ref = torch.zeros(32, 32, dtype=torch.bool)
    ref[1:31, 1:31] = True
    assert torch.equal(mask[0, 0], ref)


# ----- CB focal ---------------------------------------------------------------------------------------------

def test_cb_focal_leaves_a_single_class_head_bias_alone():
    """The prior init -log(C - 1) is undefined for C = 1: setup_model skips it (and does not raise)."""
    sv = FakeServices(num_classes=1)
    method, _ = _method("cb-focal", sv)
    before = sv.model.classifier.bias.detach().clone()
    method.setup_model(sv.model)
    assert torch.equal(sv.model.classifier.bias.detach(), before)
