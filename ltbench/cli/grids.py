"""Grid commands that read or fill a results folder: status, table, ablate and demo."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from ltbench.cli.app import (
    DEFAULT_REPORTS,
    RESULTS_HELP,
    console,
    default_results,
    load_grid,
    require_results,
    say,
    user_errors,
    warn,
)
from ltbench.cli.sweep import STATE_STYLE, counts, run_sweep
from ltbench.errors import LtbenchError

if TYPE_CHECKING:  # pragma: no cover
    from ltbench.grid import Grid
    from ltbench.report.table import TableResult

FORMATS = ("md", "tex", "csv")


# ----- status ------------------------------------------------------------------------------------

def status(
    file: str | None = typer.Argument(None, help="Experiment file; default: every run in the results dir."),
    methods: str | None = typer.Option(None, "--methods", help="Only these methods of the grid (a,b,...)."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help=RESULTS_HELP),
    tail: int = typer.Option(5, "--tail", help="Log lines shown per failed run."),
) -> None:
    """done / running / submitted / interrupted / failed / damaged / missing per run, with the scheduler's job
    id where one exists and the reason of each failure."""
    with user_errors():
        from ltbench.launch import failure_reason, log_tail, read_submission, state_of
        from ltbench.report.collect import find_run_dirs
        from ltbench.rundir import RunDir

        results_dir = results_dir or default_results()
        if file is not None:
            from ltbench.grid import expand

            grid = load_grid(file, methods)
            entries = [(r.run_id, results_dir / r.run_id) for r in expand(grid)]
            title = f"{grid.path} ({len(entries)} runs)"
            require_results(results_dir)  # after the grid: its own errors are the more specific ones
        else:
            if methods:
                raise LtbenchError("--methods needs an experiment file")
            dirs = find_run_dirs(require_results(results_dir))
            entries = [(d.relative_to(results_dir).as_posix(), d) for d in dirs]
            title = f"runs under {results_dir}"
            if not entries:
                say(f"no runs under {results_dir}")
                return
        rows, states, failures = [], [], []
        for run_id, run_dir in entries:
            st = state_of(run_dir)
            states.append(st)
            detail = ""
            if st == "done":
                detail = _done_detail(run_dir)
            elif st in ("failed", "damaged"):
                if st == "damaged":  # load_final's warning, naming the record, never its numbers
                    from ltbench.rundir import final_damage

                    detail = final_damage(run_dir) or "final.json is damaged"
                else:
                    detail = failure_reason(run_dir) or ""
                failures.append((run_id, run_dir, detail))
            elif st in ("interrupted", "running"):
                detail = _progress_detail(run_dir)
            elif st == "submitted":  # queued, or requeued after a pre-emption (then it has epochs already)
                detail = _progress_detail(run_dir) if RunDir(run_dir).metrics_path.exists() else "queued"
            job = (read_submission(run_dir) or {}).get("job_id")
            style = STATE_STYLE.get(st, "")
            rows.append((run_id, f"[{style}]{st}[/{style}]", "" if job is None else str(job), detail))
        with_jobs = any(r[2] for r in rows)
        table = Table(title=title)
        table.add_column("run id", overflow="fold")
        table.add_column("state")
        if with_jobs:
            table.add_column("job")
        table.add_column("detail")
        for run_id, st, job, detail in rows:
            table.add_row(run_id, st, *([job] if with_jobs else []), detail)
        console.print(table)
        console.print(counts(states) + f" (of {len(entries)})", highlight=False, soft_wrap=True)
        for run_id, run_dir, detail in failures:
            say(f"[red]{run_id}[/red]: {detail or 'no reason recorded'}")
            for line in log_tail(run_dir / "log.txt", tail):
                console.print(f"    {line}", highlight=False, soft_wrap=True, markup=False)


def _done_detail(run_dir: Path) -> str:
    from ltbench.rundir import load_final

    try:
        final = load_final(run_dir) or {}
    except ValueError:
        return ""
    top1 = final.get("top1")
    return "" if top1 is None else f"top1 {top1:.2f}"


def _progress_detail(run_dir: Path) -> str:
    from ltbench.rundir import RunDir

    rows = RunDir(run_dir).metrics()
    try:
        epochs = RunDir(run_dir).read_spec()["train"]["epochs"]
    except (OSError, ValueError, KeyError, TypeError):
        epochs = "?"
    return f"{len(rows)}/{epochs} epochs" + ("" if rows else " (not started, or running)")


# ----- tables ------------------------------------------------------------------------------------

def _check_formats(formats: list[str]) -> list[str]:
    formats = formats or list(FORMATS)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise LtbenchError(f"unknown --format {bad[0]!r}; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(formats))


def _check_select(select: str) -> None:
    if select not in ("last", "best", "val"):
        raise LtbenchError(f"--select must be last, best or val, got {select!r}")


def _write_outputs(t: TableResult, out: Path, formats: list[str], layout: str = "wide") -> None:
    from ltbench.report.render import write_table

    paths = write_table(t, out, [f for f in formats if not (layout == "compact" and f == "md")])
    if layout == "compact" and "md" in formats:  # the readable layout (ltbench.report.compact)
        from ltbench.files import atomic_write_bytes
        from ltbench.report.compact import render_compact_markdown

        paths.append(out / f"{t.name}.md")
        atomic_write_bytes(paths[-1], render_compact_markdown(t).encode("utf-8"))
    for path in paths:
        say(f"wrote {path}")


def _table_extras(t: TableResult, badges: bool, cost: bool) -> None:
    """Opt-in badges and cost (ltbench.report.badges, ltbench.report.costs); each adds its rule to the caption."""
    if badges:
        from ltbench.report.badges import apply as apply_badges

        apply_badges(t)
    if cost:
        from ltbench.report.costs import apply as apply_costs

        apply_costs(t)


def table(
    which: str = typer.Argument("table1", help="table1, table2, or an experiment file (its grid's runs)."),
    format_: list[str] = typer.Option([], "--format", "-f", help="md, tex or csv (repeatable; default all)."),
    select: str = typer.Option("last", "--select", help="last (headline), best (oracle, test-selected) or val "
                                                         "(best validation epoch; val_select runs)."),
    show: bool = typer.Option(False, "--show", help="Print the table in the terminal."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help=RESULTS_HELP),
    out: Path = typer.Option(DEFAULT_REPORTS, "--out", help="Folder for <name>.{md,tex,csv}."),
    badges: bool = typer.Option(False, "--badges", help="Mark cells reproduced / above / below the paper."),
    cost: bool = typer.Option(False, "--cost", help="Add wall time per run and device-hours per cell."),
    layout: str = typer.Option("wide", "--layout", help="wide (ours | paper | Δ columns) or compact (one "
                                                        "column per setting; Markdown)."),
) -> None:
    """Aggregate seeds (mean ± std, n) into a paper table next to the reported numbers."""
    with user_errors():
        from ltbench.cells import grid_records
        from ltbench.report.grid_runs import grid_failures

        formats = _check_formats(format_)
        _check_select(select)
        if layout not in ("wide", "compact"):
            raise LtbenchError(f"--layout must be wide or compact, got {layout!r}")
        grid = load_grid(which)
        results_dir = require_results(results_dir or default_results())
        records = grid_records(grid, results_dir, warn)  # expanding a grid builds every spec: once per command
        t = records.table(warn, select=select)
        _table_extras(t, badges, cost)
        t.failed = grid_failures(grid, results_dir, records.expected_ids)
        for run_id, reason in t.failed:
            warn(f"failed run (not in the table's numbers): {run_id}: {reason}")
        say(f"{t.name}: {len(t.frame)} run(s) of {grid.path} found")
        _write_outputs(t, out, formats, layout)
        if show:
            console.print(rich_table_for(t))


def rich_table_for(t: TableResult) -> Table:
    from ltbench.report.render import rich_table

    return rich_table(t)


# ----- ablations ---------------------------------------------------------------------------------

def _ablation_grid(which: str, quick: bool) -> Grid:
    from ltbench.grid import NAMED_GRIDS, experiments_dir
    from ltbench.grid import load_grid as read_grid

    if which in NAMED_GRIDS:
        name = ("quick-" if quick else "") + NAMED_GRIDS[which]
        grid = read_grid(experiments_dir() / f"{name}.yaml")
    else:
        if quick:
            raise LtbenchError("--quick selects the quick-* grid of masking or contrastive; "
                               "for a FILE, point at the quick file itself")
        grid = load_grid(which)
    if not grid.vary:
        raise LtbenchError(f"{grid.path} has no `vary` key: there is nothing to ablate")
    if grid.table is None or not grid.table.startswith("ablate"):
        grid = dataclasses.replace(grid, table="ablate")
    return grid


def ablate(
    which: str = typer.Argument(..., help="masking, contrastive, or an experiment file with a `vary` key."),
    quick: bool = typer.Option(False, "--quick", help="The CPU-scale grid (experiments/quick-ablate-*)."),
    collect_only: bool = typer.Option(False, "--collect-only", help="Run nothing; tabulate what exists."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Runs at a time."),
    select: str = typer.Option("last", "--select", help="last (headline) or best (oracle, test-selected)."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help=RESULTS_HELP),
    data_dir: Path | None = typer.Option(None, "--data-dir"),
    device: str = typer.Option("auto", "--device"),
    out: Path = typer.Option(DEFAULT_REPORTS, "--out", help="Folder for the table and the figure."),
    show: bool = typer.Option(True, "--show/--no-show", help="Print the table in the terminal."),
) -> None:
    """Run an ablation grid, then write its table (md/tex/csv) and figure (png/pdf)."""
    with user_errors():
        from ltbench.cells import grid_records
        from ltbench.launchers import LaunchOptions
        from ltbench.report.figures import plot_ablation
        from ltbench.sweep import SweepOutcome

        _check_select(select)
        grid = _ablation_grid(which, quick)
        results_dir = results_dir or default_results()
        if collect_only:
            require_results(results_dir)
        outcome = SweepOutcome()
        if not collect_only:
            outcome = run_sweep(grid, results_dir, LaunchOptions(jobs=jobs), data_dir=data_dir, device=device)
        name = grid.name if "ablate" in grid.name else f"ablate-{grid.name}"
        t = grid_records(grid, results_dir, warn).table(warn, select=select, name=name)
        say(f"{name}: {len(t.frame)} run(s) of {grid.path} found")
        _write_outputs(t, out, list(FORMATS))
        paths, _ = plot_ablation(t, out / name)
        for path in paths:
            say(f"wrote {path}")
        if show:
            console.print(rich_table_for(t))
    if not outcome.ok:
        raise typer.Exit(1)


# ----- demo --------------------------------------------------------------------------------------

def demo(
    jobs: int = typer.Option(1, "--jobs", "-j", help="Runs at a time."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help=RESULTS_HELP),
    data_dir: Path | None = typer.Option(None, "--data-dir"),
    device: str = typer.Option("auto", "--device"),
    out: Path = typer.Option(DEFAULT_REPORTS, "--out", help="Folder for demo.{md,tex,csv} and the plot."),
) -> None:
    """Train the demo grid (experiments/demo.yaml, CPU-sized), then print its table and per-class plot."""
    with user_errors():
        from ltbench.cells import grid_records
        from ltbench.grid import experiments_dir, registered_methods
        from ltbench.grid import load_grid as read_grid
        from ltbench.launchers import LaunchOptions
        from ltbench.report.figures import plot_per_class as draw

        grid = read_grid(experiments_dir() / "demo.yaml")
        known = set(registered_methods())
        skipped = [m for m in grid.methods if m not in known]
        if skipped:
            say(f"demo: skipping {', '.join(skipped)} (not registered in this install)")
        kept = [m for m in grid.methods if m in known]
        if not kept:
            raise LtbenchError("demo: none of the demo's methods is registered")
        grid = grid.with_methods(kept)
        results_dir = results_dir or default_results()
        outcome = run_sweep(grid, results_dir, LaunchOptions(jobs=jobs), data_dir=data_dir, device=device)
        t = grid_records(grid, results_dir, warn, include_lists=True).table(warn, name="demo")
        _write_outputs(t, out, list(FORMATS))
        console.print(rich_table_for(t))
        if not t.frame.empty:
            paths, _ = draw(t.frame, out / "demo-per-class.png",
                            title="demo: per-class accuracy vs training images (dashed: 20 / 100)")
            say(f"wrote {paths[0]}")
    if not outcome.ok:
        raise typer.Exit(1)
