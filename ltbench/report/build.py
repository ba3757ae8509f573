"""A grid's runs -> a TableResult: rows and columns by layout, one cell per (row, column) with the mean,
sample std and n over seeds, the paper's number beside it, footnotes and protocol notes.

Layouts: `table1` / `table1-extended` / `table2` take the paper's rows and columns (report.paper);
`ablate-*` and `grid` take the grid's methods x varied values as rows and its settings x metrics as
columns.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pandas as pd

from ltbench import fingerprint
from ltbench.grid import Grid
from ltbench.report import paper
from ltbench.report.collect import isna, norm, value_column
from ltbench.report.grid_runs import select_runs
from ltbench.report.labels import (
    BACKGROUND_COLUMNS,
    INTERVAL_METRICS,
    LOWER_IS_BETTER,
    METRIC_LABELS,
    METRICS,
    NUMBERS,
    OLD_GAPS,
    SHOT_RULE_TEXT,
    Warn,
    console_warn,
    fmt_ratio,
    fmt_value,
    setting_id,
    setting_label,
    vary_row_key,
)
from ltbench.report.selection import SELECT_TEXT, SelectionRule, selection_rule
from ltbench.report.table import NOTES, Cell, Column, Row, TableResult
from ltbench.stats import t975


def _grid_columns(grid: Grid, metrics: Sequence[str]) -> list[Column]:
    cols = []
    single = len(grid.settings()) == 1
    for d, r, h in grid.settings():
        for m in metrics:
            if single:
                label = METRIC_LABELS[m]
            elif len(metrics) == 1:
                label = setting_label(d, r, h)
            else:
                label = f"{setting_label(d, r, h)} {METRIC_LABELS[m]}"
            cols.append(Column(f"{setting_id(d, r, h)}:{m}", label, d, r, h, m))
    return cols


def _vary_rows(grid: Grid, methods: Sequence[str]) -> list[Row]:
    rows = []
    for m in methods:
        for combo in grid.vary_combos():
            rows.append(Row(vary_row_key(m, combo), paper.paper_label(m), m, combo))
    return rows


def _paper_rows(reported: pd.DataFrame | None, grid: Grid, frame: pd.DataFrame) -> list[Row]:
    """The paper's rows in its order, then our methods the paper lacks (grid order, then paper.method_order)."""
    rows, seen = [], set()
    if reported is not None:
        for name in reported["method"]:
            method = paper.method_of_paper(name)
            rows.append(Row(name, name, method))
            if method:
                seen.add(method)
    extra = [m for m in grid.methods if m not in seen]
    ran = sorted(set(frame["method"]) - seen - set(extra)) if not frame.empty else []
    ran.sort(key=paper.method_order)
    for m in extra + ran:
        rows.append(Row(m, paper.paper_label(m), m))
    return rows


def build_table(df: pd.DataFrame, grid: Grid, select: str = "last", name: str | None = None,
                warn: Warn | None = None, expected_ids: Collection[str] | None = None,
                row_ids: Mapping[str, Collection[str]] | None = None) -> TableResult:
    """Aggregate the grid's runs into table cells (mean, std, n), next to the reported numbers
    (`expected_ids`: see grid_runs.select_runs; `row_ids`: the run ids each varied row expands to,
    grid_runs.grid_expansion, so a row that is another row's computation shows those runs)."""
    warn = warn or console_warn
    rule = selection_rule(select)
    layout = grid.table or "grid"
    name = name or grid.name
    paper_t1 = paper_t2 = ablations = None
    all_methods = sorted(set(df["method"])) if not df.empty else []
    if layout in ("table1", "table1-extended"):
        columns = [Column(f"{d}_r{fmt_ratio(r)}", setting_label(d, r), d, r, None, "top1")
                   for d, r in paper.TABLE1_SETTINGS]
        paper_t1 = paper.load_paper("table1", warn)
        if layout == "table1-extended":  # SMCL's rows, then BCL / ConCutMix from their own sources
            extra = paper.load_paper("table1-extended", warn)
            if paper_t1 is not None and extra is not None:
                paper_t1 = pd.concat([paper_t1, extra], ignore_index=True)
        frame = select_runs(df, grid, methods=all_methods,
                            settings=[(d, r, None) for d, r in paper.TABLE1_SETTINGS], warn=warn,
                            expected_ids=expected_ids)
        rows = _paper_rows(paper_t1, grid, frame)
        title = paper.TITLES[layout]
    elif layout == "table2":
        d, r, h = grid.settings()[0]
        columns = [Column(m if m != "top1" else "all", METRIC_LABELS[m], d, r, h, m) for m in METRICS]
        paper_t2 = paper.load_paper("table2", warn)
        frame = select_runs(df, grid, methods=all_methods, settings=[(d, r, h)], warn=warn,
                            expected_ids=expected_ids)
        rows = _paper_rows(paper_t2, grid, frame)
        title = paper.table2_title(setting_label(d, r, h))
    else:
        ablation = layout.startswith("ablate-")
        single = len(grid.settings()) == 1
        metrics = grid.metrics or (METRICS if (ablation or single) else ("top1",))
        metrics = tuple(dict.fromkeys(OLD_GAPS.get(m, m) for m in metrics))
        columns = _grid_columns(grid, metrics)
        frame = select_runs(df, grid, warn=warn, expected_ids=expected_ids)
        rows = _vary_rows(grid, grid.methods)
        if ablation:
            ablations = paper.load_paper("ablations", warn)
        elif any(paper.is_table1_setting(c.dataset, c.ratio, c.head) for c in columns):
            paper_t1 = paper.load_paper("table1", warn)
        settings_text = ", ".join(setting_label(d, r, h) for d, r, h in grid.settings())
        title = paper.TITLES.get(layout) or (f"ablation {grid.name}" if layout == "ablate"
                                             else f"accuracy (%) on {settings_text}")

    vary_keys = list(grid.vary)
    vcols = {k: value_column(frame, k) for k in vary_keys} if not frame.empty else {}
    cells: dict[tuple[str, str], Cell] = {}
    row_of: dict[Any, str] = {}  # frame index -> row key (for the protocol notes)
    members: dict[str, frozenset[Any]] = {}  # row key -> its runs (frame index)
    for row in rows:
        if row.method is None or frame.empty:
            sub_rows = frame.iloc[0:0]
        else:
            sub_rows = frame.loc[_row_mask(frame, row, vcols, (row_ids or {}).get(row.key, ()))]
            for i in sub_rows.index:  # a run two rows share (Same runs) keeps the first for its notes
                row_of.setdefault(i, row.key)
            members[row.key] = frozenset(sub_rows.index)
        for col in columns:
            cell = _cell(sub_rows, row, col, rule)
            paper.attach_paper(cell, row, col, layout, paper_t1, paper_t2, ablations)
            if cell.mean is not None and cell.paper is not None and cell.paper_note is None:
                cell.gap = round(cell.mean - cell.paper, 10) + 0.0  # no -0.00
            cells[(row.key, col.key)] = cell
    # a background metric of a data set that has none (everything but `shapes`): drop the column
    columns = [col for col in columns if col.metric not in BACKGROUND_COLUMNS
               or any(cells[(r.key, col.key)].n or cells[(r.key, col.key)].note == "e" for r in rows)
               or not any(cells[(r.key, col.key)].runs for r in rows)]
    for col in columns:  # bold: best of ours per column (for a gap, the smallest: less background reliance)
        means = [m for m in (cells[(row.key, col.key)].mean for row in rows) if m is not None]
        if len(means) > 1:
            top = min(means) if col.metric in LOWER_IS_BETTER else max(means)
            for row in rows:
                c = cells[(row.key, col.key)]
                c.best = c.mean is not None and math.isclose(c.mean, top, rel_tol=0, abs_tol=1e-9)

    paper_cols = {col.key for col in columns if any(cells[(r.key, col.key)].paper is not None for r in rows)}
    for (_, col_key), c in cells.items():
        if col_key not in paper_cols:
            c.paper_note = None
    show_paper = bool(paper_cols)
    result = TableResult(name=name, title=title, layout=layout, select=select, rows=rows, columns=columns,
                         cells=cells, vary_keys=vary_keys, seeds=grid.seeds, show_paper=show_paper,
                         caption="", frame=frame, paper_cols=paper_cols)
    shown = [cells[(r.key, col.key)] for r in rows for col in columns]  # footnotes of dropped columns: gone
    used = {c.note for c in shown} | {c.paper_note for c in shown}
    result.notes = [k for k in NOTES if k in used]
    result.caption = _caption(result, grid, frame) + _same_runs_text(rows, members)
    _protocol_notes(result, row_of)
    return result


def _row_mask(frame: pd.DataFrame, row: Row, vcols: Mapping[str, str | None], ids: Collection[str]) -> pd.Series:
    """The runs of a varied row: its method with its values, or a run its combination expands to."""
    mask = frame["method"] == row.method
    for k, v in row.vary.items():
        col = vcols[k]  # None: no run records the setting
        mask &= frame[col].map(lambda x, v=v: norm(x) == norm(v)).astype(bool) if col is not None else False
    return (mask | frame["run_id"].isin(list(ids))).astype(bool)


def _same_runs_text(rows: Sequence[Row], members: Mapping[str, frozenset[Any]]) -> str:
    """Caption: rows that show the same runs (a varied setting that cannot act there is reset by the spec)."""
    pairs = []
    for i, later in enumerate(rows):
        runs = members.get(later.key)
        first = next((r for r in rows[:i] if runs and members.get(r.key) == runs), None)
        if first is not None:
            pairs.append(f"{later.key} = {first.key}")
    if not pairs:
        return ""
    return (" Same runs: " + "; ".join(pairs) + " (a varied setting that cannot act in that combination is "
            "reset, so both rows name one computation).")


def _cell(sub_rows: pd.DataFrame, row: Row, col: Column, rule: SelectionRule) -> Cell:
    """The runs of one row in one column: their mean, std and n under the selection rule, or a note."""
    sub = sub_rows[(sub_rows["dataset"] == col.dataset) & (sub_rows["ratio"] == col.ratio)]
    same_head = [(col.head is None) if isna(h) else int(h) == col.head for h in sub["max_per_class"]]
    sub = sub.loc[pd.Series(same_head, index=sub.index, dtype=bool)]
    values = rule.values(sub, col.metric)
    cell = Cell(runs=len(sub), n=int(values.notna().sum()), frame_index=list(sub.index))
    if cell.n:
        cell.mean = float(values.mean())
        cell.std = float(values.std(ddof=1)) if cell.n > 1 else None
        if col.metric in INTERVAL_METRICS and cell.std is not None:
            cell.half95 = t975(cell.n - 1) * cell.std / math.sqrt(cell.n)
    elif cell.runs:
        cell.note = "e" if col.metric in INTERVAL_METRICS and _has_background(sub) else "d"
    elif row.method is not None:
        cell.note = "a"  # reported-only rows say so in their ltbench column
    return cell


def _has_background(runs: pd.DataFrame) -> bool:
    """Runs of a data set with backgrounds (they record the seen/unseen split)."""
    col = BACKGROUND_COLUMNS["seen"]
    return col in runs and bool(pd.to_numeric(runs[col], errors="coerce").notna().any())


def _caption(t: TableResult, grid: Grid, frame: pd.DataFrame) -> str:
    seeds = ", ".join(map(str, t.seeds))
    rules = sorted(set(frame["shot_rule"].dropna())) if not frame.empty else []
    if not rules:
        rules = [str(grid.overrides.get("shot_rule", "shots-100-20"))]
    rule_txt = "; ".join(f"{r} ({SHOT_RULE_TEXT.get(r, 'see spec')})" for r in rules)
    parts = [
        f"{t.title}. Preset {grid.preset}; grid {grid.path.name}.",
        f"Selection: {SELECT_TEXT[t.select]}.",
        f"ours = mean ± sample std (ddof=1) over seeds {seeds}, n runs in parentheses; "
        f"† = fewer runs than the grid's {len(t.seeds)} seed(s).",
        f"Shot rule: {rule_txt}.",
    ]
    if t.show_paper:
        parts += paper.paper_caption(t.layout, any(r.method is None for r in t.rows))
    if t.vary_keys:
        parts.append("Varied: " + ", ".join(t.vary_keys) + ".")
    return " ".join(parts)


def _protocol_notes(t: TableResult, row_of: dict[Any, str]) -> None:
    """Caption: the fingerprint the runs share; numbered notes on rows whose runs differ from the other
    rows (same setting and seed) in a field the grid does not vary."""
    frame = t.frame.loc[[i for i in t.frame.index if i in row_of]] if not t.frame.empty else t.frame
    shared = fingerprint.shared_text(frame, t.vary_keys)
    if shared:
        t.caption += " " + shared
    by_key = {r.key: r for r in t.rows}
    for k, (keys, text) in enumerate(fingerprint.row_notes(frame, pd.Series(row_of, dtype=object), t.vary_keys,
                                                                 [r.key for r in t.rows])):
        mark = NUMBERS[k] if k < len(NUMBERS) else f"({k + 1})"
        names = []
        for key in keys:
            row = by_key[key]
            names.append(row.label + "".join(f"|{v}={fmt_value(x)}" for v, x in row.vary.items()))
            row.mark = mark
        t.protocol_notes.append(f"{mark} {', '.join(dict.fromkeys(names))}: {text} (the other rows)")
