"""`ltbench analyze RUN|GRID`: post-hoc analyses of finished runs (ltbench.analysis), no retraining."""

from __future__ import annotations

from pathlib import Path

import typer

from ltbench.cli import _default_results, app, console, user_errors
from ltbench.errors import LtbenchError

DEFAULT_OUT = Path("results/reports")


def _run_dirs(target: str, results_dir: Path) -> tuple[str, list[Path]]:
    """(report name, finished run directories) for a run directory or an experiment file / named grid."""
    path = Path(target)
    if path.is_dir():
        if (path / "final.json").exists():
            return f"{path.parent.parent.name}-{path.parent.name}-{path.name}", [path]
        raise LtbenchError(f"{path} is not a finished run directory (no final.json)")
    from ltbench.cli_grid import _load_grid, _warn
    from ltbench.report import collect, grid_run_ids, select_runs

    grid = _load_grid(target)
    frame = select_runs(collect(results_dir, warn=_warn), grid, warn=_warn, expected_ids=grid_run_ids(grid))
    if frame.empty:
        raise LtbenchError(f"no finished runs of {grid.path} under {results_dir}")
    return grid.name, [Path(d) for d in frame["run_dir"]]


@app.command()
def analyze(
    target: str = typer.Argument(..., help="A run directory, or an experiment file / named grid (its runs)."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help="Default: $LTBENCH_RESULTS or results/runs."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="Folder for <name>-analysis.{md,tex}, CSVs and figures."),
) -> None:
    """Shifted test priors, post-hoc logit adjustment, calibration (ECE) and confusion of finished runs."""
    with user_errors():
        from ltbench.analysis.output import build, markdown, write
        from ltbench.analysis.run import analyze_run

        name, dirs = _run_dirs(target, results_dir or _default_results())
        rep = build(name, [analyze_run(d) for d in dirs])
        console.print(markdown(rep), highlight=False, soft_wrap=True, markup=False)
        for path in write(rep, out):
            console.print(f"wrote {path}", highlight=False, soft_wrap=True)
