"""A grid's runs on disk and as jobs: plan (what is done, what is left) and the job a launcher runs.

A *job* is one command line plus where its log goes and the files to write just before it starts; the
launchers that run jobs (a local pool, a SLURM array, printed commands) are `ltbench.launchers`. Every run
is its own worker process (`python -m ltbench run-spec <run dir>/spec.json`). A launcher that hands runs
to a scheduler records `submitted.json` (job id, array index) in each run directory, so `state_of` can
tell a queued run from an abandoned one.

No torch import here: planning only reads run directories.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltbench.errors import LtbenchError
from ltbench.files import read_json
from ltbench.locks import lock_is_live, pid_alive
from ltbench.rundir import RunDir, run_state

if TYPE_CHECKING:  # pragma: no cover
    from ltbench.grid import GridRun

# what a sweep does with a run in each state ("running": a live worker of another sweep holds it;
# "submitted": handed to a scheduler whose job has not started it, or is between two attempts)
ACTIONS = {"done": "skip", "running": "skip", "submitted": "skip", "interrupted": "resume", "failed": "rerun",
           "damaged": "rerun", "missing": "run"}
WORKER_FILE = "worker.json"  # {pid, host, started}: present while a local worker trains the run
SUBMITTED_FILE = "submitted.json"  # {launcher, cluster, job_id, array_index, submitted, host}: a scheduler has it


# ----- plan --------------------------------------------------------------------------------------

@dataclass
class PlannedRun:
    run: GridRun
    run_dir: Path
    state: str
    resubmit: bool = False  # submit a "submitted" run again (its job was cancelled or lost)
    failure_kind: str | None = None  # failed.json's "kind" for a failed run ("diverged", "error", ...)
    retry_diverged: bool = False

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def diverged(self) -> bool:
        return self.state == "failed" and self.failure_kind == "diverged"

    @property
    def held_diverged(self) -> bool:
        """A run that diverged is not rerun by default: the same spec (same seed, same data) diverges
        again, so a rerun only spends compute; --retry-diverged asks for it anyway."""
        return self.diverged and not self.retry_diverged

    @property
    def action(self) -> str:
        if self.state == "submitted" and self.resubmit:
            return "resubmit"
        if self.held_diverged:
            return "skip"
        return ACTIONS.get(self.state, "run")


def worker_alive(run_dir: Path) -> bool:
    """True if a process of this host is training the run right now: the run's lock (ltbench.locks)
    or the launcher's WORKER_FILE names a live process."""
    if lock_is_live(run_dir):
        return True
    try:
        info = read_json(Path(run_dir) / WORKER_FILE)
        pid, host = int(info["pid"]), info["host"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return host == socket.gethostname() and pid_alive(pid)


def read_submission(run_dir: Path) -> dict[str, Any] | None:
    """The run's submitted.json (None if there is none or it is unreadable)."""
    try:
        info = read_json(Path(run_dir) / SUBMITTED_FILE)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def submission_pending(run_dir: Path) -> bool:
    """True if a scheduler still holds the run: submitted.json exists, and its job is not known to be gone.

    Only a job of submitit's local executor (its id is a pid on the submitting host) can be checked from
    here without asking the scheduler; a SLURM job counts as pending until the run is done or failed."""
    info = read_submission(run_dir)
    if info is None:
        return False
    if info.get("cluster") == "local" and info.get("host") == socket.gethostname():
        try:
            return pid_alive(int(str(info.get("job_id"))))
        except ValueError:
            return False
    return True


def state_of(run_dir: Path) -> str:
    """run_state, plus "running" for an unfinished run whose worker is alive and "submitted" for a run
    a scheduler holds (queued, or requeued between two attempts)."""
    state = run_state(run_dir)
    if state in ("interrupted", "failed", "damaged") and worker_alive(run_dir):
        return "running"
    if state in ("interrupted", "missing") and submission_pending(run_dir):
        return "submitted"
    return state


def plan(runs: Sequence[GridRun], results_dir: Path, resubmit: bool = False,
         retry_diverged: bool = False) -> list[PlannedRun]:
    """Classify every run of a grid by what is on disk."""
    root = Path(results_dir)
    planned = []
    for r in runs:
        state = state_of(root / r.run_id)
        kind = failure_kind(root / r.run_id) if state == "failed" else None
        planned.append(PlannedRun(r, root / r.run_id, state, resubmit, kind, retry_diverged))
    return planned


def archive_attempt(run_dir: Path) -> Path:
    """Move a failed attempt's checkpoint, metrics and failed.json into attempt-<k>/ inside the run, so
    the run starts over from epoch 0 and nothing of the attempt is lost. (Resuming a diverged run from its
    last checkpoint, which holds the RNG state, would only repeat the divergence.)"""
    return RunDir(run_dir).archive_attempt()


def failure_kind(run_dir: Path) -> str | None:
    """The "kind" of a failed run's failed.json (None if it has none or cannot be read)."""
    return RunDir(run_dir).failure_kind()


def failure_reason(run_dir: Path) -> str | None:
    """The first line of a failed run's recorded reason (None if it has none or cannot be read)."""
    try:
        reason = RunDir(run_dir).read_failure().get("reason")
    except (OSError, ValueError, AttributeError):
        return None
    return str(reason).strip().splitlines()[0] if reason else None


def check_writable(path: Path) -> None:
    """Refuse a results folder this process cannot write (its nearest existing ancestor decides)."""
    probe = Path(path)
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise LtbenchError(f"results dir {path} is not writable")


def trained_by(run_dir: Path, pid: int) -> bool:
    """True if a training session of this host's process `pid` is recorded in the run's sessions.jsonl:
    a worker that found the run already finished by another sweep trained nothing and is not counted."""
    host = socket.gethostname()
    return any(row.get("pid") == pid and row.get("host") == host
               for row in RunDir(run_dir).sessions())


def log_tail(path: Path, lines: int = 5) -> list[str]:
    """The last lines of a log file (empty if there is none)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if ln.strip()][-lines:]


# ----- jobs ------------------------------------------------------------------------------

@dataclass
class Job:
    name: str
    argv: list[str]
    log_path: Path
    files: dict[Path, bytes] = field(default_factory=dict)  # written atomically right before the start
    env: dict[str, str] = field(default_factory=dict)
    pid_file: Path | None = None  # holds {pid, host, started} while the job runs
    run_dir: Path | None = None  # the run directory the job trains (a scheduler's launcher records there)


@dataclass
class JobResult:
    job: Job
    returncode: int | None  # None: never started (the sweep was interrupted first)
    seconds: float = 0.0
    slot: int | None = None
    gpu: str | None = None
    job_id: str | None = None  # the scheduler's id (submitit launcher)
    pid: int | None = None  # the local worker's pid (LocalLauncher): who trained the run (trained_by)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# on_event(kind, job, result or None): kind is "start" and "end" (a launcher that runs the job and sees it
# end), or "submit" (handed to a scheduler; res.job_id is set). A launcher that does not wait for its jobs
# returns results whose returncode is None.
EventHook = Callable[[str, Job, "JobResult | None"], None]


def torchrun_argv(argv: Sequence[str], nproc: int) -> list[str]:
    """A worker command (`python -m ltbench ...`) run as `nproc` torchrun processes on one node, as
    `ltbench run --nproc-per-node` does (ltbench.distributed); unchanged for nproc <= 1."""
    argv = list(argv)
    if nproc <= 1:
        return argv
    if argv[1:3] != ["-m", "ltbench"]:
        raise ValueError(f"not an ltbench worker command: {argv[:3]}")
    return [argv[0], "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *argv[1:]]


def launcher_folder(results_dir: Path, grid_name: str) -> Path:
    """Where a scheduler's launcher keeps its own files for a grid: `<results dir>/../launcher/<grid>/`
    (next to the results, on the same shared file system; never inside run directories)."""
    return Path(results_dir).resolve().parent / "launcher" / grid_name


# ----- from planned runs to jobs -----------------------------------------------------------------

def run_command(spec_path: Path, results_dir: Path, data_dir: Path | None = None, device: str = "auto",
                python: str | None = None) -> list[str]:
    """The worker command line for one run (`ltbench run-spec`)."""
    argv = [python or sys.executable, "-m", "ltbench", "run-spec", str(spec_path),
            "--results-dir", str(results_dir), "--device", device]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    return argv


def make_jobs(planned: Sequence[PlannedRun], results_dir: Path, data_dir: Path | None = None,
              device: str = "auto") -> list[Job]:
    """One job per run that is not done; its spec.json is written when the job starts."""
    jobs = []
    for p in planned:
        if p.action == "skip":
            continue
        spec_path = RunDir(p.run_dir).spec_path
        data = RunDir.spec_bytes(p.run.spec.to_dict())
        argv = run_command(spec_path.resolve(), Path(results_dir).resolve(),
                           data_dir.resolve() if data_dir else None, device)
        jobs.append(Job(p.run_id, argv, p.run_dir / "log.txt", files={spec_path: data},
                        pid_file=p.run_dir / WORKER_FILE, run_dir=p.run_dir))
    return jobs


def mark_failed(run_dir: Path, returncode: int | None, log_path: Path) -> None:
    """Record a worker that died without saying why (e.g. killed) so `status` can show it (never over a
    record the run wrote itself)."""
    RunDir(run_dir).record_failure(f"worker exited with code {returncode}", "worker", when="unrecorded",
                                   log_tail=log_tail(log_path, 20))
