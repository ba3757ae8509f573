"""A sweep: plan a grid's runs, hand the ones not done to a launcher, and say what happened.

`sweep_grid` expands the grid, classifies every run by what is on disk (`ltbench.launch.plan`), and runs
what is left through the chosen launcher (`ltbench.launchers`), calling only the `Launcher` interface.
It prints nothing: everything worth showing goes to a `SweepObserver` (the CLI's console view prints
it; the default, `QuietObserver`, ignores it), and the result is a `SweepOutcome` from which the caller
decides the exit code. No torch import here; expanding the grid builds specs, and the local launcher
counts GPUs only when none are named.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ltbench.errors import LtbenchError
from ltbench.launch import (
    SUBMITTED_FILE,
    Job,
    JobResult,
    PlannedRun,
    archive_attempt,
    check_writable,
    make_jobs,
    mark_failed,
    plan,
    trained_by,
)
from ltbench.launchers import Launcher, LaunchOptions, LaunchSite, get_launcher_class

if TYPE_CHECKING:  # pragma: no cover
    from ltbench.grid import Grid


@dataclass
class Tally:
    """Jobs of a sweep so far, by what became of them."""

    running: int = 0
    done: int = 0
    failed: int = 0
    elsewhere: int = 0  # another process trained the run (it records the result)
    submitted: int = 0

    @property
    def ended(self) -> int:
        return self.done + self.failed + self.elsewhere


@dataclass
class SweepOutcome:
    planned: list[PlannedRun] = field(default_factory=list)
    ran: int = 0
    failed: list[tuple[PlannedRun, JobResult]] = field(default_factory=list)
    held: list[PlannedRun] = field(default_factory=list)  # diverged before, not rerun (--retry-diverged)
    waited: bool = True  # False for a dry run and for printed / submitted-and-left runs
    tally: Tally = field(default_factory=Tally)
    seconds: float = 0.0  # time spent running (or handing over) the jobs
    left_line: str | None = None  # a launcher that did not wait: what it did with the runs

    @property
    def ok(self) -> bool:
        """No run failed, and (when the sweep waited for its runs) none is held back as diverged."""
        return not self.failed and not (self.held and self.waited)


@dataclass
class Sweep:
    """One sweep's plan: every run of the grid with its state and action."""

    grid: Grid
    results_dir: Path
    planned: list[PlannedRun]
    launcher: type[Launcher]

    @property
    def todo(self) -> list[PlannedRun]:
        return [p for p in self.planned if p.action != "skip"]

    @property
    def held(self) -> list[PlannedRun]:
        return [p for p in self.planned if p.held_diverged]


@dataclass
class DryRun:
    """What `--dry-run` shows beside the plan: time estimates (`ltbench.estimate`) and actual wall times."""

    estimates: dict[str, Any]  # run id -> Estimate
    benches: list[Any]  # the bench files the estimates come from
    actual: dict[str, float | None]  # run id -> final.json wall_time_s, for runs that are done
    gpus_per_run: int | None


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM while the jobs ran: local workers were stopped; a detached launcher's go on."""

    def __init__(self, detached: bool):
        super().__init__("sweep interrupted")
        self.detached = detached


class SweepObserver(Protocol):
    """What a sweep reports, in the order it happens (the CLI's console view implements it)."""

    def planned(self, sweep: Sweep) -> None:
        """The plan is made (before anything else)."""

    def dry_run(self, sweep: Sweep, preview: DryRun) -> None:
        """A dry run stops here."""

    def held(self, sweep: Sweep) -> None:
        """Runs that diverged before and are not rerun (called with or without any)."""

    def nothing_to_run(self, sweep: Sweep) -> None:
        """Every run is done, running, submitted or held."""

    def running(self, sweep: Sweep, launcher: Launcher, jobs: Sequence[Job]) -> AbstractContextManager[None]:
        """Around the launcher's run (e.g. a progress display)."""

    def job(self, event: str, run: PlannedRun, res: JobResult, tally: Tally) -> None:
        """One job's news: "submitted", "started", "busy" (another process has the run), "done" or "failed"."""

    def finished(self, sweep: Sweep, outcome: SweepOutcome) -> None:
        """The launcher returned."""


class QuietObserver:
    """A SweepObserver that shows nothing (a sweep run from code)."""

    def planned(self, sweep: Sweep) -> None:
        pass

    def dry_run(self, sweep: Sweep, preview: DryRun) -> None:
        pass

    def held(self, sweep: Sweep) -> None:
        pass

    def nothing_to_run(self, sweep: Sweep) -> None:
        pass

    def running(self, sweep: Sweep, launcher: Launcher, jobs: Sequence[Job]) -> AbstractContextManager[None]:
        return nullcontext()

    def job(self, event: str, run: PlannedRun, res: JobResult, tally: Tally) -> None:
        pass

    def finished(self, sweep: Sweep, outcome: SweepOutcome) -> None:
        pass


def sweep_grid(grid: Grid, results_dir: Path, options: LaunchOptions | None = None, *, launcher: str = "local",
               data_dir: Path | None = None, device: str = "auto", dry_run: bool = False, resubmit: bool = False,
               bench: list[Path] | None = None, retry_diverged: bool = False,
               observer: SweepObserver | None = None) -> SweepOutcome:
    """Expand, plan, report, run what is not done; returns what happened (the caller decides the exit).

    `resubmit` also submits runs that are recorded as submitted (their job was cancelled or lost);
    `retry_diverged` reruns runs that diverged, from scratch. Raises SweepInterrupted on Ctrl-C."""
    from ltbench.grid import expand

    options = options or LaunchOptions()
    observer = observer or QuietObserver()
    if options.jobs < 1:  # checked before anything is reported or planned
        raise LtbenchError(f"--jobs must be >= 1, got {options.jobs}")
    kind = get_launcher_class(launcher)
    sweep = Sweep(grid, results_dir, plan(expand(grid), results_dir, resubmit, retry_diverged), kind)
    outcome = SweepOutcome(planned=sweep.planned, held=sweep.held)
    observer.planned(sweep)
    if dry_run:
        observer.dry_run(sweep, preview(sweep, data_dir, bench, options.gpus_per_run))
        outcome.waited = False
        return outcome
    observer.held(sweep)
    todo = sweep.todo
    if not todo:
        observer.nothing_to_run(sweep)
        return outcome
    if retry_diverged:
        for p in todo:
            if p.diverged:
                archive_attempt(p.run_dir)  # starts over from epoch 0; the attempt is kept inside the run
    check_writable(results_dir)
    pool = kind.create(options, LaunchSite(results_dir, grid.name, device, len(todo)))
    jobs = make_jobs(todo, results_dir, data_dir, pool.child_device)
    if not kind.records_submissions:  # trained (or printed) here: no scheduler holds these runs any more
        for p in todo:
            (p.run_dir / SUBMITTED_FILE).unlink(missing_ok=True)
    on_event = _event_handler(todo, outcome, observer)
    t0 = time.monotonic()
    try:
        with observer.running(sweep, pool, jobs):
            results = pool.run(jobs, on_event)
    except KeyboardInterrupt:
        raise SweepInterrupted(kind.detached) from None
    outcome.seconds = time.monotonic() - t0
    if not pool.waits:
        outcome.waited = False
        outcome.left_line = pool.left_line(results, grid.path)
    observer.finished(sweep, outcome)
    return outcome


def _event_handler(todo: Sequence[PlannedRun], outcome: SweepOutcome,
                   observer: SweepObserver) -> Callable[[str, Job, JobResult | None], None]:
    """The launcher's on_event: count, record a worker that died silently, and tell the observer."""
    from ltbench.locks import EXIT_LOCKED
    from ltbench.rundir import run_state

    by_name = {p.run_id: p for p in todo}
    tally = outcome.tally

    def on_event(kind: str, job: Job, res: JobResult | None) -> None:
        assert res is not None
        p = by_name[job.name]
        if kind == "submit":
            tally.submitted += 1
            event = "submitted"
        elif kind == "start":
            tally.running += 1
            event = "started"
        else:
            tally.running = max(0, tally.running - 1)
            ok = res.returncode == 0 and run_state(p.run_dir) == "done"
            if ok and res.pid is not None and not trained_by(p.run_dir, res.pid):
                res.returncode = EXIT_LOCKED  # finished by another sweep before this worker got the lock
            if res.returncode == EXIT_LOCKED:  # another process holds the run; it records the result
                tally.elsewhere += 1
                event = "busy"
            elif ok:
                tally.done += 1
                event = "done"
            else:
                tally.failed += 1
                mark_failed(p.run_dir, res.returncode, job.log_path)
                outcome.failed.append((p, res))
                event = "failed"
            outcome.ran += 1
        observer.job(event, p, res, tally)

    return on_event


def preview(sweep: Sweep, data_dir: Path | None, bench: list[Path] | None, gpus_per_run: int | None) -> DryRun:
    """Time estimates of every planned run from bench files, and the recorded wall time of finished ones."""
    from ltbench.estimate import default_bench_dir, estimate, load_benches, train_images
    from ltbench.report.costs import actual_wall_s

    benches = load_benches(bench or [default_bench_dir(sweep.results_dir)])
    sizes: dict[tuple[Any, ...], int | None] = {}
    estimates = {}
    for p in sweep.planned:
        spec = p.run.spec
        key = (spec.dataset, spec.ratio, spec.profile, spec.max_per_class)
        if key not in sizes:
            sizes[key] = train_images(spec, data_dir)
        estimates[p.run_id] = estimate(spec, benches, sizes[key])
    actual = {p.run_id: actual_wall_s(sweep.results_dir / p.run_id) for p in sweep.planned if p.state == "done"}
    return DryRun(estimates, benches, actual, gpus_per_run)
