"""Cost per table cell, from what runs already record.

- wall time per run: final.json `wall_time_s` (training + evaluation time of all sessions, resumes
  included; data loading before the first epoch is not counted);
- device-hours per cell: sum over its runs of wall_time_s x processes (final.json `world_size`,
  1 when absent) / 3600. One process drives one GPU under CUDA, so on GPUs these are GPU-hours; on
  CPU they are process-hours (each process using the threads env.json records);
- the device: env.json `device` / `device_name` where the run directory keeps env.json (the committed
  CPU-study records keep only final/spec.json, so their device reads "not recorded").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ltbench.rundir import RunDir

if TYPE_CHECKING:
    from ltbench.report.table import Row, TableResult

RULE = ("Cost: mean wall time per run (final.json wall_time_s) and device-hours per cell (Σ wall time × "
        "processes / 3600; GPU-hours on CUDA, process-hours on CPU).")


@dataclass(frozen=True)
class CellCost:
    runs: int
    mean_wall_s: float
    device_hours: float

    def text(self) -> str:
        return f"{fmt_minutes(self.mean_wall_s)}/run, {self.device_hours:.2f} dev-h"


def fmt_minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def run_device(run_dir: str | Path) -> str:
    """'cpu', a CUDA device name, or 'not recorded' (no readable env.json; never followed through a link)."""
    env = RunDir(Path(run_dir)).env()
    if env is None:
        return "not recorded"
    device = str(env.get("device", ""))
    if device.startswith("cuda"):
        return str(env.get("device_name") or "cuda")
    return device or "not recorded"


def runs_cost(runs: pd.DataFrame) -> CellCost | None:
    """The cost of some runs (rows of report.collect's frame); None when none records a wall time."""
    if runs.empty or "wall_time_s" not in runs:
        return None
    walls, hours = [], 0.0
    for _, r in runs.iterrows():
        wall = _num(r.get("wall_time_s"))
        if wall is None:
            continue
        world = _num(r.get("world_size")) or 1.0
        walls.append(wall)
        hours += wall * world / 3600.0
    if not walls:
        return None
    return CellCost(len(walls), sum(walls) / len(walls), hours)


def apply(table: TableResult) -> CellCost | None:
    """Set `cell.cost` on every cell of a TableResult with runs; the grid total (each run once)
    and the devices go into the caption. Returns the total."""
    frame = table.frame
    for cell in table.cells.values():
        idx = [i for i in getattr(cell, "frame_index", []) if i in frame.index]
        cell.cost = runs_cost(frame.loc[idx]) if idx else None
    total = runs_cost(frame) if not frame.empty else None
    if total is None:
        table.caption = f"{table.caption} {RULE} No run records a wall time."
        return None
    devices = sorted({run_device(d) for d in frame["run_dir"]}) if "run_dir" in frame else []
    table.caption = (f"{table.caption} {RULE} Grid total: {total.device_hours:.2f} device-hours over "
                     f"{total.runs} run(s), {fmt_minutes(total.mean_wall_s)} per run on average "
                     f"(device: {', '.join(devices) or 'not recorded'}).")
    return total


def row_cost_text(table: TableResult, row: Row) -> str:
    """One table row's cost (its runs over all columns, each once), for the wide layout's cost column."""
    idx = sorted({i for col in table.columns for i in table.cells[(row.key, col.key)].frame_index})
    cost = runs_cost(table.frame.loc[idx]) if idx else None
    return cost.text() if cost else "—"


def actual_wall_s(run_dir: Path) -> float | None:
    """A finished run's recorded wall time (final.json wall_time_s), for `sweep --dry-run` beside the estimate."""
    try:
        final = RunDir(Path(run_dir)).load_final()
    except (ValueError, OSError):
        return None
    return _num(final.get("wall_time_s")) if final else None
