"""ConCutMix's label-rectification start `l_d_warm` is a per-family default (ltbench.method.EpochFraction in
`family_defaults`): half the epochs on the cifar family (CCM `run_files/cifar100_imb100.sh`: 100 of 200),
70 % on ImageNet-LT (CCM's ImageNet-LT script: 70 of 100), scaled with the epochs like every epoch default.

The family, not a view setting, decides: an ImageNet-LT run with another classification view keeps 70 %."""

from __future__ import annotations

import pytest
from ltbench.methods.concutmix import ConCutMix

from ltbench.config import build_spec
from ltbench.method import EpochFraction, Method


def _warm(dataset: str, ratio: float, **overrides) -> int:
    return build_spec("concutmix", dataset, ratio, 0, "paper", overrides).hparams["l_d_warm"]


def test_the_family_default_is_declared_where_family_defaults_are():
    assert ConCutMix.family_defaults["imagenet"]["l_d_warm"] == EpochFraction(0.7)
    assert "l_d_warm" not in ConCutMix.family_defaults.get("cifar", {})


@pytest.mark.parametrize(("epochs", "expected"), [(None, 100), (20, 10), (7, 4)])
def test_cifar_family_starts_rectifying_at_half_the_epochs(epochs, expected):
    given = {} if epochs is None else {"epochs": epochs}
    assert _warm("cifar100", 100, **given) == expected  # 200 epochs under `paper`


@pytest.mark.parametrize(("epochs", "expected"), [(None, 70), (20, 14), (90, 63)])
def test_imagenet_lt_starts_rectifying_at_70_percent(epochs, expected):
    given = {} if epochs is None else {"epochs": epochs}
    assert _warm("imagenet-lt", 256, **given) == expected  # 100 epochs under `paper`


def test_imagenet_lt_default_does_not_follow_the_classification_view():
    # the former rule keyed on view_cls == "randaug"; the family decides, whatever the view
    assert _warm("imagenet-lt", 256, view_cls="standard", epochs=20) == 14


def test_an_explicit_l_d_warm_wins_on_every_family():
    assert _warm("imagenet-lt", 256, l_d_warm=5, epochs=20) == 5
    assert _warm("cifar100", 100, l_d_warm=5, epochs=20) == 5


def test_the_family_fraction_resolves_against_the_budget_scaled_epochs():
    # budget=samples divides the epochs by the three views; the 0.7 share follows the scaled epochs
    spec = build_spec("concutmix", "imagenet-lt", 256, 0, "paper", {"epochs": 30, "budget": "samples"})
    assert spec.train.epochs == 10 and spec.hparams["l_d_warm"] == 7


def test_epoch_fraction_values_resolve_for_any_method():
    out = Method.resolve_hparams({"drw": True, "drw_start_epoch": EpochFraction(0.25)}, 40)
    assert out["drw_start_epoch"] == 10
