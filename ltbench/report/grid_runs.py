"""Which collected runs belong to a grid, and which of the grid's runs failed.

`select_runs` matches runs on their spec fields (no torch); `grid_run_ids` expands the grid into run ids
(through `ltbench.grid.expand`, which builds a spec per run) to tell a cell's own configuration from
another one's runs that happen to share its cell.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ltbench.grid import Grid
from ltbench.report.collect import isna, norm, value_column
from ltbench.report.labels import Warn, console_warn, fmt_value, vary_row_key
from ltbench.rundir import RunDir


def _matches(df: pd.DataFrame, key: str, allowed: Sequence[Any]) -> pd.Series:
    col = value_column(df, key)
    if col is None:
        return pd.Series(False, index=df.index)
    want = {norm(v) for v in allowed}
    return df[col].map(lambda v: norm(v) in want)


def select_runs(df: pd.DataFrame, grid: Grid, methods: Sequence[str] | None = None,
                settings: Sequence[tuple[str, float, int | None]] | None = None,
                warn: Warn | None = None, expected_ids: Collection[str] | None = None) -> pd.DataFrame:
    """Rows of `df` that belong to the grid (torch-free: matched on spec fields, not on run ids).

    A run belongs if its method, setting, seed and preset are in the grid and every override / varied
    value matches. When one cell holds runs of several configurations (e.g. a manual run with another
    learning rate), the configuration that holds the grid's own runs is kept (`expected_ids`: the run ids
    the grid expands to, e.g. `grid_run_ids`), else the one with the most runs; the others are named in
    a warning. Without `expected_ids`, a hyperparameter the grid leaves at its default cannot tell two
    configurations apart (say mask_locator=saliency, the default, from another grid's random).
    Two runs have the same configuration when every spec field that both record is equal (a field
    added to ltbench later, which older spec.json files lack, does not split a cell).
    """
    warn = warn or console_warn
    if df.empty:
        return df
    methods = list(grid.methods if methods is None else methods)
    settings = list(grid.settings() if settings is None else settings)
    keys = {(d, float(r), None if h is None else int(h)) for d, r, h in settings}
    heads = [None if isna(h) else int(h) for h in df["max_per_class"]]
    where = zip(df["dataset"], df["ratio"], heads, strict=True)
    mask = pd.Series([(d, float(r), h) in keys for d, r, h in where], index=df.index)
    mask &= df["method"].isin(methods) & df["seed"].isin(list(grid.seeds)) & (df["preset"] == grid.preset)
    for key, value in grid.overrides.items():
        mask &= _matches(df, key, [value])
    for key, values in grid.vary.items():
        mask &= _matches(df, key, values)
    expected = set(expected_ids or ())
    # A run the grid expands to is the grid's even where a recorded field differs from the grid's value:
    # the spec dropped a setting that cannot act in that combination (a center box is the same under
    # box_clip=shift as under clip, so that run records clip; methods/smcl.py `_drop_masking_noops`).
    mask |= df["run_id"].isin(expected)
    sel = df.loc[mask.astype(bool)]
    if sel.empty:
        return sel
    cell_keys = ["method", "setting"] + [value_column(sel, k) for k in grid.vary]
    keep = []
    for _, cell in sel.groupby(cell_keys, dropna=False, sort=True):
        groups = _config_groups(cell)
        if len(groups) > 1:
            groups.sort(key=lambda idx: (-sum(r in expected for r in cell.loc[idx, "run_id"]), -len(idx),
                                         min(cell.loc[idx, "run_id"])))
            ref = cell.loc[groups[0][0]]
            for other in groups[1:]:
                row = cell.loc[other[0]]
                warn(f"{ref['setting']} {ref['method']}: ignoring {len(other)} run(s) of another "
                     f"configuration ({_spec_diff(ref, row)}); e.g. {row['run_id']}")
            cell = cell.loc[groups[0]]
        keep.append(cell)
    return pd.concat(keep).sort_values(["setting", "method", "seed", "run_id"], kind="stable")


def _compatible(a: pd.Series, b: pd.Series) -> bool:
    shared = set(a["spec_keys"]) & set(b["spec_keys"])
    return all(norm(a[c]) == norm(b[c]) for c in shared)


def _config_groups(cell: pd.DataFrame) -> list[list[Any]]:
    """Runs of a cell grouped by configuration (each run joins the first group it agrees with)."""
    groups: list[list[Any]] = []
    for idx, run in cell.iterrows():
        for group in groups:
            if all(_compatible(run, cell.loc[j]) for j in group):
                group.append(idx)
                break
        else:
            groups.append([idx])
    return groups


def _spec_diff(a: pd.Series, b: pd.Series, limit: int = 3) -> str:
    cols = sorted(set(a["spec_keys"]) & set(b["spec_keys"]))
    diffs = [f"{c} {fmt_value(b[c])} vs {fmt_value(a[c])}" for c in cols if norm(a[c]) != norm(b[c])]
    if not diffs:
        return "same settings, other spec fields"
    more = f", +{len(diffs) - limit} more" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more


def grid_expansion(grid: Grid) -> tuple[list[str], dict[str, frozenset[str]]]:
    """The run ids the grid expands to, in its order, and the run ids of each varied row (keyed as
    `labels.vary_row_key`). A row whose combination resolves to another row's spec (SMCL's saliency_pad
    with a random box: never read) holds that row's runs. A spec is built per run."""
    from ltbench.grid import expand

    runs = expand(grid)
    rows: dict[str, set[str]] = {}
    for run in runs:
        for combo in (run.vary, *run.aliases):
            rows.setdefault(vary_row_key(run.spec.method, combo), set()).add(run.run_id)
    return [run.run_id for run in runs], {key: frozenset(ids) for key, ids in rows.items()}


def grid_run_ids(grid: Grid) -> list[str]:
    """The run ids the grid expands to, in its order (a spec is built per run)."""
    return grid_expansion(grid)[0]


def grid_failures(grid: Grid, results_dir: Path, run_ids: Collection[str] | None = None) -> list[tuple[str, str]]:
    """(run id, first line of the reason) of every run of the grid that ended as failed (`run_ids`: the
    grid's, if already expanded)."""
    out = []
    for run_id in grid_run_ids(grid) if run_ids is None else run_ids:
        rd = RunDir.of(results_dir, run_id)
        if rd.state() != "failed":
            continue
        try:
            reason = str(rd.read_failure().get("reason") or "no reason recorded")
        except (OSError, ValueError, AttributeError):
            reason = "failed.json is unreadable"
        out.append((run_id, reason.strip().splitlines()[0] if reason.strip() else "no reason recorded"))
    return out
