"""The pure parts of `ltbench bench`'s result (ltbench.bench.result): per-round ratios and the late-epoch
mix of a method's step branches. No trainer and no timing: the samples are made up."""

from __future__ import annotations

import pytest

from ltbench.bench import TARGETS, summarize, targets_report
from ltbench.bench.cases import Case
from ltbench.bench.result import _late_epoch


def _case(name: str, late_share: float | None) -> Case:
    return Case(name, spec=None, trainer=None, late_share=late_share)


def test_summarize_is_median_min_max():
    assert summarize([3.0, 1.0, 2.0, 10.0]) == (2.5, 1.0, 10.0)


def test_late_epoch_mixes_the_branches_by_late_share_per_round():
    samples = {"full:erm": [2.0, 4.0, 3.0], "full:m:masked": [10.0, 12.0, 9.0], "full:m:plain": [4.0, 6.0, 5.0]}
    out: dict = {}
    _late_epoch(out, [_case("m:masked", 0.2), _case("m:plain", 0.8)], samples)
    p = 0.2  # the formula bench has always used: (p x masked + (1 - p) x plain) / ERM, per round
    rounds = [(p * x + (1 - p) * y) / e for x, y, e in
              zip(samples["full:m:masked"], samples["full:m:plain"], samples["full:erm"], strict=True)]
    med, lo, hi = summarize(rounds)
    assert out["late_epoch_vs_erm"] == round(med, 4)
    assert out["late_epoch_vs_erm_spread"] == [round(lo, 4), round(hi, 4)]
    assert out["late_epoch_step_mix"] == 0.2


@pytest.mark.parametrize("cases", [[_case("m", 1.0)], [_case("erm", None)]])
def test_no_late_epoch_mix_for_a_single_kind_of_step(cases):
    out: dict = {}
    _late_epoch(out, cases, {"full:erm": [1.0], "full:m": [2.0]})
    assert out == {}


def test_targets_report_checks_median_and_every_round():
    result = {"erm_overhead_ratio": 1.02, "erm_overhead_ratio_spread": [1.0, 1.07],
              "steps": {"erm": {}, "smcl:masked": {"predicted_step_vs_erm": 5.0, "vs_prediction": 1.2,
                                                   "vs_prediction_spread": [1.1, 1.3]}}}
    rows = {r["target"]: r for r in targets_report(result)}
    erm = rows[TARGETS[0][3]]
    assert erm["met"] and not erm["met_every_round"]
    masked = rows["smcl:masked step <= 1.1 x (5 x ERM step)"]
    assert not masked["met"] and masked["limit"] == "<= 1.1"
    assert len(rows) == 2  # targets without a value are left out
