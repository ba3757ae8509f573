"""Statistics for paired comparisons: t-intervals and p-values, Holm's step-down adjustment, and a
random-effects variance decomposition of a crossed grid (data seed x class order, training seeds within).

Everything here is plain numpy/scipy (scipy ships with ltbench's venv; statsmodels is not needed):

- paired t: the mean of per-seed differences, its 95 % interval mean ± t(0.975, n-1)·sd/√n and the
  two-sided p-value of H0 "mean difference = 0" (Student 1908; scipy.stats.t).
- Holm (1979), "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 6:65-70:
  sort the m p-values ascending, p_(i) -> max_{j<=i} min(1, (m - j + 1)·p_(j)). It controls the
  family-wise error rate at alpha for any dependence between the tests.
- variance components by the method of moments (expected mean squares of a balanced two-way
  random-effects ANOVA with replication; Searle, Casella & McCulloch 1992, "Variance Components",
  ch. 4): negative estimates are truncated at 0, as is usual.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ltbench.errors import LtbenchError

ALPHA = 0.05
# two-sided 95 % Student-t quantiles t(0.975, df) (standard tables); between listed df the next smaller
# df is used (a slightly wider, conservative interval); beyond 120 the normal 1.96
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t975(df: int) -> float:
    """t(0.975, df) from the table above (conservative between its rows)."""
    if df > 120:
        return 1.96
    return T975[max(k for k in T975 if k <= df)]


def _t_dist() -> Any:
    try:
        from scipy import stats
    except ImportError:  # pragma: no cover - scipy is a dependency of the venv
        raise LtbenchError("p-values need scipy: pip install scipy") from None
    return stats.t


def _sign_test_p(n: int) -> float:
    """Two-sided exact sign test of n differences that all share one sign."""
    from scipy.stats import binomtest

    return float(binomtest(n, n, 0.5).pvalue)


def paired_t(diffs: Sequence[float]) -> tuple[float, float | None, float | None]:
    """Mean of the differences, two-sided p-value of mean = 0, and the sample sd (None below 2 values).

    Identical non-zero differences (sd 0) leave the t statistic undefined; their p is the exact two-sided
    sign test's, 2 * 0.5**n (scipy.stats.binomtest), so two seeds that happen to agree to the digit
    (a 0.5-point gap is one image on a 200-image tail) give p = 0.5, not a certain sign. All-zero: p = 1."""
    d = np.asarray(list(diffs), dtype=float)
    n = len(d)
    if n == 0:
        raise ValueError("no differences")
    mean = float(d.mean())
    if n < 2:
        return mean, None, None
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return mean, (1.0 if mean == 0.0 else _sign_test_p(n)), sd
    t = mean / (sd / math.sqrt(n))
    p = float(2.0 * _t_dist().sf(abs(t), n - 1))
    return mean, p, sd


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values in the input order (None stays None and does not count in the family)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):  # type: ignore[arg-type, return-value]
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


def holm_verdict(mean: float, p_adj: float | None, alpha: float = ALPHA) -> str:
    if p_adj is None:
        return "no test"
    if p_adj < alpha:
        return "A > B" if mean > 0 else "A < B"
    return "not resolved"


# ----- variance decomposition --------------------------------------------------------------------

@dataclass(frozen=True)
class Components:
    """Method-of-moments variance components of one response; `shares` sum to 1 (when total > 0)."""

    n: int
    levels: dict[str, int]  # factor -> number of levels (training seeds: per cell)
    variances: dict[str, float]  # component -> estimated variance (>= 0)

    @property
    def total(self) -> float:
        return sum(self.variances.values())

    @property
    def shares(self) -> dict[str, float | None]:
        total = self.total
        return {k: (v / total if total > 0 else None) for k, v in self.variances.items()}


def decompose(values: dict[tuple[int, int, int], float], factors: tuple[str, str] = ("data seed", "class order"),
              replicate: str = "training seed") -> Components:
    """Variance components from {(data_seed, class_order, training_seed): value}.

    Data seed and class order are crossed random factors; training seeds are replicates inside each
    (data seed, class order) cell. A training seed is not crossed with the data: seed 0 on one subset
    and seed 0 on another share no randomness that means the same thing, so its variance is the
    within-cell (residual) one. A factor with one level drops out. The design must be balanced (the
    same number of training seeds in every cell); otherwise a LtbenchError says which cell differs.
    """
    if not values:
        raise LtbenchError("nothing to decompose: no values")
    d_levels = sorted({k[0] for k in values})
    c_levels = sorted({k[1] for k in values})
    cells: dict[tuple[int, int], list[float]] = {}
    for (d, c, _s), v in sorted(values.items()):
        cells.setdefault((d, c), []).append(float(v))
    counts = {len(cells.get((d, c), [])) for d in d_levels for c in c_levels}
    if len(counts) != 1 or 0 in counts:
        missing = [(d, c) for d in d_levels for c in c_levels if len(cells.get((d, c), [])) != max(counts)]
        raise LtbenchError(f"the grid is not balanced: (data seed, class order) {missing[0]} has "
                           f"{len(cells.get(missing[0], []))} training seed(s), others {max(counts)}; "
                           "decompose needs the same seeds in every cell")
    r = counts.pop()
    y = np.array([[cells[(d, c)] for c in c_levels] for d in d_levels])  # shape (a, b, r)
    a, b = y.shape[0], y.shape[1]
    levels = {factors[0]: a, factors[1]: b, replicate: r}
    grand = y.mean()
    cell_mean = y.mean(axis=2)
    var: dict[str, float] = {}
    # within cells: training seeds
    ms_e = float(((y - cell_mean[:, :, None]) ** 2).sum() / (a * b * (r - 1))) if r > 1 else None
    if a > 1 and b > 1:
        row = cell_mean.mean(axis=1)
        col = cell_mean.mean(axis=0)
        ms_a = b * r * float(((row - grand) ** 2).sum()) / (a - 1)
        ms_b = a * r * float(((col - grand) ** 2).sum()) / (b - 1)
        inter = cell_mean - row[:, None] - col[None, :] + grand
        ms_ab = r * float((inter ** 2).sum()) / ((a - 1) * (b - 1))
        # E[MS_A] = s2_e + r s2_ab + b r s2_a; E[MS_B] = s2_e + r s2_ab + a r s2_b; E[MS_AB] = s2_e + r s2_ab
        var[factors[0]] = max(0.0, (ms_a - ms_ab) / (b * r))
        var[factors[1]] = max(0.0, (ms_b - ms_ab) / (a * r))
        if ms_e is None:
            var[f"{factors[0]} x {factors[1]} + {replicate}"] = ms_ab
        else:
            var[f"{factors[0]} x {factors[1]}"] = max(0.0, (ms_ab - ms_e) / r)
            var[replicate] = ms_e
    elif a > 1 or b > 1:  # one-way random effects: E[MS_between] = s2_e + r s2_f
        name, k, means = (factors[0], a, cell_mean[:, 0]) if a > 1 else (factors[1], b, cell_mean[0, :])
        ms_f = r * float(((means - grand) ** 2).sum()) / (k - 1)
        if ms_e is None:
            var[f"{name} + {replicate}"] = ms_f
        else:
            var[name] = max(0.0, (ms_f - ms_e) / r)
            var[replicate] = ms_e
    else:
        if ms_e is None:
            raise LtbenchError("nothing to decompose: one run")
        var[replicate] = ms_e
    return Components(n=a * b * r, levels=levels, variances=var)
