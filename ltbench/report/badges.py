"""Reproduction badges for table cells that have a paper number.

Rule (stated in every caption that shows badges): with n >= 2 seeds, our 95 % interval for the mean is
mean ± t(0.975, n−1)·sd/√n (Student's t; ltbench.stats.t975), widened by ±0.5 point (the precision
papers print: one decimal, plus run-to-run noise the paper's own seeds do not show). The cell is
"reproduced" when the paper's number lies inside it, else "above" (ours higher) or "below" (ours
lower), with the gap ours − paper. With one seed there is no interval and no badge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ltbench.report.table import TableResult
from ltbench.stats import t975

SLACK = 0.5  # points added to each side of the 95 % interval
MIN_SEEDS = 2
RULE = ("Badges: reproduced = the paper's number lies in our 95 % t-interval of the mean over seeds "
        f"(mean ± t(0.975, n−1)·sd/√n) widened by ±{SLACK} point; above / below = outside it (ours higher / "
        f"lower, gap = ours − paper); no badge with fewer than {MIN_SEEDS} seeds.")


@dataclass(frozen=True)
class Badge:
    verdict: str  # reproduced / above / below
    gap: float  # ours − paper
    low: float  # the widened interval
    high: float

    def text(self) -> str:
        return self.verdict if self.verdict == "reproduced" else f"{self.verdict} {self.gap:+.2f}"


def badge(mean: float | None, std: float | None, n: int, paper: float | None) -> Badge | None:
    """The badge of one cell (None: no paper number, fewer than MIN_SEEDS seeds, or no spread)."""
    if mean is None or paper is None or std is None or n < MIN_SEEDS or math.isnan(std):
        return None
    half = t975(n - 1) * std / math.sqrt(n) + SLACK
    low, high = mean - half, mean + half
    gap = round(mean - paper, 10) + 0.0
    verdict = "reproduced" if low <= paper <= high else ("above" if mean > paper else "below")
    return Badge(verdict, gap, low, high)


def apply(table: TableResult) -> int:
    """Set `cell.badge` (text) on every cell of a TableResult with a paper number; add the rule to
    the caption. Returns the number of badges set."""
    count = 0
    for cell in table.cells.values():
        b = badge(cell.mean, cell.std, cell.n, cell.paper if cell.paper_note is None else None)
        cell.badge = b.text() if b else None
        count += b is not None
    table.caption = f"{table.caption} {RULE}"
    return count
