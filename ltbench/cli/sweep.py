"""`ltbench sweep`: the command, and the console view of a sweep (`ltbench.sweep` runs it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from ltbench.cli.app import RESULTS_HELP, console, default_results, err_console, load_grid, say, say_err, user_errors

if TYPE_CHECKING:  # pragma: no cover
    from rich.progress import Progress, TaskID

    from ltbench.grid import Grid
    from ltbench.launch import Job, JobResult, PlannedRun
    from ltbench.launchers import Launcher, LaunchOptions
    from ltbench.sweep import DryRun, Sweep, SweepOutcome, Tally

STATE_STYLE = {"done": "green", "running": "cyan", "submitted": "blue", "interrupted": "yellow", "failed": "red",
               "damaged": "red", "missing": "dim"}


def sweep(
    file: str = typer.Argument(..., help="Experiment file (experiments/*.yaml) or a shipped one's name."),
    launcher: str = typer.Option("local", "--launcher", help="local (a pool of subprocesses), submitit (one "
                                 "SLURM job array; pip install 'ltbench[slurm]') or print (one shell command per "
                                 "run, for any other scheduler; runs nothing). See docs/cluster.md."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Runs at a time (local)."),
    gpus: str | None = typer.Option(None, "--gpus", help="GPU ids for the worker slots, e.g. 0,1 "
                                    "(local; default: every visible GPU; none on CPU)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (run id, state, time estimate) and stop."),
    bench: list[Path] = typer.Option([], "--bench", help="`ltbench bench --json` file(s) for --dry-run's time "
                                     "estimates (default: every *.json in <results dir>/../bench)."),
    methods: str | None = typer.Option(None, "--methods", help="Only these methods of the grid (a,b,...)."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help=RESULTS_HELP),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Default: $LTBENCH_DATA or ~/.cache."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    cluster: str = typer.Option("slurm", "--cluster", help="submitit: slurm, or local (submitit's local "
                                "executor on this machine, every run at once; waits for them)."),
    partition: str | None = typer.Option(None, "--partition", help="submitit: SLURM partition."),
    gpus_per_run: int | None = typer.Option(None, "--gpus-per-run", help="submitit/print: GPUs per run on one "
                                            "node; > 1 trains the run with torchrun (default 1; 0 with --device cpu)."),
    cpus_per_run: int | None = typer.Option(None, "--cpus-per-run", help="submitit: CPUs per run "
                                            "(default: the cluster's)."),
    timeout_min: int | None = typer.Option(None, "--timeout-min", help="submitit: time limit per job in minutes; "
                                           "a run that needs longer is requeued and resumes (default 1440)."),
    array_parallelism: int | None = typer.Option(None, "--array-parallelism", help="submitit: array tasks "
                                                 "running at once (default: submitit's, 256)."),
    slurm_arg: list[str] = typer.Option([], "--slurm-arg", help="submitit: an extra sbatch option key=value "
                                        "(repeatable), e.g. account=proj, qos=high, mem=32G, constraint=a100."),
    wait: bool = typer.Option(False, "--wait", help="submitit: wait for the array and report like a local sweep."),
    resubmit: bool = typer.Option(False, "--resubmit", help="Also submit runs recorded as submitted (their job "
                                  "was cancelled or lost)."),
    retry_diverged: bool = typer.Option(False, "--retry-diverged", help="Also rerun runs that diverged, from "
                                        "epoch 0 (the failed attempt is kept in the run's attempt-<k>/); by "
                                        "default they are reported and skipped: the same spec diverges again."),
) -> None:
    """Run every run of a grid that is not done yet (resuming interrupted ones); N at a time, or on a cluster."""
    with user_errors():
        from ltbench.launchers import LaunchOptions, check_options

        options = LaunchOptions(jobs=jobs, gpus=gpus, partition=partition, gpus_per_run=gpus_per_run,
                                cpus_per_run=cpus_per_run, timeout_min=timeout_min,
                                array_parallelism=array_parallelism, slurm_args=tuple(slurm_arg), wait=wait,
                                cluster=cluster)
        check_options(launcher, options, dry_run)
        grid = load_grid(file, methods)
        outcome = run_sweep(grid, results_dir or default_results(), options, launcher=launcher, data_dir=data_dir,
                            device=device, dry_run=dry_run, resubmit=resubmit, bench=list(bench) or None,
                            retry_diverged=retry_diverged)
    if not outcome.ok and not dry_run:
        raise typer.Exit(1)


def run_sweep(grid: Grid, results_dir: Path, options: LaunchOptions | None = None, **kwargs: Any) -> SweepOutcome:
    """`ltbench.sweep.sweep_grid` shown on the console; Ctrl-C ends the command with exit code 130."""
    from ltbench.sweep import SweepInterrupted, sweep_grid

    try:
        return sweep_grid(grid, results_dir, options, observer=SweepView(), **kwargs)
    except SweepInterrupted as stop:
        say_err("stopped waiting: submitted jobs go on (see `ltbench status`)" if stop.detached else
                "interrupted: the workers were stopped; run the sweep again to resume them")
        raise typer.Exit(130) from None


def counts(states: Iterable[str]) -> str:
    order = ("done", "running", "submitted", "interrupted", "failed", "damaged", "missing")
    tally = {s: 0 for s in order}
    for s in states:
        tally[s] = tally.get(s, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in tally.items() if v or k in ("done", "missing"))


def _describe(tally: Tally) -> str:
    busy = f", {tally.elsewhere} trained by another process" if tally.elsewhere else ""
    return f"sweep: {tally.done} done, {tally.failed} failed, {tally.running} running{busy}"


class SweepView:
    """Prints a sweep as it goes (`ltbench.sweep.SweepObserver`); with a terminal, a progress bar."""

    def __init__(self) -> None:
        self.say: Callable[[str], None] = say
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def planned(self, sweep: Sweep) -> None:
        if sweep.launcher.stdout_is_output:  # e.g. printed commands: keep stdout for them
            self.say = say_err
        planned = sweep.planned
        self.say(f"{sweep.grid.path}: {len(planned)} runs ({counts(p.state for p in planned)}); "
                 f"results in {sweep.results_dir}")

    def dry_run(self, sweep: Sweep, preview: DryRun) -> None:
        planned, todo = sweep.planned, sweep.todo
        out = err_console if sweep.launcher.stdout_is_output else console
        out.print(plan_table(planned, preview.estimates, preview.actual))
        self.say(f"dry run: would run {len(todo)}, skip {len(planned) - len(todo)}")
        self._estimate(todo, preview, sweep.results_dir)
        self.held(sweep)

    def held(self, sweep: Sweep) -> None:
        held = sweep.held
        if not held:
            return
        from ltbench.launch import failure_reason

        err_console.print(f"[yellow]not rerun: {len(held)} run(s) diverged before[/yellow] (the same spec "
                          f"diverges again; `ltbench sweep {sweep.grid.path} --retry-diverged` reruns them from "
                          "scratch):", highlight=False, soft_wrap=True)
        for p in held:
            err_console.print(f"  {p.run_id}: {failure_reason(p.run_dir) or 'diverged'}", highlight=False,
                              soft_wrap=True, markup=False)

    def nothing_to_run(self, sweep: Sweep) -> None:
        planned = sweep.planned
        pending = sum(p.state == "submitted" for p in planned)
        held = f" or diverged ({len(sweep.held)}, listed above)" if sweep.held else ""
        self.say("nothing to run: every run is done" + (" or running" if pending < len(planned) else "") + held
                 + (f" or submitted ({pending}; --resubmit submits them again if their jobs are gone)"
                    if pending else ""))

    @contextmanager
    def running(self, sweep: Sweep, launcher: Launcher, jobs: Sequence[Job]) -> Iterator[None]:
        line = launcher.start_line(len(jobs))
        if line is not None:
            self.say(line)
        if not (console.is_terminal and launcher.waits):
            yield
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console)
        self.progress, self.task = progress, progress.add_task("sweep", total=len(jobs))
        with progress:
            yield

    def job(self, event: str, run: PlannedRun, res: JobResult, tally: Tally) -> None:
        live = self.progress is not None
        name = run.run_id
        if event == "submitted":
            if not live:
                say(f"  submitted {name}  job {res.job_id}")
        elif event == "started":
            if not live:
                gpu = "" if res.gpu is None else f" on GPU {res.gpu}"
                say(f"  start {name} ({run.action}){gpu}")
        elif event == "busy":
            say(f"  [cyan]busy[/cyan]   {name}  (being trained by another process)")
        elif event == "done":
            say(f"  [green]done[/green]   {name}  {res.seconds:.1f} s")
        else:
            console.print(f"  [red]failed[/red] {name}  exit {res.returncode}  log: {res.job.log_path}",
                          highlight=False, soft_wrap=True)
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=_describe(tally), completed=tally.ended)

    def finished(self, sweep: Sweep, outcome: SweepOutcome) -> None:
        if outcome.left_line is not None:
            self.say(outcome.left_line)
            return
        say(f"{_describe(outcome.tally).replace(', 0 running', '')} in {outcome.seconds:.0f} s")
        if outcome.held:
            say_err(f"{len(outcome.held)} diverged run(s) were not rerun (listed at the start)")
        _print_failures(outcome)

    def _estimate(self, todo: Sequence[PlannedRun], preview: DryRun, results_dir: Path) -> None:
        from ltbench.estimate import default_bench_dir, describe, fmt_duration

        if not preview.benches:
            self.say(f"no time estimate: no bench files in {default_bench_dir(results_dir)} (save one on the "
                     "target device with `ltbench bench --device cuda --json > results/bench/NAME.json`, or pass "
                     "--bench FILE)")
            return
        known = [preview.estimates[p.run_id].seconds for p in todo if preview.estimates[p.run_id].seconds is not None]
        total = sum(known)
        missing = len(todo) - len(known)
        g = max(1, preview.gpus_per_run or 1)
        # the bench timed one device: G GPUs per run shorten a run (at best G-fold), not its GPU-hours
        multi = f"; on {g} GPUs per run each run takes at best 1/{g} of its estimate" if g > 1 else ""
        self.say(f"estimate (training steps only, on the bench's device; from {describe(preview.benches)}): "
                 f"{fmt_duration(total)} = {total / 3600:.1f} device-hours (GPU-hours for a one-GPU bench) for "
                 f"{len(known)} run(s) to do{multi}" + (f"; {missing} run(s) without an estimate" if missing else ""))


def _print_failures(outcome: SweepOutcome) -> None:
    from ltbench.launch import failure_reason, log_tail

    if not outcome.failed:
        return
    err_console.print(f"[red]{len(outcome.failed)} run(s) failed:[/red]", highlight=False, soft_wrap=True)
    for p, res in outcome.failed:
        reason = failure_reason(p.run_dir) or f"exit code {res.returncode}"
        err_console.print(f"  {p.run_id}: {reason}", highlight=False, soft_wrap=True)
        for line in log_tail(res.job.log_path, 5):
            err_console.print(f"      {line}", highlight=False, soft_wrap=True, markup=False)


def plan_table(planned: Sequence[PlannedRun], estimates: dict[str, Any] | None = None,
               actual: dict[str, Any] | None = None) -> Table:
    from ltbench.estimate import fmt_duration
    from ltbench.report.labels import fmt_value

    varied = any(p.run.vary for p in planned)
    table = Table("#", title="plan")
    table.add_column("run id", overflow="fold")
    extra = ["estimate", "from"] if estimates is not None else []
    shown_actual = actual is not None and any(v is not None for v in actual.values())  # once runs exist
    extra += ["actual"] if shown_actual else []
    for name in (["varied"] if varied else []) + ["state", "action"] + extra:
        table.add_column(name, overflow="fold")
    for i, p in enumerate(planned, 1):
        style = STATE_STYLE.get(p.state, "")
        vary = [", ".join(f"{k}={fmt_value(v)}" for k, v in p.run.vary.items())] if varied else []
        state = f"[{style}]{p.state}[/{style}]" if style else p.state
        est = []
        if estimates is not None:
            e = estimates[p.run_id]
            est = [fmt_duration(e.seconds), e.basis]
        if shown_actual and actual is not None:  # final.json wall_time_s of a finished run, beside its estimate
            est.append(fmt_duration(actual[p.run_id]) if actual.get(p.run_id) is not None else "")
        table.add_row(str(i), p.run_id, *vary, state, p.action, *est)
    return table
