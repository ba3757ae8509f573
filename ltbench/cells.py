"""The finished runs of one grid: what `table`, `ablate`, `demo`, `compare`, `analyze` and `plot` read.

Every one of them does the same three steps: collect the records under a results folder, expand the grid
into the run ids it stands for, and keep the records that belong to the grid's cells (where a cell holds
runs of several configurations, the grid's own run ids pick the configuration; see
`ltbench.report.select_runs`). `grid_records` does the first two, once per command; `GridRecords`
selects or tabulates. Expanding a grid builds every spec (`ltbench.grid.expand`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ltbench.grid import Grid
    from ltbench.report.table import TableResult

Warn = Callable[[str], None]


@dataclass(frozen=True)
class GridRecords:
    """Every finished run under a results folder, and the run ids a grid expands to."""

    grid: Grid
    frame: pd.DataFrame  # one row per finished run (not only the grid's)
    expected_ids: Sequence[str]  # the grid's run ids, in its order
    row_ids: Mapping[str, frozenset[str]] = field(default_factory=dict)  # per varied row (grid_expansion)

    def selected(self, warn: Warn) -> pd.DataFrame:
        """The rows that belong to the grid's cells."""
        from ltbench.report.grid_runs import select_runs

        return select_runs(self.frame, self.grid, warn=warn, expected_ids=self.expected_ids)

    def table(self, warn: Warn, select: str = "last", name: str | None = None) -> TableResult:
        """The grid's table: its runs aggregated into cells (`ltbench.report.build_table`)."""
        from ltbench.report.build import build_table

        return build_table(self.frame, self.grid, select=select, name=name, warn=warn,
                           expected_ids=self.expected_ids, row_ids=self.row_ids)


def grid_records(grid: Grid, results_dir: Path, warn: Warn, include_lists: bool = False) -> GridRecords:
    """Collect the records under `results_dir` (with per-class lists if asked) and expand the grid."""
    from ltbench.report import collect
    from ltbench.report.grid_runs import grid_expansion

    frame = collect(results_dir, warn=warn, include_lists=include_lists)
    return GridRecords(grid, frame, *grid_expansion(grid))


def grid_runs(grid: Grid, results_dir: Path, warn: Warn, include_lists: bool = False) -> pd.DataFrame:
    """The finished runs of the grid under `results_dir`: collect, expected run ids, select."""
    return grid_records(grid, results_dir, warn, include_lists).selected(warn)
