"""Running a grid: plan (what is done, what is left) and launchers (how jobs are executed).

A *job* is one command line plus where its log goes and the files to write just before it starts;
a *launcher* runs a list of jobs and reports each start and end. `LocalLauncher` is a pool of fresh
subprocesses, N at a time, each pinned to a GPU slot through CUDA_VISIBLE_DEVICES when GPUs exist.
Every run is its own process (`python -m ltbench run-spec <run dir>/spec.json`), never a forked worker holding
CUDA state, so a crash or an out-of-memory kill costs one run, not the sweep. Other launchers:
`print` (one shell command per run, for any scheduler; runs nothing) and `submitit` (a SLURM job array,
or submitit's local executor; `ltbench.launch_submitit`, imported only when chosen). A launcher that
hands runs to a scheduler records `submitted.json` (job id, array index) in each run directory, so
`state_of` can tell a queued run from an abandoned one.

No torch import here: planning only reads run directories, and the GPU count is passed in.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ltbench.cpu import WORKER_ENV
from ltbench.errors import LtbenchError
from ltbench.locks import lock_is_live, pid_alive
from ltbench.results import (
    atomic_write_bytes,
    atomic_write_json,
    open_no_follow,
    read_json,
    read_jsonl,
    run_state,
)

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


def read_submission(run_dir: Path) -> dict | None:
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
    run_dir = Path(run_dir)
    k = 1
    while (run_dir / f"attempt-{k}").exists():
        k += 1
    folder = run_dir / f"attempt-{k}"
    folder.mkdir()
    for name in ("last.pt", "metrics.jsonl", "failed.json"):
        if (run_dir / name).exists():
            os.replace(run_dir / name, folder / name)
    return folder


def failure_kind(run_dir: Path) -> str | None:
    """The "kind" of a failed run's failed.json (None if it has none or cannot be read)."""
    try:
        info = read_json(Path(run_dir) / "failed.json")
    except (OSError, ValueError):
        return None
    return info.get("kind") if isinstance(info, dict) else None


def trained_by(run_dir: Path, pid: int) -> bool:
    """True if a training session of this host's process `pid` is recorded in the run's sessions.jsonl:
    a worker that found the run already finished by another sweep trained nothing and is not counted."""
    host = socket.gethostname()
    return any(row.get("pid") == pid and row.get("host") == host
               for row in read_jsonl(Path(run_dir) / "sessions.jsonl"))


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


# ----- jobs and launchers ------------------------------------------------------------------------

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


class Launcher(Protocol):
    def run(self, jobs: Sequence[Job], on_event: EventHook | None = None) -> list[JobResult]: ...


def slot_gpus(n_slots: int, gpus: Sequence[str]) -> list[str | None]:
    """GPU of each worker slot: round-robin over `gpus`; None for every slot when there are none."""
    if not gpus:
        return [None] * n_slots
    return [str(gpus[i % len(gpus)]) for i in range(n_slots)]


def visible_gpus(device_count: int, env: dict[str, str] | None = None) -> list[str]:
    """GPU ids a child may be given: the parent's CUDA_VISIBLE_DEVICES entries if set, else 0..n-1."""
    env = os.environ if env is None else env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "-1"]
        return ids[:device_count] if device_count else []
    return [str(i) for i in range(device_count)]


class LocalLauncher:
    """Run jobs as subprocesses, `jobs` at a time, one GPU (or none) per worker slot."""

    def __init__(self, jobs: int = 1, gpus: Sequence[str] = (), threads_per_job: int | None = None,
                 poll_s: float = 0.1):
        if jobs < 1:
            raise LtbenchError(f"--jobs must be >= 1, got {jobs}")
        self.jobs = jobs
        self.slots = slot_gpus(jobs, list(gpus))
        self.threads = threads_per_job
        self.poll_s = poll_s

    def _env(self, job: Job, gpu: str | None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(job.env)
        env["PYTHONUNBUFFERED"] = "1"
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        else:  # CPU worker: passive OpenMP waiting and heap-kept buffers (ltbench.cpu), unless the user set them
            for var, value in WORKER_ENV.items():
                env.setdefault(var, value)
        if self.threads is not None:
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env.setdefault(var, str(self.threads))
        return env

    def run(self, jobs: Sequence[Job], on_event: EventHook | None = None) -> list[JobResult]:
        queue = list(jobs)
        free = list(range(len(self.slots)))
        running: dict[int, tuple[subprocess.Popen, Job, float, object]] = {}
        results: dict[int, JobResult] = {}
        order = {id(j): i for i, j in enumerate(queue)}

        def emit(kind: str, job: Job, res: JobResult | None) -> None:
            if on_event is not None:
                on_event(kind, job, res)

        previous = _raise_on_sigterm()
        try:
            while queue or running:
                while queue and free:
                    job = queue.pop(0)
                    slot = free.pop(0)
                    for path, data in job.files.items():
                        atomic_write_bytes(path, data)
                    job.log_path.parent.mkdir(parents=True, exist_ok=True)
                    # O_NOFOLLOW: a log.txt planted as a link is refused, its target never appended to
                    log = os.fdopen(open_no_follow(job.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab")
                    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
                    gpu = self.slots[slot]
                    log.write(f"=== {stamp} ltbench sweep: {shlex.join(job.argv)}"
                              f"{'' if gpu is None else f'  (CUDA_VISIBLE_DEVICES={gpu})'}\n".encode())
                    log.flush()
                    try:
                        proc = subprocess.Popen(job.argv, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env=self._env(job, gpu),
                                                start_new_session=True)
                    except OSError as exc:
                        log.write(f"cannot start: {exc}\n".encode())
                        log.close()
                        free.append(slot)
                        res = JobResult(job, 127, 0.0, slot, gpu)
                        results[order[id(job)]] = res
                        emit("end", job, res)
                        continue
                    _write_pid(job, proc.pid)
                    running[slot] = (proc, job, time.monotonic(), log)
                    emit("start", job, JobResult(job, None, 0.0, slot, gpu))
                for slot, (proc, job, t0, log) in list(running.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    log.close()
                    _clear_pid(job)
                    del running[slot]
                    free.append(slot)
                    free.sort()
                    res = JobResult(job, code, time.monotonic() - t0, slot, self.slots[slot], pid=proc.pid)
                    results[order[id(job)]] = res
                    emit("end", job, res)
                if running:
                    time.sleep(self.poll_s)
        except BaseException:  # Ctrl-C, SIGTERM or a failing hook: stop the children we started, by pid
            for proc, job, _t0, log in running.values():
                _stop(proc)
                log.close()
                _clear_pid(job)
            raise
        finally:
            _restore_sigterm(previous)
        return [results.get(i, JobResult(j, None)) for i, j in enumerate(jobs)]


class SweepTerminated(KeyboardInterrupt):
    """SIGTERM reached the sweep (`timeout`, a scheduler's time limit): stop like Ctrl-C.

    The workers run in their own sessions (start_new_session, so a Ctrl-C in the terminal reaches the
    sweep only, which stops them in order); a SIGTERM to the sweep alone would otherwise leave them
    training as orphans with a stale worker.json."""


def _raise_on_sigterm():
    """Turn SIGTERM into SweepTerminated for the pool's loop (main thread only; None elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise SweepTerminated()

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _write_pid(job: Job, pid: int) -> None:
    if job.pid_file is not None:
        atomic_write_json(job.pid_file, {"pid": pid, "host": socket.gethostname(),
                                         "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def _clear_pid(job: Job) -> None:
    if job.pid_file is not None:
        Path(job.pid_file).unlink(missing_ok=True)


def _stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def torchrun_argv(argv: Sequence[str], nproc: int) -> list[str]:
    """A worker command (`python -m ltbench ...`) run as `nproc` torchrun processes on one node, as
    `ltbench run --nproc-per-node` does (ltbench.distributed); unchanged for nproc <= 1."""
    argv = list(argv)
    if nproc <= 1:
        return argv
    if argv[1:3] != ["-m", "ltbench"]:
        raise ValueError(f"not an ltbench worker command: {argv[:3]}")
    return [argv[0], "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *argv[1:]]


class PrintLauncher:
    """Print one shell command per job (for any other scheduler) and run nothing.

    The spec.json each command reads is written, so the commands work as printed; the run directories
    then count as "interrupted" (i.e. to be run), never as submitted."""

    def __init__(self, gpus_per_run: int = 1, stream=None, **_ignored):
        self.nproc = gpus_per_run
        self.stream = stream

    def run(self, jobs: Sequence[Job], on_event: EventHook | None = None) -> list[JobResult]:
        out = self.stream or sys.stdout  # looked up now: a test runner may have replaced sys.stdout
        for job in jobs:
            for path, data in job.files.items():
                atomic_write_bytes(path, data)
            out.write(shlex.join(torchrun_argv(job.argv, self.nproc)) + "\n")
        out.flush()
        return [JobResult(job, None) for job in jobs]


def _submitit_launcher(**options) -> Launcher:
    try:
        import submitit  # noqa: F401  (an optional extra: say how to get it)
    except ImportError:
        raise LtbenchError("submitit is not installed; pip install 'ltbench[slurm]'") from None
    from ltbench.launch_submitit import SubmititLauncher

    return SubmititLauncher(**options)


LAUNCHERS: dict[str, Callable[..., Launcher]] = {"local": LocalLauncher, "submitit": _submitit_launcher,
                                                 "print": PrintLauncher}
DETACHED = ("print", "submitit")  # launchers that hand runs to something else (no local worker slots)


def launcher_folder(results_dir: Path, grid_name: str) -> Path:
    """Where a scheduler's launcher keeps its own files for a grid: `<results dir>/../launcher/<grid>/`
    (next to the results, on the same shared file system; never inside run directories)."""
    return Path(results_dir).resolve().parent / "launcher" / grid_name


def get_launcher_class(name: str) -> Callable[..., Launcher]:
    if name not in LAUNCHERS:
        raise LtbenchError(f"unknown launcher {name!r}; choose from {', '.join(LAUNCHERS)}")
    return LAUNCHERS[name]


def get_launcher(name: str, **options) -> Launcher:
    return get_launcher_class(name)(**options)


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
        spec_path = p.run_dir / "spec.json"
        data = _json_dumps(p.run.spec.to_dict()).encode()
        argv = run_command(spec_path.resolve(), Path(results_dir).resolve(),
                           data_dir.resolve() if data_dir else None, device)
        jobs.append(Job(p.run_id, argv, p.run_dir / "log.txt", files={spec_path: data},
                        pid_file=p.run_dir / WORKER_FILE, run_dir=p.run_dir))
    return jobs


def _json_dumps(obj) -> str:
    import json

    return json.dumps(obj, indent=1, sort_keys=True) + "\n"


def mark_failed(run_dir: Path, returncode: int | None, log_path: Path) -> None:
    """Record a worker that died without saying why (e.g. killed) so `status` can show it."""
    if (run_dir / "final.json").exists() or (run_dir / "failed.json").exists():
        return
    atomic_write_json(run_dir / "failed.json", {
        "reason": f"worker exited with code {returncode}", "kind": "worker",
        "log_tail": log_tail(log_path, 20)})
