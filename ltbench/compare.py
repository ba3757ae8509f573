"""Paired comparisons of two arms of a grid over seeds: the difference per seed, its mean and a t-interval.

Seeds are the unit of replication: run s of arm A and run s of arm B share the training seed (and the
long-tailed subset), so their difference removes the seed's shared noise. With n seeds the 95 %
interval is mean ± t(0.975, n-1) · sd / √n (sample sd); with n = 3 the t quantile is 4.30, so an
interval that excludes 0 needs a difference that is large and steady across seeds. In a crossed grid
(training seed x data seed x class order) the unit is the (seed, data seed, class order) triple.

Several comparisons in one call form one family: each gets its paired-t p-value and Holm's adjustment
over the family (ltbench.stats.holm), so a verdict that survives Holm holds for the whole call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ltbench import fingerprint, stats
from ltbench.errors import LtbenchError
from ltbench.report.collect import norm, value_column
from ltbench.report.labels import BACKGROUND_COLUMNS
from ltbench.stats import t975

UNIT_COLUMNS = ("seed", "protocol.subset.data_seed", "protocol.class_order")  # what pairs two runs

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
            match = sel[col].map(lambda v, value=value: str(norm(v)) == str(norm(_parse_scalar(value))))
            # .loc with a bool mask: an empty object-dtype mask given to `sel[...]` selects columns (none)
            sel = sel.loc[match.astype(bool)]
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
        va = _by_unit(rows_a[rows_a["setting"] == setting], column, a)
        vb = _by_unit(rows_b[rows_b["setting"] == setting], column, b)
        units = sorted(set(va) & set(vb))
        if not units:
            continue
        diffs = [va[u] - vb[u] for u in units]
        mean, half = t_interval(diffs)
        _, p, _ = stats.paired_t(diffs)
        out.append({"a_arm": str(a), "b_arm": str(b), "setting": setting, "metric": metric,
                    "seeds": _unit_labels(units), "units": units,
                    "a": sum(va[u] for u in units) / len(units), "b": sum(vb[u] for u in units) / len(units),
                    "diffs": diffs, "diff": mean, "half_width": half, "p": p,
                    "verdict": _verdict(mean, half)})
    return pd.DataFrame(out)


def holm_family(result: pd.DataFrame) -> pd.DataFrame:
    """The rows of one call with Holm-adjusted p-values (`p_holm`) and verdicts (`holm`) over all of them."""
    result = result.copy()
    pvals = [None if p is None or pd.isna(p) else float(p) for p in result.get("p", [])]
    adjusted = stats.holm(pvals)
    result["p_holm"] = adjusted
    result["holm"] = [stats.holm_verdict(d, p) for d, p in zip(result["diff"], adjusted, strict=True)]
    result.attrs["family"] = sum(p is not None for p in pvals)
    return result


def protocol_mismatches(frame: pd.DataFrame, a: Arm, b: Arm) -> list[str]:
    """Fingerprint fields where the arms' runs (same setting and seed) differ, other than the compared
    keys (the arms' key=value pairs); the methods' own views are left out."""
    keys = {k for k, _ in a.values} | {k for k, _ in b.values}
    return fingerprint.arm_mismatches(a.rows(frame), b.rows(frame), keys)


def _units(rows: pd.DataFrame) -> list[tuple[int, int, int]]:
    cols = [rows[c] if c in rows else pd.Series(0, index=rows.index) for c in UNIT_COLUMNS]
    return [(_int0(s), _int0(d), _int0(c)) for s, d, c in zip(*cols, strict=True)]


def _int0(v: Any) -> int:
    return 0 if v is None or pd.isna(v) else int(v)


def _unit_labels(units: list[tuple[int, int, int]]) -> list[int | str]:
    """Plain seeds when every unit has data seed and class order 0 (the usual grid), else s.d.c labels."""
    if all(u[1:] == (0, 0) for u in units):
        return [u[0] for u in units]
    return [f"s{s}.d{d}.c{c}" for s, d, c in units]


def _by_unit(rows: pd.DataFrame, column: str, arm: Arm) -> dict[tuple[int, int, int], float]:
    units = _units(rows)
    if len(set(units)) < len(units):  # several configurations match: pairing one silently would mislead
        differ = [c for c in rows.columns if c.startswith(("hp.", "train.")) and rows[c].astype(str).nunique() > 1]
        raise LtbenchError(f"arm {arm} matches several runs per seed in {rows['setting'].iloc[0]}; fix their "
                           f"values, e.g. {arm.method}|{differ[0].split('.', 1)[1] if differ else 'key'}=...")
    if column not in rows:
        return {}
    values = pd.to_numeric(rows[column], errors="coerce")
    return {u: float(v) for u, v in zip(units, values, strict=True) if not math.isnan(v)}


def unit_values(frame: pd.DataFrame, arm: Arm, setting: str, metric: str) -> dict[tuple[int, int, int], float]:
    """{(data seed, class order, training seed): value} of one arm in one setting (for stats.decompose)."""
    rows = arm.rows(frame)
    got = _by_unit(rows[rows["setting"] == setting], METRIC_COLUMNS[metric], arm)
    return {(d, c, s): v for (s, d, c), v in got.items()}


def decomposition(frame: pd.DataFrame, arms: list[tuple[Arm, Arm]], metrics: list[str]) -> pd.DataFrame:
    """Variance components (share of the total) of each arm's metric and of each pair's paired difference,
    per setting: one row per (subject, setting, metric, component)."""
    records = []

    def add(subject: str, setting: str, metric: str, values: dict[tuple[int, int, int], float]) -> None:
        if len(values) < 2:
            return
        try:
            comp = stats.decompose(values)
        except LtbenchError as exc:  # one unbalanced subject: say so in its row, decompose the others
            records.append({"subject": subject, "setting": setting, "metric": metric,
                            "component": f"not decomposed: {exc}", "levels": "", "n": len(values),
                            "variance": float("nan"), "sd": float("nan"), "share": None})
            return
        for name, var in comp.variances.items():
            records.append({"subject": subject, "setting": setting, "metric": metric, "component": name,
                            "levels": ", ".join(f"{k} {n}" for k, n in comp.levels.items()), "n": comp.n,
                            "variance": var, "sd": math.sqrt(var), "share": comp.shares[name]})

    for metric in metrics:
        column = METRIC_COLUMNS[metric]
        done = set()
        for a, b in arms:
            rows_a, rows_b = a.rows(frame), b.rows(frame)
            for setting in sorted(set(rows_a["setting"]) & set(rows_b["setting"])):
                if column not in frame:
                    continue
                va, vb = (unit_values(frame, arm, setting, metric) for arm in (a, b))
                for arm, v in ((a, va), (b, vb)):
                    if (str(arm), setting) not in done:
                        done.add((str(arm), setting))
                        add(str(arm), setting, metric, v)
                add(f"{a} − {b}", setting, metric, {k: va[k] - vb[k] for k in sorted(set(va) & set(vb))})
    return pd.DataFrame(records, columns=["subject", "setting", "metric", "component", "levels", "n", "variance",
                                          "sd", "share"])


def _verdict(mean: float, half: float | None) -> str:
    if half is None:
        return "one seed: no interval"
    if mean - half > 0:
        return "A > B"
    if mean + half < 0:
        return "A < B"
    return "not resolved"
