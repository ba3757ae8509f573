"""One trainer per run directory: an exclusive `flock` on the run's `lock` file, which names its holder.

Two sweeps pointed at the same results folder must not train the same run twice. The lock is an
advisory `flock(LOCK_EX)` held on an open descriptor for the whole training session, so the kernel
releases it when the holder dies, however it dies: a lock file left behind by a killed process is stale
by construction and simply taken over (no pid guessing, no delete-then-create race). On NFS, Linux maps
`flock` to POSIX byte-range locks, so holders on other hosts are respected too. The file's content
(pid, host, since) is only for messages and `ltbench status`.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError
from ltbench.files import open_no_follow, pid_alive
from ltbench.rundir import RunDir

__all__ = ["EXIT_LOCKED", "RunLocked", "lock_is_live", "pid_alive", "read_lock", "run_lock"]

EXIT_LOCKED = 75  # a worker's exit code when another process holds the run (EX_TEMPFAIL)


class RunLocked(LtbenchError):
    """Another live process is training this run."""


def read_lock(run_dir: Path) -> dict[str, Any] | None:
    """The holder a lock file names (the last one, if the lock is not held now)."""
    try:
        return json.loads(RunDir(run_dir).lock_path.read_text())
    except (OSError, ValueError):
        return None


def lock_is_live(run_dir: Path) -> bool:
    """True if a process holds the run's lock right now (probed with a non-blocking shared flock)."""
    try:
        fd = os.open(RunDir(run_dir).lock_path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return False


def _acquire(path: Path) -> int:
    """An fd holding LOCK_EX on the file now at `path`; RunLocked if a live process holds it."""
    while True:
        fd = open_no_follow(path, os.O_CREAT | os.O_RDWR, 0o644)  # a planted link is refused, never truncated
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_lock(path.parent) or {}
            raise RunLocked(f"{path.parent} is being trained by pid {holder.get('pid', '?')} on "
                            f"{holder.get('host', '?')}") from None
        try:  # the previous holder unlinks the file on release: a lock on that old inode guards nothing
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            return fd
        os.close(fd)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock for the duration of the block."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = RunDir(run_dir).lock_path
    fd = _acquire(path)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)  # while still holding it: a waiter re-checks the inode (above)
        os.close(fd)
