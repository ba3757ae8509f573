"""`ltbench sweep --launcher submitit`: a grid's runs as one SLURM job array (or on submitit's local executor).

Every array task is a `RunTask`. It runs the worker the local pool runs (`python -m ltbench run-spec
<run dir>/spec.json`, under torchrun when a run has several GPUs) as a child process whose output is
appended to the run's log.txt, so a run trained on the cluster leaves the same run directory as one
trained by `ltbench run`. submitit's own files (sbatch scripts, pickles, its stdout/stderr) live under
`<results dir>/../launcher/<grid>/`, never in run directories; each run directory gets `submitted.json`
(job id, array index) so `ltbench status` can show it.

Pre-emption and time limits: SLURM signals the task (USR2, `signal_delay_s` before the limit); submitit
calls `RunTask.checkpoint`, which stops the worker with SIGINT (the trainer releases the run's lock on the
way out and its last.pt is the checkpoint) and returns the same task, which submitit requeues; the next
attempt resumes from last.pt. The worker ignores the pre-emption signal itself (SLURM signals every process
of the step), so only the task decides when it stops.

This module imports submitit at the top; `ltbench.launch` imports it only when the launcher is chosen.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable

from ltbench.errors import LtbenchError
from ltbench.launch import (
    SUBMITTED_FILE,
    WORKER_FILE,
    EventHook,
    Job,
    JobResult,
    mark_failed,
    torchrun_argv,
)
from ltbench.locks import EXIT_LOCKED, lock_is_live
from ltbench.results import atomic_write_bytes, atomic_write_json, run_state

CLUSTERS = ("slurm", "local")
DEFAULT_TIMEOUT_MIN = 24 * 60
# requeues after a time limit (pre-emptions do not count): a long run on a short partition is trained
# in slices, e.g. ImageNet-LT's 100 epochs in 4-hour jobs
MAX_TIMEOUTS = 20
SIGNAL_DELAY_S = 120  # SLURM signals this long before the limit: time to stop the worker and requeue
STOP_GRACE_S = 60.0  # after SIGINT, the worker's time to exit before SIGTERM
POLL_S = 0.5


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
    where = Path(folder) / "%j" if opts.cluster == "slurm" else Path(folder)
    try:
        executor = submitit.AutoExecutor(folder=str(where), cluster=opts.cluster,
                                         slurm_max_num_timeout=MAX_TIMEOUTS, local_max_num_timeout=MAX_TIMEOUTS)
    except RuntimeError as exc:  # SlurmExecutor: "Could not detect srun"
        raise LtbenchError(f"--launcher submitit: no SLURM here ({exc}); use --cluster local to run the "
                           "array on this machine, or --launcher print for another scheduler") from None
    executor.update_parameters(**slurm_parameters(opts))
    return executor


# ----- the array task -----------------------------------------------------------------------------

class RunFailed(RuntimeError):
    """The worker of an array task exited with an error (failed.json says why)."""


def _preemption_signal() -> int:
    # submitit's pre-emption signal (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise)
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), signal.SIGUSR2)


def _child_signals(preempt: int) -> None:
    """In the worker before exec: ignore the pre-emption signal (the task handles it and stops the worker);
    default SIGINT, so that Python turns the task's SIGINT into KeyboardInterrupt even if a batch shell
    started the task with SIGINT ignored."""
    signal.signal(preempt, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _job_id() -> str | None:
    try:
        return str(submitit.JobEnvironment().job_id)
    except Exception:  # not inside a submitit job (a direct call, e.g. in a test)
        return None


def _stop_worker(proc: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """SIGINT first (the trainer unwinds and releases its lock), then SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
            proc.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


class RunTask(Checkpointable):
    """One array element: train one run through its worker command; requeued on pre-emption/timeout."""

    def __init__(self, name: str, argv: Sequence[str], run_dir: Path, log_path: Path,
                 env: dict[str, str] | None = None):
        self.name = name
        self.argv = list(argv)
        self.run_dir = Path(run_dir)
        self.log_path = Path(log_path)
        self.env = dict(env or {})
        self.attempt = 0
        self._proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_proc"] = None  # a live process cannot be pickled (and means nothing in the next attempt)
        return state

    def __call__(self) -> int:
        """0 (trained, or found done), EXIT_LOCKED (another process trains it); raises RunFailed."""
        self.attempt += 1
        job_id = _job_id()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            where = f"submitit job {job_id}, attempt {self.attempt}, {socket.gethostname()}"
            log.write(f"=== {now()} ltbench sweep ({where}): {shlex.join(self.argv)}\n".encode())
            log.flush()
            if lock_is_live(self.run_dir):  # checked here too: under torchrun a lock error is not exit 75
                log.write(b"busy: the run is locked by another process; leaving it to that one\n")
                return EXIT_LOCKED
            env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
            preempt = _preemption_signal()
            proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, preexec_fn=lambda: _child_signals(preempt))
            self._proc = proc
            atomic_write_json(self.run_dir / WORKER_FILE, {"pid": proc.pid, "host": socket.gethostname(),
                                                           "started": now(), "job_id": job_id,
                                                           "task_pid": os.getpid(), "attempt": self.attempt})
            try:
                # poll rather than wait(): the pre-emption handler may need Popen's wait lock (checkpoint)
                while (code := proc.poll()) is None:
                    time.sleep(POLL_S)
            except SystemExit:  # requeued by submitit's signal handler (after checkpoint)
                raise
            except BaseException as exc:  # cancelled, or submitit gave up (timed out too many times)
                _stop_worker(proc)
                if run_state(self.run_dir) != "done":
                    atomic_write_json(self.run_dir / "failed.json", {
                        "reason": f"submitit job {job_id} stopped: {type(exc).__name__}: {exc}".rstrip(": "),
                        "kind": "launcher"})
                raise
            finally:
                _stop_worker(proc)
                self._proc = None
                (self.run_dir / WORKER_FILE).unlink(missing_ok=True)
        if code in (0, EXIT_LOCKED):
            return code
        mark_failed(self.run_dir, code, self.log_path)
        raise RunFailed(f"{self.name}: worker exited with code {code}; log: {self.log_path}")

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on pre-emption or at the time limit: stop the worker, requeue this task."""
        if self._proc is not None:
            _stop_worker(self._proc)
        return super().checkpoint(*args, **kwargs)


# ----- the launcher -------------------------------------------------------------------------------

class SubmititLauncher:
    """Submit jobs as one submitit job array; with `wait`, follow them to the end like the local pool."""

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
        self.submitted: list[submitit.Job] = []

    def _env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.threads is not None:  # torch would use every core of the node, not the task's share
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[var] = os.environ.get(var, str(self.threads))
        return env

    def tasks(self, jobs: Sequence[Job]) -> list[RunTask]:
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
            (_run_dir(job) / "failed.json").unlink(missing_ok=True)
        try:
            sjobs = executor.submit_array(self.tasks(jobs))
        except (OSError, subprocess.SubprocessError, RuntimeError, ValueError) as exc:
            raise LtbenchError(f"submitit could not submit the array: {exc}") from None
        self.submitted = list(sjobs)
        stamp, host = now(), socket.gethostname()
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

    def follow(self, jobs: Sequence[Job], sjobs: Sequence[submitit.Job],
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
    def _returncode(job: Job, sjob: submitit.Job) -> int:
        try:
            value = sjob.result()
        except Exception:  # the task raised or died: the run directory says what happened
            return 0 if run_state(_run_dir(job)) == "done" else 1
        return value if isinstance(value, int) else 0


def _run_dir(job: Job) -> Path:
    return job.run_dir if job.run_dir is not None else job.log_path.parent
