"""The equal-budget control: budget=steps / samples rescale epochs and everything that is a fraction of them."""

from __future__ import annotations

import math

import pytest

from ltbench.config import build_spec
from ltbench.data.longtail import longtail_counts
from ltbench.errors import LtbenchError
from ltbench.protocol import protocol_record

CPU = {"max_per_class": 500}  # the CPU study's Fashion-MNIST-LT / shapes subset at ratio 100


def _steps(spec, views=("standard",)) -> int:
    counts = longtail_counts(10, spec.max_per_class or 500, spec.ratio)
    return protocol_record(spec.to_dict(), counts, list(views))["optimizer_steps"]


def test_steps_budget_gives_a_batch_256_method_the_reference_step_count():
    n = sum(longtail_counts(10, 500, 100))
    erm = build_spec("erm", "shapes", 100, 0, "cpu", CPU)
    scl_epochs = build_spec("scl", "shapes", 100, 0, "cpu", CPU)
    scl_steps = build_spec("scl", "shapes", 100, 0, "cpu", {**CPU, "budget": "steps"})
    assert erm.train.batch_size == 128 and scl_steps.train.batch_size == 256
    assert _steps(erm) == 60 * math.ceil(n / 128)
    assert _steps(scl_epochs) == 60 * math.ceil(n / 256) != _steps(erm)  # the confound: half the steps
    assert _steps(scl_steps) == _steps(erm)  # 120 epochs x 5 steps = 60 x 10
    assert scl_steps.train.epochs == 120
    assert (scl_steps.train.budget_ref_batch, scl_steps.train.budget_ref_epochs) == (128, 60)


def test_epoch_fractions_scale_with_the_resolved_epochs():
    plain = build_spec("drw+smcl", "shapes", 100, 0, "cpu", CPU)
    steps = build_spec("drw+smcl", "shapes", 100, 0, "cpu", {**CPU, "budget": "steps"})
    assert steps.train.epochs == 2 * plain.train.epochs
    assert steps.hparams["mask_start_epoch"] == round(0.8 * steps.train.epochs) == 2 * plain.hparams["mask_start_epoch"]
    assert steps.hparams["drw_start_epoch"] == round(0.8 * steps.train.epochs)
    assert steps.train.lr_milestones == (round(0.8 * 120), round(0.9 * 120))
    assert steps.train.warmup_epochs == round(5 / 200 * 120)
    explicit = build_spec("scl", "shapes", 100, 0, "cpu", {**CPU, "budget": "steps", "lr_milestones": [10, 20]})
    assert explicit.train.lr_milestones == (10, 20)  # an explicit value is kept


def test_steps_budget_leaves_a_reference_batch_method_alone_and_takes_another_reference():
    erm = build_spec("erm", "shapes", 100, 0, "cpu", CPU)
    erm_steps = build_spec("erm", "shapes", 100, 0, "cpu", {**CPU, "budget": "steps"})
    assert erm_steps.train.epochs == 60 and erm_steps.run_id == erm.run_id  # the reference: same run
    assert build_spec("erm", "shapes", 100, 0, "cpu", {**CPU, "budget": "samples"}).run_id == erm.run_id
    ref64 = build_spec("erm", "shapes", 100, 0, "cpu", {**CPU, "budget": "steps", "budget_ref_batch": 64})
    n = sum(longtail_counts(10, 500, 100))
    assert ref64.train.epochs == round(60 * math.ceil(n / 64) / math.ceil(n / 128))


def test_samples_budget_equals_a_one_view_runs_sample_passes():
    counts = longtail_counts(10, 500, 100)
    erm = build_spec("erm", "shapes", 100, 0, "cpu", CPU)
    scl = build_spec("scl", "shapes", 100, 0, "cpu", {**CPU, "budget": "samples"})
    assert scl.train.epochs == 30 and scl.train.budget_ref_epochs == 60 and scl.train.budget_ref_batch is None
    a = protocol_record(erm.to_dict(), counts, ["standard"])["sample_passes"]
    b = protocol_record(scl.to_dict(), counts, ["cutout", "sim"])["sample_passes"]
    assert a == b == sum(counts) * 60


def test_default_budget_keeps_run_ids_and_the_budget_changes_them():
    base = build_spec("scl", "shapes", 100, 0, "cpu", CPU)
    assert build_spec("scl", "shapes", 100, 0, "cpu", {**CPU, "budget": "epochs"}).run_id == base.run_id
    assert "budget" not in base.canonical_json()
    steps = build_spec("scl", "shapes", 100, 0, "cpu", {**CPU, "budget": "steps"})
    assert steps.run_id != base.run_id and '"budget":"steps"' in steps.canonical_json()


@pytest.mark.parametrize("overrides,match", [
    ({"budget": "hours"}, "budget="),
    ({"budget_ref_batch": 64}, "applies with budget=steps"),
    ({"budget": "samples", "budget_ref_batch": 64}, "applies with budget=steps"),
    ({"budget": "steps", "budget_ref_epochs": 30}, "filled in from epochs"),
    ({"budget": "steps", "budget_ref_batch": 0}, "budget_ref_batch"),
])
def test_bad_budget_settings_are_one_line_errors(overrides, match):
    with pytest.raises(LtbenchError, match=match):
        build_spec("scl", "shapes", 100, 0, "cpu", {**CPU, **overrides})
