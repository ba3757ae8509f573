"""Holm's adjustment, paired-t p-values and the variance decomposition, each against a literal computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ltbench.errors import LtbenchError
from ltbench.stats import decompose, holm, holm_verdict, paired_t, t975


def test_holm_against_a_literal_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max: 0.02, 0.03,
    # 0.06, 0.06; back in the input order:
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.01]) == pytest.approx([0.5, None, 0.02])  # None: not in the family (m = 2)
    assert holm([0.9, 0.8]) == [1.0, 1.0]  # capped at 1
    assert holm_verdict(-2.0, 0.01) == "A < B" and holm_verdict(2.0, 0.2) == "not resolved"


def test_paired_t_p_value_against_the_closed_form_for_two_degrees_of_freedom():
    diffs = [3.0, 2.9, 2.6]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    t = mean / (sd / math.sqrt(3))
    # Student's t with 2 df: P(|T| > t) = 1 - t / sqrt(t^2 + 2)
    expected = 1 - t / math.sqrt(t * t + 2)
    got_mean, got_p, got_sd = paired_t(diffs)
    assert (got_mean, got_sd) == (pytest.approx(mean), pytest.approx(sd))
    assert got_p == pytest.approx(expected, rel=1e-9)
    # one degree of freedom (Cauchy): P(|T| > t) = 1 - 2 atan(t) / pi
    _, p1, _ = paired_t([1.0, 3.0])
    assert p1 == pytest.approx(1 - 2 * math.atan(2.0 / (math.sqrt(2.0) / math.sqrt(2))) / math.pi)
    assert paired_t([1.5]) == (1.5, None, None)
    assert paired_t([0.0, 0.0])[1] == 1.0


@pytest.mark.parametrize(("n", "p"), [(2, 0.5), (3, 0.25), (5, 0.0625), (10, 2 / 1024)])
def test_identical_differences_get_the_sign_tests_p_not_zero(n, p):
    """sd 0: the t statistic is undefined; two seeds agreeing to the digit once read as 'A > B, p 0.000'."""
    mean, got, sd = paired_t([0.5] * n)
    assert (mean, sd) == (0.5, 0.0)
    assert got == pytest.approx(p, rel=1e-12)  # 2 * 0.5**n: every sign agrees
    assert paired_t([-2.0] * n)[1] == pytest.approx(p, rel=1e-12)


def test_t_quantiles_between_and_beyond_the_table():
    assert (t975(2), t975(11), t975(22), t975(500)) == (4.303, 2.201, 2.086, 1.96)


def test_decompose_an_additive_grid_without_noise():
    d_eff, c_eff = [0.0, 4.0, 1.0], [0.0, 2.0]
    values = {(d, c, s): 50 + d_eff[d] + c_eff[c] for d in range(3) for c in range(2) for s in range(2)}
    comp = decompose(values)
    assert comp.variances["data seed"] == pytest.approx(np.var(d_eff, ddof=1))
    assert comp.variances["class order"] == pytest.approx(np.var(c_eff, ddof=1))
    assert comp.variances["data seed x class order"] == pytest.approx(0.0)
    assert comp.variances["training seed"] == pytest.approx(0.0)
    assert sum(comp.shares.values()) == pytest.approx(1.0)
    assert comp.levels == {"data seed": 3, "class order": 2, "training seed": 2} and comp.n == 12


def test_decompose_recovers_known_components_on_a_large_simulated_grid():
    rng = np.random.default_rng(0)
    a, b, r = 40, 40, 4
    sd = {"data seed": 2.0, "class order": 1.0, "data seed x class order": 0.5, "training seed": 1.5}
    da, cb = rng.normal(0, sd["data seed"], a), rng.normal(0, sd["class order"], b)
    dc = rng.normal(0, sd["data seed x class order"], (a, b))
    values = {(d, c, s): da[d] + cb[c] + dc[d, c] + rng.normal(0, sd["training seed"])
              for d in range(a) for c in range(b) for s in range(r)}
    comp = decompose(values)
    for name, s in sd.items():
        assert comp.variances[name] == pytest.approx(s * s, rel=0.4), name


def test_decompose_with_one_factor_and_training_seeds_only():
    values = {(0, c, s): 10.0 * c + s for c in range(3) for s in range(2)}  # class order only
    comp = decompose(values)
    # within cells: seeds 0/1 -> variance 0.5; between: MS = 2 * var(10, 20, 30 + 0.5) = 200 -> (200 - 0.5) / 2
    assert comp.variances == {"class order": pytest.approx((200 - 0.5) / 2), "training seed": pytest.approx(0.5)}
    seeds_only = decompose({(0, 0, s): float(s) for s in range(4)})
    assert seeds_only.variances == {"training seed": pytest.approx(np.var([0, 1, 2, 3], ddof=1))}


def test_decompose_refuses_an_unbalanced_grid():
    values = {(d, c, s): 1.0 for d in range(2) for c in range(2) for s in range(2)}
    del values[(1, 1, 1)]
    with pytest.raises(LtbenchError, match="not balanced"):
        decompose(values)
