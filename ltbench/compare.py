"""Paired comparisons of two arms of a grid over seeds: the difference per seed, its mean and a t-interval.

Seeds are the unit of replication: run s of arm A and run s of arm B share the training seed (and the
long-tailed subset), so their difference removes the seed's shared noise. With n seeds the 95 %
interval is mean ± t(0.975, n-1) · sd / √n (sample sd); with n = 3 the t quantile is 4.30, so an
interval that excludes 0 needs a difference that is large and steady across seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ltbench.errors import LtbenchError
from ltbench.report import BACKGROUND_COLUMNS, _norm, value_column

# two-sided 95 % Student-t quantiles t(0.975, df) (standard tables); between listed df the next smaller
# df is used (a slightly wider, conservative interval); beyond 120 the normal 1.96
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t975(df: int) -> float:
    if df > 120:
        return 1.96
    return T975[max(k for k in T975 if k <= df)]
METRIC_COLUMNS = {"top1": "top1", "many": "many", "medium": "medium", "few": "few", **BACKGROUND_COLUMNS}


@dataclass(frozen=True)
class Arm:
    """A method, optionally with hyperparameter values, written `method` or `method|key=value|...`."""

    method: str
    values: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Arm:
        method, *pairs = [p.strip() for p in text.split("|")]
        values = []
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise LtbenchError(f"arm {text!r}: expected method|key=value, got {pair!r}")
            values.append((key.strip(), value.strip()))
        if not method:
            raise LtbenchError(f"arm {text!r} names no method")
        return cls(method, tuple(values))

    def __str__(self) -> str:
        return "|".join([self.method, *(f"{k}={v}" for k, v in self.values)])

    def rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        sel = frame[frame["method"] == self.method]
        for key, value in self.values:
            col = value_column(sel, key)
            if col is None:
                return sel.iloc[0:0]
            sel = sel[sel[col].map(lambda v, value=value: str(_norm(v)) == str(_norm(_parse_scalar(value))))]
        return sel


def _parse_scalar(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def t_interval(diffs: list[float]) -> tuple[float, float | None]:
    """Mean and 95 % half-width (None with fewer than 2 values)."""
    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    t = t975(n - 1)
    return mean, t * sd / math.sqrt(n)


def paired(frame: pd.DataFrame, a: Arm, b: Arm, metric: str = "top1") -> pd.DataFrame:
    """One row per setting: seeds both arms have, A's and B's means, per-seed A − B, mean ± 95 % half-width."""
    if metric not in METRIC_COLUMNS:
        raise LtbenchError(f"unknown metric {metric!r}; choose from {', '.join(METRIC_COLUMNS)}")
    column = METRIC_COLUMNS[metric]
    out = []
    rows_a, rows_b = a.rows(frame), b.rows(frame)
    for setting in sorted(set(rows_a["setting"]) & set(rows_b["setting"])):
        va = _by_seed(rows_a[rows_a["setting"] == setting], column, a)
        vb = _by_seed(rows_b[rows_b["setting"] == setting], column, b)
        seeds = sorted(set(va) & set(vb))
        if not seeds:
            continue
        diffs = [va[s] - vb[s] for s in seeds]
        mean, half = t_interval(diffs)
        out.append({"setting": setting, "metric": metric, "seeds": seeds,
                    "a": sum(va[s] for s in seeds) / len(seeds), "b": sum(vb[s] for s in seeds) / len(seeds),
                    "diffs": diffs, "diff": mean, "half_width": half,
                    "verdict": _verdict(mean, half)})
    return pd.DataFrame(out)


def _by_seed(rows: pd.DataFrame, column: str, arm: Arm) -> dict[int, float]:
    if rows["seed"].duplicated().any():  # several configurations match: pairing one silently would mislead
        differ = [c for c in rows.columns if c.startswith(("hp.", "train.")) and rows[c].astype(str).nunique() > 1]
        raise LtbenchError(f"arm {arm} matches several runs per seed in {rows['setting'].iloc[0]}; fix their "
                           f"values, e.g. {arm.method}|{differ[0].split('.', 1)[1] if differ else 'key'}=...")
    if column not in rows:
        return {}
    values = pd.to_numeric(rows[column], errors="coerce")
    return {int(s): float(v) for s, v in zip(rows["seed"], values, strict=True) if not math.isnan(v)}


def _verdict(mean: float, half: float | None) -> str:
    if half is None:
        return "one seed: no interval"
    if mean - half > 0:
        return "A > B"
    if mean + half < 0:
        return "A < B"
    return "not resolved"
