"""The method contract's declarations: step branches (shares against literal computations; each branch's
force overrides really make every step take it) and the TrainerServices protocol (trainer and fakes)."""

from __future__ import annotations

import inspect

import pytest
import torch

from ltbench.config import build_spec
from ltbench.method import Batch, Method, StepBranch, TrainerServices
from ltbench.registry import get_method, list_methods

from .fakes import FakeServices


def _hp(name: str, **overrides) -> tuple[dict, int]:
    spec = build_spec(name, "cifar100", 100, overrides=overrides)
    return spec.hparams, spec.train.epochs


def _by_name(branches: list[StepBranch]) -> dict[str, StepBranch]:
    return {b.name: b for b in branches}


# ----- shares against literal computations ---------------------------------------------------------

def test_single_kind_methods_have_one_step_branch():
    for name in ("erm", "drw", "ldam-drw", "cb-focal", "balanced-softmax", "bcl", "scl", "scl+drw"):
        hp, epochs = _hp(name)
        assert get_method(name).cls.step_branches(hp, epochs) == [StepBranch("step", {}, 1.0, 1.0)], name
    hp, epochs = _hp("mixup", mix_prob=0.0)  # a mixing method that never mixes
    assert get_method("mixup").cls.step_branches(hp, epochs) == [StepBranch("step", {}, 1.0, 1.0)]


def test_smcl_masks_mask_prob_of_the_steps_from_mask_start_epoch():
    hp, epochs = _hp("smcl")  # paper: 200 epochs, mask_prob 0.2 from epoch 160
    assert (epochs, hp["mask_prob"], hp["mask_start_epoch"]) == (200, 0.2, 160)
    got = _by_name(get_method("smcl").cls.step_branches(hp, epochs))
    assert list(got) == ["masked", "plain"]
    assert got["masked"].force == {"mask_prob": 1.0, "mask_start_epoch": 0}
    assert got["plain"].force == {"mask_prob": 0.0}
    assert got["masked"].run_share == pytest.approx(0.2 * 40 / 200)
    assert got["plain"].run_share == pytest.approx(1 - 0.2 * 40 / 200)
    assert (got["masked"].late_share, got["plain"].late_share) == (0.2, pytest.approx(0.8))


def test_mixing_methods_mix_mix_prob_of_the_steps_inside_their_window():
    for name in ("mixup", "cutmix", "cmo", "drw+cmo"):
        hp, epochs = _hp(name, mix_prob=0.4)  # window [4, 197) of 200 epochs (CMO's 3 < e < E - 3)
        got = _by_name(get_method(name).cls.step_branches(hp, epochs))
        assert list(got) == ["mixed", "plain"]
        assert got["mixed"].force == {"mix_prob": 1.0, "mix_start_epoch": 0, "mix_end_epoch": 200}
        assert got["plain"].force == {"mix_prob": 0.0}
        assert got["mixed"].run_share == pytest.approx(0.4 * 193 / 200)
        assert (got["mixed"].late_share, got["plain"].late_share) == (0.4, pytest.approx(0.6))


def test_concutmix_has_no_window_so_it_mixes_mix_prob_of_every_epoch():
    hp, epochs = _hp("concutmix")
    got = _by_name(get_method("concutmix").cls.step_branches(hp, epochs))
    assert got["mixed"].force == {"mix_prob": 1.0}  # only the keys the method has
    assert (got["mixed"].run_share, got["mixed"].late_share) == (0.5, 0.5)


def _previous_rule(hp: dict, epochs: int) -> list[tuple[str, dict, float, float]]:
    """What `ltbench bench` and `estimate` computed before methods declared their branches (kept here
    literally: bench `_step_kinds`, estimate `branch_share`, bench's late-epoch mix)."""
    if hp.get("mask_prob", 0.0) > 0:
        kinds = [("masked", {"mask_prob": 1.0, "mask_start_epoch": 0}), ("plain", {"mask_prob": 0.0})]
    elif hp.get("mix_prob", 0.0) > 0:
        forced = {"mix_prob": 1.0, "mix_start_epoch": 0, "mix_end_epoch": epochs}
        kinds = [("mixed", {k: v for k, v in forced.items() if k in hp}), ("plain", {"mix_prob": 0.0})]
    else:
        return [("step", {}, 1.0, 1.0)]
    prob = hp.get("mask_prob", hp.get("mix_prob", 1.0)) or 0.0
    start = hp.get("mask_start_epoch", hp.get("mix_start_epoch", 0)) or 0
    end = hp.get("mix_end_epoch", epochs) or epochs
    share = float(prob) * max(0, min(end, epochs) - max(0, start)) / max(1, epochs)
    late = hp.get("mask_prob", hp.get("mix_prob"))
    return [(kinds[0][0], kinds[0][1], share, late), (kinds[1][0], kinds[1][1], 1 - share, 1 - late)]


@pytest.mark.parametrize("overrides", [{}, {"epochs": 10}, {"epochs": 7, "mask_prob": 0.5, "mix_prob": 0.3}])
def test_every_registered_method_declares_what_the_previous_rule_computed(overrides):
    for entry in list_methods():
        keys = {k: v for k, v in overrides.items() if k == "epochs" or k in _hp(entry.name)[0]}
        hp, epochs = _hp(entry.name, **keys)
        got = [(b.name, b.force, b.run_share, b.late_share) for b in entry.cls.step_branches(hp, epochs)]
        assert got == _previous_rule(hp, epochs), entry.name
        assert sum(b[2] for b in got) == pytest.approx(1.0) and sum(b[3] for b in got) == pytest.approx(1.0)


# ----- the force overrides make every step take the branch ------------------------------------------

def _build(name: str, force: dict, epochs: int = 10, image=(8, 8)) -> tuple[Method, FakeServices]:
    spec = build_spec(name, "shapes", 10, overrides={"epochs": epochs, **force})
    entry = get_method(name)
    sv = FakeServices(image=image)
    method = entry.cls(entry.cls.Hparams(**spec.hparams), sv)
    method.setup_model(sv.model)
    return method, sv


def _forced(name: str, branch: str, epochs: int) -> dict:
    hp = build_spec(name, "shapes", 10, overrides={"epochs": epochs}).hparams
    return _by_name(get_method(name).cls.step_branches(hp, epochs))[branch].force


@pytest.mark.parametrize("epoch", [0, 9])
def test_smcl_forced_branches_mask_every_step_or_none(epoch):
    for branch, expected in (("masked", 1.0), ("plain", 0.0)):
        method, sv = _build("smcl", _forced("smcl", branch, 10), image=(16, 16))
        method.on_epoch_start(epoch)
        x = torch.rand(4, 3, 16, 16)
        for _ in range(6):
            out = method.training_step(Batch(x.byte(), torch.tensor([0, 1, 2, 3]), [x, x.flip(-1)]))
            assert float(out.logs["masked"]) == expected, (branch, epoch)
            assert len(sv.seen) == (5 if expected else 2)  # a masked step forwards five views


def _mixed_steps(name: str, branch: str, epoch: int, steps: int = 6) -> int:
    """How many of `steps` training steps called the method's `mix` hook under the branch's force."""
    method, _ = _build(name, _forced(name, branch, 10))
    method.on_epoch_start(epoch)
    calls = []
    mix = method.mix

    def counting(x, y):
        calls.append(1)
        return mix(x, y)

    method.mix = counting  # type: ignore[method-assign]
    x = torch.rand(4, 3, 8, 8)
    for _ in range(steps):
        method.training_step(Batch(x.byte(), torch.tensor([0, 1, 2, 3]), [x]))
    return len(calls)


@pytest.mark.parametrize("name", ["mixup", "cutmix", "cmo"])
@pytest.mark.parametrize("epoch", [0, 9])  # the window's margins are forced open too (the bench's late epoch)
def test_mixing_forced_branches_mix_every_step_or_none(name, epoch):
    assert _mixed_steps(name, "mixed", epoch) == 6
    assert _mixed_steps(name, "plain", epoch) == 0


def test_concutmix_forced_branches_mix_every_step_or_none():
    from ltbench.models import build_model

    for branch, expected in (("mixed", 1.0), ("plain", 0.0)):
        hp = build_spec("concutmix", "shapes", 10, overrides={"epochs": 4, **_forced("concutmix", branch, 4)}).hparams
        entry = get_method("concutmix")
        sv = FakeServices(image=(16, 16))
        method = entry.cls(entry.cls.Hparams(**hp), sv)
        sv.model = build_model("resnet8", sv.num_classes, 3, method.model_options())
        method.setup_model(sv.model)
        method.on_epoch_start(3)
        x = torch.rand(4, 3, 16, 16)
        for _ in range(4):
            out = method.training_step(Batch(x.byte(), torch.tensor([0, 1, 2, 0]), [x, x, x.flip(-1)]))
            assert float(out.logs["mixed"]) == expected, branch


# ----- TrainerServices is a protocol the trainer and the fakes satisfy -----------------------------

def test_trainer_and_fake_provide_the_trainer_services():
    from ltbench.trainer import Trainer

    sv: TrainerServices = FakeServices()  # the typed assignment is what mypy checks; isinstance at run time
    assert isinstance(sv, TrainerServices)
    assert not isinstance(object(), TrainerServices)
    # the trainer's methods take what the protocol's take (its data members are set in __init__)
    for name in ("forward", "augment", "draw"):
        proto = inspect.signature(getattr(TrainerServices, name)).parameters
        assert inspect.signature(getattr(Trainer, name)).parameters.keys() == proto.keys(), name
