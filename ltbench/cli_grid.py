"""Grid commands: sweep, status, table, ablate, plot, demo (and the hidden worker entry run-spec).

Thin wrappers: grids live in `ltbench.grid`, launching in `ltbench.launch`, tables and figures in
`ltbench.report`. Torch is imported only where a grid is expanded into specs or a run is trained.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.table import Table

from ltbench.cli import (
    _check_writable,
    _default_results,
    _print_final,
    app,
    console,
    err_console,
    user_errors,
)
from ltbench.errors import LtbenchError

plot_app = typer.Typer(no_args_is_help=True, help="Figures from finished runs.")
app.add_typer(plot_app, name="plot")

DEFAULT_REPORTS = Path("results/reports")
RESULTS_HELP = "Default: $LTBENCH_RESULTS or results/runs."
STATE_STYLE = {"done": "green", "running": "cyan", "submitted": "blue", "interrupted": "yellow", "failed": "red",
               "damaged": "red", "missing": "dim"}
FORMATS = ("md", "tex", "csv")


def _say(msg: str) -> None:
    console.print(msg, highlight=False, soft_wrap=True)


def _warn(msg: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {msg}", highlight=False, soft_wrap=True)


def _say_err(msg: str) -> None:  # `--launcher print` keeps stdout for the commands
    err_console.print(msg, highlight=False, soft_wrap=True)


def _split_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise LtbenchError("--methods expects a comma-separated list of method names")
    return names


# ----- the worker: one run from its spec.json ------------------------------------------------------

@app.command("run-spec", hidden=True)
def run_spec(
    spec_path: Path = typer.Argument(..., help="A run directory's spec.json."),
    results_dir: Path | None = typer.Option(None, "--results-dir",
                                            help="Default: three levels above the spec."),
    data_dir: Path | None = typer.Option(None, "--data-dir"),
    device: str = typer.Option("auto", "--device"),
    download: bool = typer.Option(False, "--download"),
) -> None:
    """Train the run whose spec.json is given (what `ltbench sweep` runs in each worker process)."""
    with user_errors():
        from ltbench.config import RunSpec
        from ltbench.locks import EXIT_LOCKED, RunLocked
        from ltbench.results import atomic_write_json, read_json
        from ltbench.train import RuntimeOptions, train

        try:
            spec = RunSpec.from_dict(read_json(spec_path))
        except FileNotFoundError:
            raise LtbenchError(f"{spec_path} does not exist") from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise LtbenchError(f"{spec_path} is not a readable ltbench spec ({exc})") from None
        run_dir = spec_path.resolve().parent
        results_dir = (results_dir or run_dir.parent.parent.parent).resolve()
        if run_dir != results_dir / spec.run_id:
            raise LtbenchError(f"{spec_path} does not belong to {results_dir} (its run id is {spec.run_id})")
        _say(f"run-spec {spec.run_id} (pid {os.getpid()})")
        runtime = RuntimeOptions(results_dir=results_dir, data_dir=data_dir, download=download, device=device,
                                 progress=False)
        try:
            final = train(spec, runtime)
        except RunLocked as exc:  # another sweep is training it: not a failure of this run
            err_console.print(f"busy: {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_LOCKED) from None
        except LtbenchError as exc:  # make the reason visible to `ltbench status`
            # (failures inside training are recorded by the trainer under the run's lock; these came before)
            if not getattr(exc, "failure_recorded", False) and not (run_dir / "final.json").exists() \
                    and not (run_dir / "failed.json").exists() and int(os.environ.get("RANK", "0")) == 0:
                atomic_write_json(run_dir / "failed.json", {"reason": str(exc), "kind": "error"})
            raise
        _print_final(spec.run_id, results_dir, final)


# ----- sweep -------------------------------------------------------------------------------------

@dataclass
class SweepOutcome:
    planned: list = field(default_factory=list)
    ran: int = 0
    failed: list = field(default_factory=list)  # (PlannedRun, JobResult)
    held: list = field(default_factory=list)  # PlannedRun: diverged before, not rerun (--retry-diverged)
    waited: bool = True  # False for a dry run and for printed / submitted-and-left runs

    @property
    def ok(self) -> bool:
        """No run failed, and (when the sweep waited for its runs) none is held back as diverged."""
        return not self.failed and not (self.held and self.waited)


def _require_results(path: Path) -> Path:
    """A results folder a reading command can read: an existing directory (else one line, exit 2)."""
    if not path.exists():
        raise LtbenchError(f"results folder {path} does not exist (--results-dir or $LTBENCH_RESULTS)")
    if not path.is_dir():
        raise LtbenchError(f"results folder {path} is not a directory")
    return path


def _load_grid(file: str, methods: str | None = None):
    from ltbench.grid import load_grid, resolve_grid_path

    grid = load_grid(resolve_grid_path(file))
    names = _split_names(methods)
    return grid.with_methods(names) if names else grid


def _gpu_slots(device: str, gpus: str | None) -> tuple[list[str], str]:
    """GPU ids for the worker slots and the --device each worker gets."""
    from ltbench.launch import visible_gpus

    if gpus:
        if device == "cpu":
            raise LtbenchError("--gpus cannot be combined with --device cpu")
        return [g.strip() for g in gpus.split(",") if g.strip()], "cuda"
    if device == "cpu":
        return [], "cpu"
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    ids = visible_gpus(count)
    if device.startswith("cuda:"):
        index = device.split(":", 1)[1]
        if not index.isdigit() or int(index) >= len(ids):
            raise LtbenchError(f"--device {device}: torch sees {len(ids)} CUDA device(s)")
        return [ids[int(index)]], "cuda"
    if device.startswith("cuda") and not ids:
        raise LtbenchError("--device cuda was asked for, but torch sees no CUDA device")
    return ids, device


def _plan_table(planned, estimates: dict | None = None, actual: dict | None = None) -> Table:
    from ltbench.estimate import fmt_duration
    from ltbench.report import fmt_value

    varied = any(p.run.vary for p in planned)
    table = Table("#", title="plan")
    table.add_column("run id", overflow="fold")
    extra = ["estimate", "from"] if estimates is not None else []
    shown_actual = bool(actual) and any(v is not None for v in actual.values())  # once runs exist
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
        if shown_actual:  # final.json wall_time_s of a finished run, beside its estimate (ltbench.costs)
            est.append(fmt_duration(actual[p.run_id]) if actual.get(p.run_id) is not None else "")
        table.add_row(str(i), p.run_id, *vary, state, p.action, *est)
    return table


def _counts(states) -> str:
    order = ("done", "running", "submitted", "interrupted", "failed", "damaged", "missing")
    counts = {s: 0 for s in order}
    for s in states:
        counts[s] = counts.get(s, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v or k in ("done", "missing"))


def _estimates(planned, results_dir: Path, data_dir: Path | None, bench: list[Path] | None):
    """{run id: Estimate} and the bench files used (`ltbench.estimate`)."""
    from ltbench.estimate import default_bench_dir, estimate, load_benches, train_images

    benches = load_benches(bench or [default_bench_dir(results_dir)])
    sizes: dict = {}
    out = {}
    for p in planned:
        spec = p.run.spec
        key = (spec.dataset, spec.ratio, spec.profile, spec.max_per_class)
        if key not in sizes:
            sizes[key] = train_images(spec, data_dir)
        out[p.run_id] = estimate(spec, benches, sizes[key])
    return out, benches


def _print_estimate(say, todo, estimates, benches, results_dir: Path, gpus_per_run: int | None) -> None:
    from ltbench.estimate import default_bench_dir, describe, fmt_duration

    if not benches:
        say(f"no time estimate: no bench files in {default_bench_dir(results_dir)} (save one on the target "
            "device with `ltbench bench --device cuda --json > results/bench/NAME.json`, or pass --bench FILE)")
        return
    known = [estimates[p.run_id].seconds for p in todo if estimates[p.run_id].seconds is not None]
    total = sum(known)
    missing = len(todo) - len(known)
    g = max(1, gpus_per_run or 1)
    # the bench timed one device: G GPUs per run shorten a run (at best G-fold), not its GPU-hours
    multi = f"; on {g} GPUs per run each run takes at best 1/{g} of its estimate" if g > 1 else ""
    say(f"estimate (training steps only, on the bench's device; from {describe(benches)}): "
        f"{fmt_duration(total)} = {total / 3600:.1f} device-hours (GPU-hours for a one-GPU bench) for "
        f"{len(known)} run(s) to do{multi}" + (f"; {missing} run(s) without an estimate" if missing else ""))


def sweep_grid(grid, results_dir: Path, jobs: int = 1, data_dir: Path | None = None, device: str = "auto",
               gpus: str | None = None, launcher: str = "local", dry_run: bool = False, *,
               launcher_options: dict | None = None, resubmit: bool = False,
               bench: list[Path] | None = None, retry_diverged: bool = False) -> SweepOutcome:
    """Expand, plan, print, run what is not done; returns what happened (the CLI decides the exit).

    `launcher_options` go to a detached launcher (`print`, `submitit`: gpus_per_run, cluster, partition,
    ...); `resubmit` also submits runs that are recorded as submitted (their job was cancelled or lost)."""
    from ltbench.grid import expand
    from ltbench.launch import (
        DETACHED,
        SUBMITTED_FILE,
        archive_attempt,
        get_launcher,
        get_launcher_class,
        launcher_folder,
        make_jobs,
        mark_failed,
        plan,
        trained_by,
    )
    from ltbench.locks import EXIT_LOCKED
    from ltbench.results import run_state

    if jobs < 1:  # checked before anything is printed or planned
        raise LtbenchError(f"--jobs must be >= 1, got {jobs}")
    get_launcher_class(launcher)
    runs = expand(grid)
    planned = plan(runs, results_dir, resubmit, retry_diverged)
    outcome = SweepOutcome(planned=planned, held=[p for p in planned if p.held_diverged])
    todo = [p for p in planned if p.action != "skip"]
    say = _say_err if launcher == "print" else _say
    options = dict(launcher_options or {})
    say(f"{grid.path}: {len(planned)} runs ({_counts(p.state for p in planned)}); results in {results_dir}")
    if dry_run:
        estimates, benches = _estimates(planned, results_dir, data_dir, bench)
        from ltbench.costs import actual_wall_s

        actual = {p.run_id: actual_wall_s(results_dir / p.run_id) for p in planned if p.state == "done"}
        (err_console if launcher == "print" else console).print(_plan_table(planned, estimates, actual))
        say(f"dry run: would run {len(todo)}, skip {len(planned) - len(todo)}")
        _print_estimate(say, todo, estimates, benches, results_dir, options.get("gpus_per_run"))
        _print_held(outcome, grid.path)
        outcome.waited = False
        return outcome
    _print_held(outcome, grid.path)
    if not todo:
        pending = sum(p.state == "submitted" for p in planned)
        held = f" or diverged ({len(outcome.held)}, listed above)" if outcome.held else ""
        say("nothing to run: every run is done" + (" or running" if pending < len(planned) else "") + held
            + (f" or submitted ({pending}; --resubmit submits them again if their jobs are gone)"
               if pending else ""))
        return outcome
    if retry_diverged:
        for p in todo:
            if p.diverged:
                archive_attempt(p.run_dir)  # starts over from epoch 0; the attempt is kept inside the run
    _check_writable(results_dir)
    detached = launcher in DETACHED
    if detached:
        if options.get("gpus_per_run") is None:
            options["gpus_per_run"] = 0 if device == "cpu" else 1
        if launcher == "submitit":
            options["folder"] = launcher_folder(results_dir, grid.name)
            if options.get("cluster") == "local" and not options.get("cpus_per_run"):
                # every task of the local executor starts at once: share this machine's cores
                options["threads_per_job"] = max(1, (os.cpu_count() or 1) // len(todo))
        pool = get_launcher(launcher, **options)
        child_device, gpu_ids, threads = device, [], None
    else:
        gpu_ids, child_device = _gpu_slots(device, gpus)
        threads = None if gpu_ids else max(1, (os.cpu_count() or 1) // max(1, jobs))
        pool = get_launcher(launcher, jobs=jobs, gpus=gpu_ids, threads_per_job=threads)
    job_list = make_jobs(todo, results_dir, data_dir, child_device)
    if launcher != "submitit":  # trained (or printed) here: no scheduler holds these runs any more
        for p in todo:
            (p.run_dir / SUBMITTED_FILE).unlink(missing_ok=True)
    by_name = {p.run_id: p for p in todo}
    waits = not detached or getattr(pool, "wait", False)
    if launcher == "submitit":
        say(f"submitting {len(job_list)} run(s) as one job array (submitit, {options.get('cluster', 'slurm')}); "
            f"its files: {options['folder']}")
    elif not detached:
        where = f"GPU(s) {','.join(gpu_ids)}" if gpu_ids else f"CPU, {threads} thread(s) each"
        say(f"running {len(job_list)} run(s), {jobs} at a time on {where}")

    live = console.is_terminal and waits
    state = {"running": 0, "done": 0, "failed": 0, "elsewhere": 0, "submitted": 0}
    job_ids: list[str] = []
    progress = task = None
    if live:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console)
        task = progress.add_task("sweep", total=len(job_list))

    def describe() -> str:
        busy = f", {state['elsewhere']} trained by another process" if state["elsewhere"] else ""
        return f"sweep: {state['done']} done, {state['failed']} failed, {state['running']} running{busy}"

    def on_event(kind: str, job, res) -> None:
        p = by_name[job.name]
        if kind == "submit":
            state["submitted"] += 1
            job_ids.append(res.job_id)
            if not live:
                _say(f"  submitted {job.name}  job {res.job_id}")
        elif kind == "start":
            state["running"] += 1
            if not live:
                gpu = "" if res.gpu is None else f" on GPU {res.gpu}"
                _say(f"  start {job.name} ({p.action}){gpu}")
        else:
            state["running"] = max(0, state["running"] - 1)
            ok = res.returncode == 0 and run_state(p.run_dir) == "done"
            if ok and res.pid is not None and not trained_by(p.run_dir, res.pid):
                res.returncode = EXIT_LOCKED  # finished by another sweep before this worker got the lock
            if res.returncode == EXIT_LOCKED:  # another process holds the run; it records the result
                state["elsewhere"] += 1
                _say(f"  [cyan]busy[/cyan]   {job.name}  (being trained by another process)")
            elif ok:
                state["done"] += 1
                _say(f"  [green]done[/green]   {job.name}  {res.seconds:.1f} s")
            else:
                state["failed"] += 1
                mark_failed(p.run_dir, res.returncode, job.log_path)
                outcome.failed.append((p, res))
                console.print(f"  [red]failed[/red] {job.name}  exit {res.returncode}  log: {job.log_path}",
                              highlight=False, soft_wrap=True)
            outcome.ran += 1
        if progress is not None:
            progress.update(task, description=describe(),
                            completed=state["done"] + state["failed"] + state["elsewhere"])

    t0 = time.monotonic()
    try:
        if progress is not None:
            with progress:
                pool.run(job_list, on_event)
        else:
            pool.run(job_list, on_event)
    except KeyboardInterrupt:
        msg = ("stopped waiting: submitted jobs go on (see `ltbench status`)" if detached else
               "interrupted: the workers were stopped; run the sweep again to resume them")
        err_console.print(msg, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if launcher == "print":
        say(f"printed {len(job_list)} command(s), one per run; nothing was run")
        outcome.waited = False
        return outcome
    if job_ids and not waits:
        span = job_ids[0] if len(job_ids) == 1 else f"{job_ids[0]} .. {job_ids[-1]}"
        _say(f"submitted {len(job_ids)} run(s): job(s) {span}; follow with `ltbench status {grid.path}`")
        outcome.waited = False
        return outcome
    _say(f"{describe().replace(', 0 running', '')} in {time.monotonic() - t0:.0f} s")
    if outcome.held:
        err_console.print(f"{len(outcome.held)} diverged run(s) were not rerun (listed at the start)",
                          highlight=False, soft_wrap=True)
    _print_failures(outcome)
    return outcome


def _failure_reason(run_dir: Path) -> str | None:
    from ltbench.results import read_json

    try:
        reason = read_json(run_dir / "failed.json").get("reason")
    except (OSError, ValueError, AttributeError):
        return None
    return str(reason).strip().splitlines()[0] if reason else None


def _print_held(outcome: SweepOutcome, grid_path: Path) -> None:
    if not outcome.held:
        return
    err_console.print(f"[yellow]not rerun: {len(outcome.held)} run(s) diverged before[/yellow] (the same spec "
                      f"diverges again; `ltbench sweep {grid_path} --retry-diverged` reruns them from scratch):",
                      highlight=False, soft_wrap=True)
    for p in outcome.held:
        err_console.print(f"  {p.run_id}: {_failure_reason(p.run_dir) or 'diverged'}", highlight=False,
                          soft_wrap=True, markup=False)


def _print_failures(outcome: SweepOutcome) -> None:
    from ltbench.launch import log_tail

    if not outcome.failed:
        return
    err_console.print(f"[red]{len(outcome.failed)} run(s) failed:[/red]", highlight=False, soft_wrap=True)
    for p, res in outcome.failed:
        reason = _failure_reason(p.run_dir) or f"exit code {res.returncode}"
        err_console.print(f"  {p.run_id}: {reason}", highlight=False, soft_wrap=True)
        for line in log_tail(res.job.log_path, 5):
            err_console.print(f"      {line}", highlight=False, soft_wrap=True, markup=False)


@app.command()
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
        cluster_flags = {"--partition": partition, "--gpus-per-run": gpus_per_run, "--cpus-per-run": cpus_per_run,
                         "--timeout-min": timeout_min, "--array-parallelism": array_parallelism,
                         "--slurm-arg": slurm_arg or None, "--wait": wait or None,
                         "--cluster": None if cluster == "slurm" else cluster}
        options: dict = {}
        if launcher == "submitit":
            options = {"cluster": cluster, "partition": partition, "gpus_per_run": gpus_per_run,
                       "cpus_per_run": cpus_per_run, "array_parallelism": array_parallelism,
                       "slurm_args": list(slurm_arg), "wait": wait}
            if timeout_min is not None:
                options["timeout_min"] = timeout_min
        elif launcher == "print" or dry_run:  # --dry-run: the estimate mentions GPUs per run
            options = {"gpus_per_run": gpus_per_run}
            cluster_flags.pop("--gpus-per-run")
        if launcher != "submitit":
            used = [flag for flag, value in cluster_flags.items() if value is not None]
            if used and not dry_run:
                also = " or print" if used[0] == "--gpus-per-run" else ""
                raise LtbenchError(f"{used[0]} is an option of --launcher submitit{also}")
        elif jobs != 1 or gpus:
            raise LtbenchError("--jobs and --gpus pick local worker slots; with --launcher submitit use "
                               "--array-parallelism and --gpus-per-run")
        grid = _load_grid(file, methods)
        outcome = sweep_grid(grid, results_dir or _default_results(), jobs, data_dir, device, gpus, launcher,
                             dry_run, launcher_options=options, resubmit=resubmit, bench=list(bench) or None,
                             retry_diverged=retry_diverged)
    if not outcome.ok and not dry_run:
        raise typer.Exit(1)


# ----- status ------------------------------------------------------------------------------------

@app.command()
def status(
    file: str | None = typer.Argument(None, help="Experiment file; default: every run in the results dir."),
    methods: str | None = typer.Option(None, "--methods", help="Only these methods of the grid (a,b,...)."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help=RESULTS_HELP),
    tail: int = typer.Option(5, "--tail", help="Log lines shown per failed run."),
) -> None:
    """done / running / submitted / interrupted / failed / damaged / missing per run, with the scheduler's job
    id where one exists and the reason of each failure."""
    with user_errors():
        from ltbench.launch import log_tail, read_submission, state_of
        from ltbench.report import find_run_dirs

        results_dir = results_dir or _default_results()
        if file is not None:
            from ltbench.grid import expand

            grid = _load_grid(file, methods)
            entries = [(r.run_id, results_dir / r.run_id) for r in expand(grid)]
            title = f"{grid.path} ({len(entries)} runs)"
            _require_results(results_dir)  # after the grid: its own errors are the more specific ones
        else:
            if methods:
                raise LtbenchError("--methods needs an experiment file")
            dirs = find_run_dirs(_require_results(results_dir))
            entries = [(d.relative_to(results_dir).as_posix(), d) for d in dirs]
            title = f"runs under {results_dir}"
            if not entries:
                _say(f"no runs under {results_dir}")
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
                    from ltbench.results import final_damage

                    detail = final_damage(run_dir) or "final.json is damaged"
                else:
                    detail = _failure_reason(run_dir) or ""
                failures.append((run_id, run_dir, detail))
            elif st in ("interrupted", "running"):
                detail = _progress_detail(run_dir)
            elif st == "submitted":  # queued, or requeued after a pre-emption (then it has epochs already)
                detail = _progress_detail(run_dir) if (run_dir / "metrics.jsonl").exists() else "queued"
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
        console.print(_counts(states) + f" (of {len(entries)})", highlight=False, soft_wrap=True)
        for run_id, run_dir, detail in failures:
            _say(f"[red]{run_id}[/red]: {detail or 'no reason recorded'}")
            for line in log_tail(run_dir / "log.txt", tail):
                console.print(f"    {line}", highlight=False, soft_wrap=True, markup=False)


def _done_detail(run_dir: Path) -> str:
    from ltbench.results import load_final

    try:
        final = load_final(run_dir) or {}
    except ValueError:
        return ""
    top1 = final.get("top1")
    return "" if top1 is None else f"top1 {top1:.2f}"


def _progress_detail(run_dir: Path) -> str:
    from ltbench.results import read_json, read_jsonl

    rows = read_jsonl(run_dir / "metrics.jsonl")
    try:
        epochs = read_json(run_dir / "spec.json")["train"]["epochs"]
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


def _write_outputs(t, out: Path, formats: list[str], layout: str = "wide") -> None:
    from ltbench.report import write_table

    paths = write_table(t, out, [f for f in formats if not (layout == "compact" and f == "md")])
    if layout == "compact" and "md" in formats:  # the readable layout (ltbench.report_compact)
        from ltbench.report_compact import render_compact_markdown
        from ltbench.results import atomic_write_bytes

        paths.append(out / f"{t.name}.md")
        atomic_write_bytes(paths[-1], render_compact_markdown(t).encode("utf-8"))
    for path in paths:
        _say(f"wrote {path}")


def _table_extras(t, badges: bool, cost: bool) -> None:
    """Opt-in badges and cost (ltbench.badges, ltbench.costs); each adds its rule to the caption."""
    if badges:
        from ltbench.badges import apply as apply_badges

        apply_badges(t)
    if cost:
        from ltbench.costs import apply as apply_costs

        apply_costs(t)


@app.command()
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
        from ltbench.report import build_table, collect, grid_failures, grid_run_ids

        formats = _check_formats(format_)
        _check_select(select)
        if layout not in ("wide", "compact"):
            raise LtbenchError(f"--layout must be wide or compact, got {layout!r}")
        grid = _load_grid(which)
        results_dir = _require_results(results_dir or _default_results())
        frame = collect(results_dir, warn=_warn)
        run_ids = grid_run_ids(grid)  # expanding a grid builds every spec: once per command
        t = build_table(frame, grid, select=select, warn=_warn, expected_ids=run_ids)
        _table_extras(t, badges, cost)
        t.failed = grid_failures(grid, results_dir or _default_results(), run_ids)
        for run_id, reason in t.failed:
            _warn(f"failed run (not in the table's numbers): {run_id}: {reason}")
        _say(f"{t.name}: {len(t.frame)} run(s) of {grid.path} found")
        _write_outputs(t, out, formats, layout)
        if show:
            console.print(rich_table_for(t))


def rich_table_for(t):
    from ltbench.report import rich_table

    return rich_table(t)


# ----- ablations ---------------------------------------------------------------------------------

def _ablation_grid(which: str, quick: bool):
    from ltbench.grid import NAMED_GRIDS, experiments_dir, load_grid, resolve_grid_path

    if which in NAMED_GRIDS:
        name = ("quick-" if quick else "") + NAMED_GRIDS[which]
        grid = load_grid(experiments_dir() / f"{name}.yaml")
    else:
        if quick:
            raise LtbenchError("--quick selects the quick-* grid of masking or contrastive; "
                               "for a FILE, point at the quick file itself")
        grid = load_grid(resolve_grid_path(which))
    if not grid.vary:
        raise LtbenchError(f"{grid.path} has no `vary` key: there is nothing to ablate")
    if grid.table is None or not grid.table.startswith("ablate"):
        grid = dataclasses.replace(grid, table="ablate")
    return grid


@app.command()
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
        from ltbench.report import build_table, collect, grid_run_ids, plot_ablation

        _check_select(select)
        grid = _ablation_grid(which, quick)
        results_dir = results_dir or _default_results()
        if collect_only:
            _require_results(results_dir)
        outcome = SweepOutcome()
        if not collect_only:
            outcome = sweep_grid(grid, results_dir, jobs, data_dir, device)
        name = grid.name if "ablate" in grid.name else f"ablate-{grid.name}"
        t = build_table(collect(results_dir, warn=_warn), grid, select=select, name=name, warn=_warn,
                        expected_ids=grid_run_ids(grid))
        _say(f"{name}: {len(t.frame)} run(s) of {grid.path} found")
        _write_outputs(t, out, list(FORMATS))
        paths, _ = plot_ablation(t, out / name)
        for path in paths:
            _say(f"wrote {path}")
        if show:
            console.print(rich_table_for(t))
    if not outcome.ok:
        raise typer.Exit(1)


# ----- plots -------------------------------------------------------------------------------------

@plot_app.command("per-class")
def plot_per_class(
    run_dirs: list[Path] | None = typer.Argument(None, help="Run directories (default: all, or --grid's)."),
    grid_file: str | None = typer.Option(None, "--grid", help="Plot this experiment file's runs."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help=RESULTS_HELP),
    out: Path | None = typer.Option(None, "--out", help="PNG (default: results/reports/...)."),
) -> None:
    """Per-class test accuracy vs training images (log x), one line per method (mean over seeds)."""
    with user_errors():
        from ltbench.report import collect, grid_run_ids, select_runs
        from ltbench.report import plot_per_class as draw

        results_dir = _require_results(results_dir or _default_results())
        if run_dirs and len(run_dirs) == 1 and not grid_file and run_dirs[0].suffix in (".yaml", ".yml"):
            grid_file, run_dirs = str(run_dirs[0]), None  # `plot per-class FILE.yaml` means --grid FILE.yaml
        if run_dirs and grid_file:
            raise LtbenchError("give run directories or --grid, not both")
        name = "per-class"
        if run_dirs:
            missing = [d for d in run_dirs if not (d / "final.json").exists()]
            if missing:
                raise LtbenchError(f"{missing[0]} is not a finished run directory (no final.json)")
            frame = collect(results_dir, warn=_warn, run_dirs=run_dirs, include_lists=True)
        else:
            frame = collect(results_dir, warn=_warn, include_lists=True)
            if grid_file:
                grid = _load_grid(grid_file)
                frame = select_runs(frame, grid, warn=_warn, expected_ids=grid_run_ids(grid))
                name = f"{grid.name}-per-class"
        if frame.empty:
            raise LtbenchError(f"no finished runs to plot under {results_dir}")
        out = out or DEFAULT_REPORTS / f"{name}.png"
        paths, data = draw(frame, out, title="per-class accuracy vs training images (dashed: 20 / 100)")
        console.print(f"wrote {paths[0]} ({len(frame)} run(s), {data['method'].nunique()} method(s))",
                      highlight=False, soft_wrap=True)


# ----- demo --------------------------------------------------------------------------------------

@app.command()
def demo(
    jobs: int = typer.Option(1, "--jobs", "-j", help="Runs at a time."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help=RESULTS_HELP),
    data_dir: Path | None = typer.Option(None, "--data-dir"),
    device: str = typer.Option("auto", "--device"),
    out: Path = typer.Option(DEFAULT_REPORTS, "--out", help="Folder for demo.{md,tex,csv} and the plot."),
) -> None:
    """Train the demo grid (experiments/demo.yaml, CPU-sized), then print its table and per-class plot."""
    with user_errors():
        from ltbench.grid import experiments_dir, load_grid, registered_methods
        from ltbench.report import build_table, collect, grid_run_ids
        from ltbench.report import plot_per_class as draw

        grid = load_grid(experiments_dir() / "demo.yaml")
        known = set(registered_methods())
        skipped = [m for m in grid.methods if m not in known]
        if skipped:
            _say(f"demo: skipping {', '.join(skipped)} (not registered in this install)")
        kept = [m for m in grid.methods if m in known]
        if not kept:
            raise LtbenchError("demo: none of the demo's methods is registered")
        grid = grid.with_methods(kept)
        results_dir = results_dir or _default_results()
        outcome = sweep_grid(grid, results_dir, jobs, data_dir, device)
        frame = collect(results_dir, warn=_warn, include_lists=True)
        t = build_table(frame, grid, name="demo", warn=_warn, expected_ids=grid_run_ids(grid))
        _write_outputs(t, out, list(FORMATS))
        console.print(rich_table_for(t))
        if not t.frame.empty:
            paths, _ = draw(t.frame, out / "demo-per-class.png",
                            title="demo: per-class accuracy vs training images (dashed: 20 / 100)")
            _say(f"wrote {paths[0]}")
    if not outcome.ok:
        raise typer.Exit(1)


__all__ = ["SweepOutcome", "sweep_grid"]


# ----- paired comparisons ------------------------------------------------------------------------

@app.command()
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

        from ltbench.compare import Arm, holm_family, paired, protocol_mismatches
        from ltbench.report import collect, grid_run_ids, select_runs

        if len(a) != len(b):
            raise LtbenchError(f"give one --b per --a (got {len(a)} --a and {len(b)} --b)")
        grid = _load_grid(file)
        pairs = [(Arm.parse(x), Arm.parse(y)) for x, y in zip(a, b, strict=True)]
        frame = select_runs(collect(_require_results(results_dir or _default_results()), warn=_warn), grid, warn=_warn,
                            expected_ids=grid_run_ids(grid))
        if frame.empty:
            raise LtbenchError(f"no finished runs of {grid.path} under {results_dir or _default_results()}")
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
            from ltbench.figures import plot_forest

            for path in plot_forest(result, plot, title=f"{grid.path.name}: paired differences A − B",
                                    flagged=list(mismatch)):
                _say_err(f"wrote {path}")
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


def _decomposition(frame, pairs, metrics):
    from ltbench.compare import decomposition

    return decomposition(frame, pairs, metrics)


def _compare_header(result, mismatch: dict[str, list[str]]) -> list[str]:
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


def _print_comparison(result, pairs, mismatch: dict[str, list[str]], markdown: bool) -> None:
    import pandas as pd
    from rich.table import Table

    several = len(pairs) > 1
    cols = (("A − B",) if several else ()) + (
        "setting", "metric", "seeds", "A", "B", "A − B per seed", "mean A − B (95 % CI)", "verdict", "p",
        "Holm p", "Holm verdict")
    rows = []
    for r in result.itertuples():
        hw = "" if r.half_width is None or pd.isna(r.half_width) else f" ± {r.half_width:.2f}"
        p = "" if r.p is None or pd.isna(r.p) else f"{r.p:.3f}"
        ph = "" if r.p_holm is None or pd.isna(r.p_holm) else f"{r.p_holm:.3f}"
        rows.append(((f"{r.a_arm} − {r.b_arm}",) if several else ()) + (
            r.setting, r.metric, ",".join(map(str, r.seeds)), f"{r.a:.2f}", f"{r.b:.2f}",
            " ".join(f"{d:+.2f}" for d in r.diffs), f"{r.diff:+.2f}{hw}", r.verdict, p, ph, r.holm))
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


def _print_decomposition(decomp, markdown: bool) -> None:
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
