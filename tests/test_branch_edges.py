"""Step-branch shares at the edges of the active-epoch rule (written against the mutation run's survivors
in `two_branches` and `SMCL.step_branches`): an empty mix window, a one-epoch run, and an SMCL mask that
starts at epoch 0. Each expected share is counted from the definition: prob x (epochs whose index lies in
[start, end)) / epochs."""

from __future__ import annotations

import pytest

from ltbench.config import build_spec
from ltbench.registry import get_method


def _branches(name: str, **overrides) -> tuple[dict, dict, int]:
    spec = build_spec(name, "cifar100", 100, overrides=overrides)
    got = {b.name: b for b in get_method(name).cls.step_branches(spec.hparams, spec.train.epochs)}
    return got, spec.hparams, spec.train.epochs


def _share(prob: float, start: int, end: int, epochs: int) -> float:
    """The run share, counted epoch by epoch: a step of an active epoch takes the branch with prob."""
    active = sum(1 for epoch in range(epochs) if start <= epoch < end)
    return prob * active / epochs


def test_an_empty_mix_window_mixes_no_step_of_the_run():
    got, hp, epochs = _branches("mixup", epochs=10, mix_prob=0.5, mix_start_epoch=5, mix_end_epoch=5)
    assert (epochs, hp["mix_start_epoch"], hp["mix_end_epoch"]) == (10, 5, 5)  # the spec keeps the empty window
    assert _share(0.5, 5, 5, 10) == 0.0
    assert got["mixed"].run_share == 0.0
    assert got["plain"].run_share == 1.0


def test_a_one_epoch_mixup_run_mixes_mix_prob_of_its_steps():
    got, hp, epochs = _branches("mixup", epochs=1, mix_prob=0.4)
    assert (epochs, hp["mix_start_epoch"], hp["mix_end_epoch"]) == (1, 0, 1)
    expected = _share(0.4, 0, 1, 1)
    assert expected == pytest.approx(0.4)
    assert got["mixed"].run_share == pytest.approx(expected)
    assert got["plain"].run_share == pytest.approx(1 - expected)


def test_a_one_epoch_smcl_run_masking_from_epoch_0_masks_mask_prob_of_its_steps():
    got, hp, epochs = _branches("smcl", epochs=1, mask_start_epoch=0)
    assert (epochs, hp["mask_start_epoch"]) == (1, 0)
    expected = _share(hp["mask_prob"], 0, 1, 1)
    assert expected == pytest.approx(hp["mask_prob"]) and expected > 0
    assert got["masked"].run_share == pytest.approx(expected)
    assert got["plain"].run_share == pytest.approx(1 - expected)


def test_smcl_masking_from_epoch_0_masks_mask_prob_of_every_epoch():
    got, hp, epochs = _branches("smcl", epochs=10, mask_prob=0.3, mask_start_epoch=0)
    assert (epochs, hp["mask_prob"], hp["mask_start_epoch"]) == (10, 0.3, 0)  # 0 is kept, not the default
    expected = _share(0.3, 0, 10, 10)
    assert expected == pytest.approx(0.3)
    assert got["masked"].run_share == pytest.approx(expected)
    assert got["plain"].run_share == pytest.approx(1 - expected)
    assert (got["masked"].late_share, got["plain"].late_share) == (0.3, pytest.approx(0.7))
