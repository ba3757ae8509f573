"""One trainer per run directory: an exclusive lock file naming its holder (pid, host).

Two sweeps pointed at the same results folder must not train the same run twice. The lock is
created with O_CREAT | O_EXCL (atomic on local and NFSv3+ file systems). A lock whose holder is a
dead process on this host is stale and is taken over; a lock held from another host is respected
(its liveness cannot be checked from here) and reported with how to clear it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from ltbench.errors import LtbenchError

LOCK_NAME = "lock"
EXIT_LOCKED = 75  # a worker's exit code when another process holds the run (EX_TEMPFAIL)


class RunLocked(LtbenchError):
    """Another live process is training this run."""


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists on this host (or may: it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(run_dir: Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None


def lock_is_live(run_dir: Path) -> bool:
    """True if a lock exists and its holder may still be running."""
    path = Path(run_dir) / LOCK_NAME
    if not path.exists():
        return False
    holder = read_lock(run_dir)
    if holder is None:  # being written right now, or damaged: treat as live unless old
        return time.time() - path.stat().st_mtime < 60
    if holder.get("host") != socket.gethostname():
        return True
    return pid_alive(int(holder.get("pid", -1)))


def _try_create(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}, fh)
    return True


@contextmanager
def run_lock(run_dir: Path):
    """Hold the run directory's lock for the duration of the block."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    if not _try_create(path):
        if lock_is_live(run_dir):
            holder = read_lock(run_dir) or {}
            raise RunLocked(f"{run_dir} is being trained by pid {holder.get('pid', '?')} on "
                            f"{holder.get('host', '?')}; if that process is gone, delete {path}")
        path.unlink(missing_ok=True)  # stale: its holder died
        if not _try_create(path):
            raise RunLocked(f"{run_dir} was claimed by another process just now")
    try:
        yield
    finally:
        holder = read_lock(run_dir)
        if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            path.unlink(missing_ok=True)
