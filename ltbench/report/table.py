"""The table model: rows, columns and cells with numbers (not text). `build.build_table` fills it;
`render` and `compact` turn it into text, `badges` and `costs` annotate its cells."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ltbench.report.paper import PAPER_NOTES

# footnote letters, in the order footnotes are printed (labels.SUPERSCRIPT has their marks)
NOTES = {
    "a": "not run",
    **PAPER_NOTES,
    "d": "empty shot group (no class of this setting falls in it)",
    "e": "not recorded: these runs predate the tail-only background gap (bg_gap_tail)",
}


@dataclass
class Column:
    key: str
    label: str
    dataset: str
    ratio: float
    head: int | None
    metric: str  # top1 / many / medium / few


@dataclass
class Row:
    key: str
    label: str  # the paper's name, or ours
    method: str | None  # None: a reported-only row
    vary: dict[str, Any] = field(default_factory=dict)
    mark: str = ""  # a numbered protocol note (TableResult.protocol_notes)


@dataclass
class Cell:
    mean: float | None = None
    std: float | None = None
    n: int = 0
    runs: int = 0  # runs in the cell (n counts those with a value for this metric)
    paper: float | None = None
    paper_text: str | None = None
    gap: float | None = None
    note: str | None = None  # footnote on ours
    paper_note: str | None = None  # footnote on the paper number
    best: bool = False
    half95: float | None = None  # INTERVAL_METRICS: 95 % t half-width over seeds
    frame_index: list[Any] = field(default_factory=list)  # the cell's runs (TableResult.frame index)
    badge: str | None = None  # opt-in (`table --badges`): report.badges
    cost: Any = None  # opt-in (`table --cost`): report.costs.CellCost


@dataclass
class TableResult:
    name: str
    title: str
    layout: str
    select: str
    rows: list[Row]
    columns: list[Column]
    cells: dict[tuple[str, str], Cell]
    vary_keys: list[str]
    seeds: tuple[int, ...]
    show_paper: bool  # any paper number at all
    caption: str
    frame: pd.DataFrame  # the selected runs
    notes: list[str] = field(default_factory=list)  # footnote letters used
    paper_cols: set[str] = field(default_factory=set)  # columns shown with paper and Δ beside ours
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run id, reason): not in any number
    protocol_notes: list[str] = field(default_factory=list)  # rows whose protocol differs from the others
