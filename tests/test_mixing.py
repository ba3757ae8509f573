"""Mixup / CutMix / CMO: the mixing window, the box paste and the area-weighted labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltbench.config import build_spec
from ltbench.method import Batch
from ltbench.registry import get_method


class FakeServices:
    """Just enough of the trainer for one step: records what reaches the model."""

    def __init__(self, num_classes=4, image=(8, 8)):
        self.num_classes = num_classes
        self.class_counts = [40, 20, 10, 5][:num_classes]
        self.device = torch.device("cpu")
        self.generator = torch.Generator().manual_seed(0)
        self.rng = np.random.default_rng(0)
        self.image_size = image
        self.mean, self.std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
        self.seen: list[torch.Tensor] = []

    def forward(self, views):
        self.seen = views
        return [(torch.zeros(v.shape[0], self.num_classes, requires_grad=True), None) for v in views]

    def augment(self, pipeline, images):
        return images.float() / 255

    def draw(self, kind, n, **params):
        return torch.full((n, 3, *self.image_size), 255, dtype=torch.uint8), torch.full((n,), 3)


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


def test_cmo_pastes_the_foreground_inside_one_box():
    method, sv = _method("cmo", mix_prob=1.0)
    x = torch.zeros(4, 3, 8, 8)
    out = method.training_step(Batch(x.byte(), torch.tensor([0, 0, 1, 1]), [x]))
    (mixed,) = sv.seen
    inside = mixed == 1.0  # the fake foreground is white
    assert inside.any() and torch.equal(inside, inside[:1].expand_as(inside))  # same box for the batch
    lam = 1 - inside[0, 0].float().mean().item()
    # zero logits: CE = log C for every term, whatever the labels and weights
    assert out.loss.item() == pytest.approx(np.log(4) * (lam + 1 - lam))


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
