"""`--launcher submitit`: a grid's runs as one SLURM job array (or on submitit's local executor).

submitit's own files (sbatch scripts, pickles, its stdout/stderr) live under
`<results dir>/../launcher/<grid>/`, never in run directories; each run directory gets `submitted.json`
(job id, array index) so `ltbench status` can show it. The array task itself (`RunTask`: the worker,
pre-emption, requeueing) is `ltbench.launchers.submitit_task`.

The options and SLURM parameters here are pure (tested without a SLURM install); submitit, an optional
extra, is imported only when a sweep submits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltbench.errors import LtbenchError
from ltbench.files import atomic_write_bytes, atomic_write_json
from ltbench.launch import SUBMITTED_FILE, EventHook, Job, JobResult, launcher_folder, torchrun_argv
from ltbench.launchers.base import Launcher, LaunchOptions, LaunchSite
from ltbench.rundir import RunDir, run_state

if TYPE_CHECKING:  # pragma: no cover
    import submitit

    from ltbench.launchers.submitit_task import RunTask

CLUSTERS = ("slurm", "local")
DEFAULT_TIMEOUT_MIN = 24 * 60
# requeues after a time limit (pre-emptions do not count): a long run on a short partition is trained
# in slices, e.g. ImageNet-LT's 100 epochs in 4-hour jobs
MAX_TIMEOUTS = 20
SIGNAL_DELAY_S = 120  # SLURM signals this long before the limit: time to stop the worker and requeue


# ----- submission parameters (pure: tested without a SLURM install) -------------------------------

@dataclass
class SubmititOptions:
    cluster: str = "slurm"  # "local": submitit's local executor (this machine; tests)
    partition: str | None = None
    gpus_per_run: int = 1  # > 1: the run is trained by torchrun on that many GPUs of one node
    cpus_per_run: int | None = None  # None: the cluster's default
    timeout_min: int = DEFAULT_TIMEOUT_MIN
    array_parallelism: int | None = None  # None: submitit's default (256)
    slurm_args: dict[str, Any] = field(default_factory=dict)  # extra #SBATCH --key=value lines
    name: str = "ltbench"


def parse_slurm_args(items: Sequence[str]) -> dict[str, Any]:
    """`--slurm-arg key=value` items as sbatch options ({key: value}); a bare `key` is a flag."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not key or (sep and not value.strip()):
            raise LtbenchError(f"--slurm-arg expects key=value (an sbatch option), got {item!r}")
        out[key] = value.strip() if sep else True
    return out


def check_options(opts: SubmititOptions) -> None:
    if opts.cluster not in CLUSTERS:
        raise LtbenchError(f"unknown --cluster {opts.cluster!r}; choose from {', '.join(CLUSTERS)}")
    for flag, value in (("--gpus-per-run", opts.gpus_per_run), ("--cpus-per-run", opts.cpus_per_run),
                        ("--timeout-min", opts.timeout_min), ("--array-parallelism", opts.array_parallelism)):
        if value is not None and value < (0 if flag == "--gpus-per-run" else 1):
            raise LtbenchError(f"{flag} must be >= {0 if flag == '--gpus-per-run' else 1}, got {value}")


def slurm_parameters(opts: SubmititOptions) -> dict[str, Any]:
    """The keyword arguments of `AutoExecutor.update_parameters` for these options.

    One task per array element on one node: the task itself starts torchrun for several GPUs (as
    `ltbench run --nproc-per-node` does), so SLURM is asked for G GPUs on the node, not G tasks."""
    check_options(opts)
    params: dict[str, Any] = {"name": opts.name, "timeout_min": int(opts.timeout_min), "nodes": 1,
                              "tasks_per_node": 1, "slurm_signal_delay_s": SIGNAL_DELAY_S}
    if opts.gpus_per_run:
        params["gpus_per_node"] = int(opts.gpus_per_run)
    if opts.cpus_per_run:
        params["cpus_per_task"] = int(opts.cpus_per_run)
    if opts.partition:
        params["slurm_partition"] = opts.partition
    if opts.array_parallelism:
        params["slurm_array_parallelism"] = int(opts.array_parallelism)
    if opts.slurm_args:
        params["slurm_additional_parameters"] = dict(opts.slurm_args)
    return params


def make_executor(folder: Path, opts: SubmititOptions) -> submitit.AutoExecutor:
    """submitit's executor. On SLURM its files go to `folder/<job id>/` (`%j`); the local executor's job ids
    are pids and it would create a literal `%j` folder, so its files go to `folder` itself."""
    import submitit

    where = Path(folder) / "%j" if opts.cluster == "slurm" else Path(folder)
    try:
        executor = submitit.AutoExecutor(folder=str(where), cluster=opts.cluster,
                                         slurm_max_num_timeout=MAX_TIMEOUTS, local_max_num_timeout=MAX_TIMEOUTS)
    except RuntimeError as exc:  # SlurmExecutor: "Could not detect srun"
        raise LtbenchError(f"--launcher submitit: no SLURM here ({exc}); use --cluster local to run the "
                           "array on this machine, or --launcher print for another scheduler") from None
    executor.update_parameters(**slurm_parameters(opts))
    return executor


# ----- the launcher -------------------------------------------------------------------------------

class SubmititLauncher(Launcher):
    """Submit jobs as one submitit job array; with `wait`, follow them to the end like the local pool."""

    reads = frozenset({"cluster", "partition", "gpus_per_run", "cpus_per_run", "timeout_min", "array_parallelism",
                       "slurm_args", "wait"})
    detached = True
    records_submissions = True

    def __init__(self, folder: Path, wait: bool = False, threads_per_job: int | None = None,
                 poll_s: float = 2.0, slurm_args: Sequence[str] | dict[str, Any] = (), **options: Any):
        args = slurm_args if isinstance(slurm_args, dict) else parse_slurm_args(slurm_args)
        self.options = SubmititOptions(slurm_args=args, **options)
        check_options(self.options)
        self.folder = Path(folder)
        # the local executor has no queue to come back to: always follow its jobs
        self.wait = wait or self.options.cluster == "local"
        self.threads = threads_per_job
        if self.threads is None and self.options.cpus_per_run:
            self.threads = max(1, self.options.cpus_per_run // max(1, self.options.gpus_per_run))
        self.poll_s = poll_s
        self.submitted: list[submitit.Job[Any]] = []

    @classmethod
    def check(cls, opts: LaunchOptions) -> None:
        if opts.jobs != 1 or opts.gpus:
            raise LtbenchError("--jobs and --gpus pick local worker slots; with --launcher submitit use "
                               "--array-parallelism and --gpus-per-run")

    @classmethod
    def create(cls, opts: LaunchOptions, site: LaunchSite) -> SubmititLauncher:
        try:
            import submitit  # noqa: F401  (an optional extra: say how to get it)
        except ImportError:
            raise LtbenchError("submitit is not installed; pip install 'ltbench[slurm]'") from None
        threads = None
        if opts.cluster == "local" and not opts.cpus_per_run:
            # every task of the local executor starts at once: share this machine's cores
            threads = max(1, (os.cpu_count() or 1) // max(1, site.n_jobs))
        extra = {} if opts.timeout_min is None else {"timeout_min": opts.timeout_min}
        launcher = cls(launcher_folder(site.results_dir, site.grid_name), wait=opts.wait, threads_per_job=threads,
                       slurm_args=list(opts.slurm_args), cluster=opts.cluster, partition=opts.partition,
                       gpus_per_run=opts.run_gpus(site.device), cpus_per_run=opts.cpus_per_run,
                       array_parallelism=opts.array_parallelism, **extra)
        launcher.child_device = site.device
        return launcher

    @property
    def waits(self) -> bool:
        return self.wait

    def start_line(self, n_jobs: int) -> str | None:
        return (f"submitting {n_jobs} run(s) as one job array (submitit, {self.options.cluster}); "
                f"its files: {self.folder}")

    def left_line(self, results: Sequence[JobResult], grid_path: Path) -> str:
        ids = [r.job_id for r in results]
        span = ids[0] if len(ids) == 1 else f"{ids[0]} .. {ids[-1]}"
        return f"submitted {len(ids)} run(s): job(s) {span}; follow with `ltbench status {grid_path}`"

    def _env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.threads is not None:  # torch would use every core of the node, not the task's share
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[var] = os.environ.get(var, str(self.threads))
        return env

    def tasks(self, jobs: Sequence[Job]) -> list[RunTask]:
        from ltbench.launchers.submitit_task import RunTask

        env = self._env()
        return [RunTask(job.name, torchrun_argv(job.argv, self.options.gpus_per_run), _run_dir(job), job.log_path,
                        {**job.env, **env}) for job in jobs]

    def run(self, jobs: Sequence[Job], on_event: EventHook | None = None) -> list[JobResult]:
        if not jobs:
            return []
        executor = make_executor(self.folder, self.options)
        for job in jobs:
            for path, data in job.files.items():
                atomic_write_bytes(path, data)
            # a resubmitted failure is history now (its log stays in log.txt); the trainer drops it too
            RunDir(_run_dir(job)).clear_failure()
        try:
            sjobs = executor.submit_array(self.tasks(jobs))
        except (OSError, subprocess.SubprocessError, RuntimeError, ValueError) as exc:
            raise LtbenchError(f"submitit could not submit the array: {exc}") from None
        self.submitted = list(sjobs)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        host = socket.gethostname()
        results = []
        for index, (job, sjob) in enumerate(zip(jobs, sjobs, strict=True)):
            atomic_write_json(_run_dir(job) / SUBMITTED_FILE, {
                "launcher": "submitit", "cluster": self.options.cluster, "job_id": str(sjob.job_id),
                "array_index": index, "submitted": stamp, "host": host, "folder": str(self.folder)})
            res = JobResult(job, None, job_id=str(sjob.job_id))
            results.append(res)
            if on_event is not None:
                on_event("submit", job, res)
        if not self.wait:
            return results
        return self.follow(jobs, self.submitted, on_event)

    def follow(self, jobs: Sequence[Job], sjobs: Sequence[submitit.Job[Any]],
               on_event: EventHook | None = None) -> list[JobResult]:
        """Wait for every job; "end" events carry the task's return value (1 for a failed task)."""
        t0 = time.monotonic()
        results: dict[int, JobResult] = {}
        while len(results) < len(jobs):
            for i, (job, sjob) in enumerate(zip(jobs, sjobs, strict=True)):
                if i in results or not sjob.done():
                    continue
                res = JobResult(job, self._returncode(job, sjob), time.monotonic() - t0, job_id=str(sjob.job_id))
                results[i] = res
                if on_event is not None:
                    on_event("end", job, res)
            if len(results) < len(jobs):
                time.sleep(self.poll_s)
        return [results[i] for i in range(len(jobs))]

    @staticmethod
    def _returncode(job: Job, sjob: submitit.Job[Any]) -> int:
        try:
            value = sjob.result()
        except Exception:  # the task raised or died: the run directory says what happened
            return 0 if run_state(_run_dir(job)) == "done" else 1
        return value if isinstance(value, int) else 0


def _run_dir(job: Job) -> Path:
    return job.run_dir if job.run_dir is not None else job.log_path.parent
