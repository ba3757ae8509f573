"""The readable table layout (`ltbench table --layout compact`): one column per table column (a
setting for Table 1) instead of three (ours | paper | Δ); each cell reads
"ours ± sd (n), Δ vs paper, badge" (and the cost with --cost). Markdown only: the wide CSV stays the
machine-readable form and the LaTeX keeps the wide layout."""

from __future__ import annotations

import pandas as pd

from ltbench.report.labels import DASH, fmt_value
from ltbench.report.render import kind, markdown_tail, ours_text, paper_text
from ltbench.report.table import Column, Row, TableResult


def cell_text(t: TableResult, row: Row, col: Column, show_cost: bool = True) -> str:
    c = t.cells[(row.key, col.key)]
    parts = []
    if row.method is not None:
        parts.append(ours_text(c, len(t.seeds), "md"))
    if col.key in t.paper_cols:
        if row.method is None:
            parts.append(f"paper {paper_text(c, 'md')}")
        elif c.gap is not None:
            parts.append(f"Δ {round(c.gap, 2) + 0.0:+.2f} vs {c.paper_text}")
        elif c.paper_text is not None:
            parts.append(f"paper {paper_text(c, 'md')}")
    if c.badge:
        parts.append(c.badge)
    if c.cost is not None and show_cost:
        parts.append(c.cost.text())
    return ", ".join(parts) or DASH


def compact_frame(t: TableResult) -> pd.DataFrame:
    records = []
    for row in t.rows:
        rec = {"Method": row.label + getattr(row, "mark", ""), "ltbench": kind(row)}
        for k in t.vary_keys:
            rec[k] = fmt_value(row.vary[k]) if k in row.vary else ""
        seen = set()  # the cost once per setting (its metric columns share the runs)
        for col in t.columns:
            setting = (col.dataset, col.ratio, col.head)
            rec[col.label] = cell_text(t, row, col, show_cost=setting not in seen)
            seen.add(setting)
        records.append(rec)
    return pd.DataFrame(records)


def render_compact_markdown(t: TableResult) -> str:
    df = compact_frame(t)
    lead = 2 + len(t.vary_keys)
    body = df.to_markdown(index=False, disable_numparse=True,
                          colalign=("left",) * lead + ("right",) * (df.shape[1] - lead))
    caption = (f"{t.caption} Each cell: ours = mean ± sd over seeds (n runs), Δ = ours − the paper's number "
               "(shown after 'vs').")
    out = [f"### {t.name}: {t.title}", "", body, "", caption, *markdown_tail(t)]
    return "\n".join(out) + "\n"
