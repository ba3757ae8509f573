"""Commands that study finished runs: compare (paired differences), analyze (post-hoc analyses) and
plot per-class."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ltbench.cli.app import (
    DEFAULT_REPORTS,
    RESULTS_HELP,
    console,
    default_results,
    load_grid,
    require_results,
    say_err,
    user_errors,
    warn,
)
from ltbench.errors import LtbenchError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ltbench.compare import Arm

# ----- paired comparisons ------------------------------------------------------------------------

def compare(
    file: str = typer.Argument(..., help="Experiment file: its runs are compared (as `table` selects them)."),
    a: list[str] = typer.Option(..., "--a", help="Arm A: a method or method|key=value "
                                "('drw+smcl|mask_locator=center'); repeat --a/--b for several pairs "
                                "(one Holm family)."),
    b: list[str] = typer.Option(..., "--b", help="Arm B, the same form (one per --a)."),
    metric: list[str] = typer.Option(["top1"], "--metric", "-m",
                                     help="top1, many, medium, few, seen, unseen, bg_gap_tail, or the old "
                                          "head/tail-confounded gap / few_gap (repeatable)."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help=RESULTS_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
    markdown: bool = typer.Option(False, "--md", help="Print a Markdown table (for docs)."),
    allow_mismatch: bool = typer.Option(False, "--allow-protocol-mismatch",
                                        help="Compare arms whose protocols differ beyond the compared keys "
                                             "(the differences are printed with the result)."),
    decompose: bool = typer.Option(False, "--decompose", help="Also print each arm's and each paired "
                                   "difference's variance split into data seed / class order / training seed."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a forest plot of the differences (PNG/PDF)."),
) -> None:
    """A − B per seed (same seed, same subset), its mean and 95 % t-interval, and Holm-adjusted verdicts
    over every comparison of the call."""
    with user_errors():
        import pandas as pd

        from ltbench.cells import grid_runs
        from ltbench.compare import Arm, holm_family, paired, protocol_mismatches

        if len(a) != len(b):
            raise LtbenchError(f"give one --b per --a (got {len(a)} --a and {len(b)} --b)")
        grid = load_grid(file)
        pairs = [(Arm.parse(x), Arm.parse(y)) for x, y in zip(a, b, strict=True)]
        frame = grid_runs(grid, require_results(results_dir or default_results()), warn)
        if frame.empty:
            raise LtbenchError(f"no finished runs of {grid.path} under {results_dir or default_results()}")
        mismatch = {f"{x} vs {y}": protocol_mismatches(frame, x, y) for x, y in pairs}
        mismatch = {k: v for k, v in mismatch.items() if v}
        if mismatch and not allow_mismatch:
            k, v = next(iter(mismatch.items()))
            raise LtbenchError(f"{k}: the arms' protocols differ beyond the compared keys ({'; '.join(v)}); "
                               "equalise them (e.g. --set budget=steps) or pass --allow-protocol-mismatch")
        parts = [paired(frame, x, y, m) for x, y in pairs for m in metric]
        result = pd.concat([p for p in parts if not p.empty] or [pd.DataFrame()], ignore_index=True)
        if result.empty:
            names = " / ".join(f"{x} and {y}" for x, y in pairs)
            raise LtbenchError(f"no setting has finished runs of both {names} with a common seed")
        result = holm_family(result)
        decomp = _decomposition(frame, pairs, metric) if decompose else None
        if plot is not None:
            from ltbench.report.figures import plot_forest

            for path in plot_forest(result, plot, title=f"{grid.path.name}: paired differences A − B",
                                    flagged=list(mismatch)):
                say_err(f"wrote {path}")
        if json_out:  # a list of comparisons; with --decompose, {"comparisons": [...], "decomposition": [...]}
            import json

            family = int(result.attrs["family"])
            result = result.drop(columns=["units"]).assign(
                holm_family=family, protocol_mismatch=[mismatch.get(f"{r.a_arm} vs {r.b_arm}", [])
                                                       for r in result.itertuples()])
            rows = json.loads(result.to_json(orient="records"))
            out = rows if decomp is None else {"comparisons": rows,
                                               "decomposition": json.loads(decomp.to_json(orient="records"))}
            typer.echo(json.dumps(out, indent=1))
            return
        _print_comparison(result, pairs, mismatch, markdown)
        if decomp is not None:
            _print_decomposition(decomp, markdown)


def _decomposition(frame: pd.DataFrame, pairs: list[tuple[Arm, Arm]], metrics: list[str]) -> pd.DataFrame:
    from ltbench.compare import decomposition

    return decomposition(frame, pairs, metrics)


def _compare_header(result: pd.DataFrame, mismatch: dict[str, list[str]]) -> list[str]:
    family = int(result.attrs["family"])
    if family:
        lines = [f"Holm: verdicts adjusted over the {family} comparison(s) of this call (family-wise α = 0.05, "
                 "paired t-tests); the 95 % t-intervals beside them are per comparison, not adjusted."]
    else:
        lines = ["Holm: no comparison of this call has two or more seeds, so none is tested (no interval, "
                 "no verdict)."]
    for pair, fields in mismatch.items():
        lines.append(f"PROTOCOL DIFFERS ({pair}): {'; '.join(fields)}: the difference mixes the method "
                     "with these.")
    return lines


def _comparison_row(r: Any, several: bool) -> tuple[str, ...]:
    """One printed row of a comparison (r: a row of `compare.paired`'s frame, as itertuples gives it)."""
    import pandas as pd

    def fmt(value: float | None, spec: str) -> str:
        return "" if value is None or pd.isna(value) else format(value, spec)

    hw = fmt(r.half_width, ".2f")
    return ((f"{r.a_arm} − {r.b_arm}",) if several else ()) + (
        r.setting, r.metric, ",".join(map(str, r.seeds)), f"{r.a:.2f}", f"{r.b:.2f}",
        " ".join(f"{d:+.2f}" for d in r.diffs), f"{r.diff:+.2f}{' ± ' + hw if hw else ''}", r.verdict,
        fmt(r.p, ".3f"), fmt(r.p_holm, ".3f"), r.holm)


def _print_comparison(result: pd.DataFrame, pairs: list[tuple[Arm, Arm]], mismatch: dict[str, list[str]],
                      markdown: bool) -> None:
    import pandas as pd
    from rich.table import Table

    several = len(pairs) > 1
    cols = (("A − B",) if several else ()) + (
        "setting", "metric", "seeds", "A", "B", "A − B per seed", "mean A − B (95 % CI)", "verdict", "p",
        "Holm p", "Holm verdict")
    rows = [_comparison_row(r, several) for r in result.itertuples()]
    header = _compare_header(result, mismatch)
    if markdown:
        if not several:
            typer.echo(f"A = `{pairs[0][0]}`, B = `{pairs[0][1]}`\n")
        typer.echo("\n".join(header) + "\n")
        typer.echo(pd.DataFrame(rows, columns=cols).to_markdown(index=False, disable_numparse=True))
        return
    title = (f"A = {pairs[0][0]}   B = {pairs[0][1]}   " if not several else "") + \
        "(A − B per seed; 95 % t-interval over seeds; Holm over the call)"
    table = Table(title=title, caption="\n".join(header), caption_justify="left")
    for col in cols:
        table.add_column(col, justify="left" if col in ("A − B", "setting", "metric", "verdict", "Holm verdict")
                         else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _print_decomposition(decomp: pd.DataFrame, markdown: bool) -> None:
    import pandas as pd

    text = ("Variance decomposition (method of moments, random effects: data seed x class order crossed, "
            "training seeds within; negative estimates set to 0; see docs/statistics.md)")
    if decomp.empty:
        typer.echo(f"\n{text}: nothing to decompose (fewer than 2 runs per arm)")
        return
    shown = pd.DataFrame({"subject": decomp["subject"], "setting": decomp["setting"], "metric": decomp["metric"],
                          "component": decomp["component"], "levels": decomp["levels"],
                          "variance": decomp["variance"].map(lambda v: f"{v:.3f}"),
                          "sd": decomp["sd"].map(lambda v: f"{v:.2f}"),
                          "share": decomp["share"].map(lambda v: "—" if v is None or pd.isna(v) else f"{v:.0%}")})
    typer.echo(f"\n{text}\n")
    if markdown:
        typer.echo(shown.to_markdown(index=False, disable_numparse=True))
    else:
        typer.echo(shown.to_string(index=False))


# ----- analyze -----------------------------------------------------------------------------------

def _run_dirs(target: str, results_dir: Path) -> tuple[str, list[Path]]:
    """(report name, finished run directories) for a run directory or an experiment file / named grid."""
    from ltbench.rundir import RunDir

    path = Path(target)
    if path.is_dir():
        if RunDir(path).has_final():
            return f"{path.parent.parent.name}-{path.parent.name}-{path.name}", [path]
        raise LtbenchError(f"{path} is not a finished run directory (no final.json)")
    from ltbench.cells import grid_runs

    grid = load_grid(target)
    frame = grid_runs(grid, results_dir, warn)
    if frame.empty:
        raise LtbenchError(f"no finished runs of {grid.path} under {results_dir}")
    return grid.name, [Path(d) for d in frame["run_dir"]]


def analyze(
    target: str = typer.Argument(..., help="A run directory, or an experiment file / named grid (its runs)."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help="Default: $LTBENCH_RESULTS or results/runs."),
    out: Path = typer.Option(DEFAULT_REPORTS, "--out", help="Folder for <name>-analysis.{md,tex}, CSVs and figures."),
) -> None:
    """Shifted test priors, post-hoc logit adjustment, calibration (ECE) and confusion of finished runs."""
    with user_errors():
        from ltbench.analysis.output import build, markdown, write
        from ltbench.analysis.run import analyze_run

        name, dirs = _run_dirs(target, results_dir or default_results())
        rep = build(name, [analyze_run(d) for d in dirs])
        console.print(markdown(rep), highlight=False, soft_wrap=True, markup=False)
        for path in write(rep, out):
            console.print(f"wrote {path}", highlight=False, soft_wrap=True)


# ----- plots -------------------------------------------------------------------------------------

def plot_per_class(
    run_dirs: list[Path] | None = typer.Argument(None, help="Run directories (default: all, or --grid's)."),
    grid_file: str | None = typer.Option(None, "--grid", help="Plot this experiment file's runs."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help=RESULTS_HELP),
    out: Path | None = typer.Option(None, "--out", help="PNG (default: results/reports/...)."),
) -> None:
    """Per-class test accuracy vs training images (log x), one line per method (mean over seeds)."""
    with user_errors():
        from ltbench.cells import grid_runs
        from ltbench.report.collect import collect
        from ltbench.report.figures import plot_per_class as draw
        from ltbench.rundir import RunDir

        results_dir = require_results(results_dir or default_results())
        if run_dirs and len(run_dirs) == 1 and not grid_file and run_dirs[0].suffix in (".yaml", ".yml"):
            grid_file, run_dirs = str(run_dirs[0]), None  # `plot per-class FILE.yaml` means --grid FILE.yaml
        if run_dirs and grid_file:
            raise LtbenchError("give run directories or --grid, not both")
        name = "per-class"
        if run_dirs:
            missing = [d for d in run_dirs if not RunDir(d).has_final()]
            if missing:
                raise LtbenchError(f"{missing[0]} is not a finished run directory (no final.json)")
            frame = collect(results_dir, warn=warn, run_dirs=run_dirs, include_lists=True)
        elif grid_file:
            grid = load_grid(grid_file)
            frame = grid_runs(grid, results_dir, warn, include_lists=True)
            name = f"{grid.name}-per-class"
        else:
            frame = collect(results_dir, warn=warn, include_lists=True)
        if frame.empty:
            raise LtbenchError(f"no finished runs to plot under {results_dir}")
        out = out or DEFAULT_REPORTS / f"{name}.png"
        paths, data = draw(frame, out, title="per-class accuracy vs training images (dashed: 20 / 100)")
        console.print(f"wrote {paths[0]} ({len(frame)} run(s), {data['method'].nunique()} method(s))",
                      highlight=False, soft_wrap=True)
