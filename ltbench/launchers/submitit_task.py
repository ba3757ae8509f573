"""The array task of `--launcher submitit`: one run's worker, requeued on pre-emption or at a time limit.

Every array task is a `RunTask`. It runs the worker the local pool runs (`python -m ltbench run-spec
<run dir>/spec.json`, under torchrun when a run has several GPUs) as a child process whose output is
appended to the run's log.txt, so a run trained on the cluster leaves the same run directory as one
trained by `ltbench run`.

Pre-emption and time limits: SLURM signals the task (USR2, `signal_delay_s` before the limit); submitit
calls `RunTask.checkpoint`, which stops the worker with SIGINT (the trainer releases the run's lock on the
way out and its last.pt is the checkpoint) and returns the same task, which submitit requeues; the next
attempt resumes from last.pt. The worker ignores the pre-emption signal itself (SLURM signals every process
of the step), so only the task decides when it stops. See submitit's docs/checkpointing.md
(https://github.com/facebookincubator/submitit).

This module imports submitit at the top; `ltbench.launchers.submitit_launcher` imports it only when a
sweep submits.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable

from ltbench.files import atomic_write_json
from ltbench.launch import WORKER_FILE, mark_failed
from ltbench.locks import EXIT_LOCKED, lock_is_live
from ltbench.rundir import RunDir

STOP_GRACE_S = 60.0  # after SIGINT, the worker's time to exit before SIGTERM
POLL_S = 0.5


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


def _stop_worker(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
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
        self._proc: subprocess.Popen[bytes] | None = None

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
                RunDir(self.run_dir).record_failure(
                    f"submitit job {job_id} stopped: {type(exc).__name__}: {exc}".rstrip(": "), "launcher",
                    when="unfinished")
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
