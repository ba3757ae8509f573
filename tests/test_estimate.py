"""`ltbench.estimate`: a run's cost per image from a bench file, its method's step branches weighted by
their share of the run's steps (`Method.step_branches`). The reference figures below are the formula the
estimate has always used (probability x the share of epochs inside the method's window), written out."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltbench.config import build_spec
from ltbench.estimate import BenchFigures, estimate, method_ms_per_image

EPOCHS = 20
# ms per image of each bench case: plain steps 2 ms, masked 5 ms, mixed 3 ms; ERM 1 ms
CASES = {"erm": 1.0, "smcl:masked": 5.0, "smcl:plain": 2.0, "drw+smcl:masked": 5.0, "drw+smcl:plain": 2.0,
         "mixup:mixed": 3.0, "mixup:plain": 2.0, "concutmix:mixed": 3.0, "concutmix:plain": 2.0, "scl": 2.5}


def _figures(cases: dict[str, float] = CASES) -> BenchFigures:
    return BenchFigures(Path("gpu.json"), "resnet8", "cifar", "cuda", "fp32", dict(cases))


def _spec(method: str, **overrides):
    return build_spec(method, "shapes", 10, 0, "paper", {"epochs": EPOCHS, "backbone": "resnet8", **overrides})


def _reference_share(hp: dict) -> float:
    prob = hp.get("mask_prob", hp.get("mix_prob", 1.0)) or 0.0
    start = hp.get("mask_start_epoch", hp.get("mix_start_epoch", 0)) or 0
    end = hp.get("mix_end_epoch", EPOCHS) or EPOCHS
    return float(prob) * max(0, min(end, EPOCHS) - max(0, start)) / EPOCHS


@pytest.mark.parametrize(("method", "overrides", "costly"), [
    ("smcl", {}, "masked"),
    ("drw+smcl", {"mask_prob": 0.6, "mask_start_epoch": 5}, "masked"),
    ("mixup", {}, "mixed"),
    ("mixup", {"mix_start_epoch": 3, "mix_end_epoch": 15, "mix_prob": 0.3}, "mixed"),
    ("concutmix", {}, "mixed"),  # no mixing window: every epoch mixes with mix_prob
])
def test_two_branch_methods_weight_their_steps_by_run_share(method, overrides, costly):
    spec = _spec(method, **overrides)
    ms, what = method_ms_per_image(_figures(), spec)
    plain, branch = CASES[f"{method}:plain"], CASES[f"{method}:{costly}"]
    assert what == method
    assert ms == pytest.approx(plain + _reference_share(spec.hparams) * (branch - plain), rel=1e-12)


def test_a_benched_single_step_method_uses_its_own_step():
    assert method_ms_per_image(_figures(), _spec("scl")) == (2.5, "scl")  # mask_prob 0: one kind of step
    assert method_ms_per_image(_figures(), _spec("erm")) == (1.0, "erm")


def test_an_unbenched_method_gets_the_erm_rate_or_nothing():
    assert method_ms_per_image(_figures(), _spec("drw")) == (1.0, "erm rate")
    assert method_ms_per_image(_figures(), _spec("cutmix")) == (1.0, "erm rate")  # no cutmix:* cases
    missing_plain = {k: v for k, v in CASES.items() if k != "smcl:plain"}
    assert method_ms_per_image(_figures(missing_plain), _spec("smcl")) == (1.0, "erm rate")
    assert method_ms_per_image(_figures({"smcl:masked": 5.0}), _spec("smcl")) is None


def test_estimate_seconds_and_basis():
    spec = _spec("smcl", batch_size=64)
    got = estimate(spec, [_figures()], n_train=1000)
    per_image = 2.0 + _reference_share(spec.hparams) * 3.0
    assert got.seconds == pytest.approx(EPOCHS * 16 * 64 * per_image / 1000, rel=1e-12)  # ceil(1000 / 64) = 16
    assert got.basis == "smcl @ cuda (gpu.json)"
    assert estimate(spec, [_figures()], None).seconds is None
    other = BenchFigures(Path("x.json"), "resnet32", "cifar", "cuda", "fp32", dict(CASES))
    assert "no bench of resnet8" in estimate(spec, [other], 1000).basis
