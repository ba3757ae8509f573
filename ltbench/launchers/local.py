"""`--launcher local`: a pool of fresh subprocesses, N at a time, one GPU slot (or none) each.

Every run is its own process (`python -m ltbench run-spec <run dir>/spec.json`), never a forked worker
holding CUDA state, so a crash or an out-of-memory kill costs one run, not the sweep. A worker is pinned
to its slot's GPU through CUDA_VISIBLE_DEVICES. Torch is imported only to count GPUs when none are named.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from io import BufferedWriter
from pathlib import Path
from types import FrameType
from typing import Any

from ltbench.cpu import WORKER_ENV
from ltbench.errors import LtbenchError
from ltbench.files import atomic_write_bytes, atomic_write_json, open_no_follow
from ltbench.launch import EventHook, Job, JobResult
from ltbench.launchers.base import Launcher, LaunchOptions, LaunchSite


def slot_gpus(n_slots: int, gpus: Sequence[str]) -> list[str | None]:
    """GPU of each worker slot: round-robin over `gpus`; None for every slot when there are none."""
    if not gpus:
        return [None] * n_slots
    return [str(gpus[i % len(gpus)]) for i in range(n_slots)]


def visible_gpus(device_count: int, env: dict[str, str] | None = None) -> list[str]:
    """GPU ids a child may be given: the parent's CUDA_VISIBLE_DEVICES entries if set, else 0..n-1."""
    env = dict(os.environ) if env is None else env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "-1"]
        return ids[:device_count] if device_count else []
    return [str(i) for i in range(device_count)]


def gpu_slots(device: str, gpus: str | None) -> tuple[list[str], str]:
    """GPU ids for the worker slots and the --device each worker gets."""
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


class LocalLauncher(Launcher):
    """Run jobs as subprocesses, `jobs` at a time, one GPU (or none) per worker slot."""

    def __init__(self, jobs: int = 1, gpus: Sequence[str] = (), threads_per_job: int | None = None,
                 poll_s: float = 0.1):
        if jobs < 1:
            raise LtbenchError(f"--jobs must be >= 1, got {jobs}")
        self.jobs = jobs
        self.slots = slot_gpus(jobs, list(gpus))
        self.gpus = list(gpus)
        self.threads = threads_per_job
        self.poll_s = poll_s

    @classmethod
    def create(cls, opts: LaunchOptions, site: LaunchSite) -> LocalLauncher:
        gpu_ids, child_device = gpu_slots(site.device, opts.gpus)
        # CPU workers share the machine's cores; a GPU worker keeps torch's default
        threads = None if gpu_ids else max(1, (os.cpu_count() or 1) // max(1, opts.jobs))
        launcher = cls(jobs=opts.jobs, gpus=gpu_ids, threads_per_job=threads)
        launcher.child_device = child_device
        return launcher

    def start_line(self, n_jobs: int) -> str | None:
        where = f"GPU(s) {','.join(self.gpus)}" if self.gpus else f"CPU, {self.threads} thread(s) each"
        return f"running {n_jobs} run(s), {self.jobs} at a time on {where}"

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
        running: dict[int, tuple[subprocess.Popen[bytes], Job, float, BufferedWriter]] = {}
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


# what signal.signal returns and accepts: a handler, SIG_DFL/SIG_IGN (ints), or None (not set from Python)
_SigHandler = Callable[[int, FrameType | None], Any] | int | None


def _raise_on_sigterm() -> _SigHandler:
    """Turn SIGTERM into SweepTerminated for the pool's loop (main thread only; None elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SweepTerminated()

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous: _SigHandler) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _write_pid(job: Job, pid: int) -> None:
    if job.pid_file is not None:
        atomic_write_json(job.pid_file, {"pid": pid, "host": socket.gethostname(),
                                         "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def _clear_pid(job: Job) -> None:
    if job.pid_file is not None:
        Path(job.pid_file).unlink(missing_ok=True)


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
