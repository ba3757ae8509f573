"""Mixup / CutMix / CMO: the mixing window, the box paste and the area-weighted labels."""

from __future__ import annotations

import pytest
import torch

from ltbench.config import build_spec
from ltbench.method import Batch
from ltbench.registry import get_method

from .fakes import FakeServices


def _method(name, **overrides):
    spec = build_spec(name, "shapes", 10, overrides={"epochs": 10, **overrides})
    entry = get_method(name)
    sv = FakeServices()
    method = entry.cls(entry.cls.Hparams(**spec.hparams), sv)
    method.on_epoch_start(0)
    return method, sv


def test_window_resolution():
    hp = build_spec("cmo", "cifar100", 100).hparams
    assert (hp["mix_start_epoch"], hp["mix_end_epoch"], hp["mix_prob"]) == (4, 197, 0.5)
    assert build_spec("cmo", "cifar100", 100, overrides={"epochs": 10}).hparams["mix_start_epoch"] == 0


@pytest.mark.parametrize("epochs", [10, 60, 90, 100, 200, 300])
def test_window_scales_cmo_margins(epochs):
    """CMO's start/end_data_aug = 3 at 100 epochs and more; round(3 E / 200) for shorter runs."""
    margin = 3 if epochs >= 100 else round(3 * epochs / 200)
    hp = build_spec("cmo", "cifar100", 100, overrides={"epochs": epochs}).hparams
    assert (hp["mix_start_epoch"], hp["mix_end_epoch"]) == (margin + 1 if margin else 0, epochs - margin)


def test_cmo_pastes_the_foreground_inside_one_box():
    """One box for the whole batch; inside it the foreground's pixels, outside the background's.

    The loss and lambda are checked against the reference in tests/test_method_reference.py.
    """
    method, sv = _method("cmo", mix_prob=1.0)
    x = torch.full((4, 3, 8, 8), -1.0)  # no foreground pixel is negative
    method.training_step(Batch(x.byte(), torch.tensor([0, 0, 1, 1]), [x]))
    (mixed,) = sv.seen
    inside = mixed != -1.0
    assert inside.any() and torch.equal(inside, inside[:1].expand_as(inside))  # same box for the batch
    fg = sv.augment("standard", sv.drawn[-1][0])
    assert torch.equal(mixed[inside], fg[inside])


def test_mixing_outside_the_window_is_plain_ce():
    method, sv = _method("mixup", mix_prob=1.0, mix_start_epoch=5)
    x = torch.rand(4, 3, 8, 8)
    method.training_step(Batch(x.byte(), torch.tensor([0, 1, 2, 3]), [x]))
    assert torch.equal(sv.seen[0], x)


def test_mixup_is_a_convex_combination_of_the_batch():
    method, sv = _method("mixup", mix_prob=1.0)
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 8, 8).contiguous()
    method.training_step(Batch(x.byte(), torch.tensor([0, 1, 2, 3]), [x]))
    mixed = sv.seen[0][:, 0, 0, 0]
    assert torch.all((mixed >= 0) & (mixed <= 3)) and not torch.equal(mixed, x[:, 0, 0, 0])


def test_drw_weights_switch_on_at_their_epoch():
    method, _ = _method("drw+cutmix", drw_start_epoch=3)
    method.on_epoch_start(2)
    assert method.class_weights is None
    method.on_epoch_start(3)
    assert method.class_weights is not None and method.class_weights.sum().item() == pytest.approx(4.0)
