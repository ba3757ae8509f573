"""`--launcher print`: one shell command per run on stdout, for any other scheduler; runs nothing."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from ltbench.files import atomic_write_bytes
from ltbench.launch import EventHook, Job, JobResult, torchrun_argv
from ltbench.launchers.base import Launcher, LaunchOptions, LaunchSite


class PrintLauncher(Launcher):
    """Print one shell command per job and run nothing.

    The spec.json each command reads is written, so the commands work as printed; the run directories
    then count as "interrupted" (i.e. to be run), never as submitted."""

    reads = frozenset({"gpus_per_run"})
    detached = True
    stdout_is_output = True

    def __init__(self, gpus_per_run: int = 1, stream: TextIO | None = None):
        self.nproc = gpus_per_run
        self.stream = stream

    @classmethod
    def create(cls, opts: LaunchOptions, site: LaunchSite) -> PrintLauncher:
        launcher = cls(gpus_per_run=opts.run_gpus(site.device))
        launcher.child_device = site.device
        return launcher

    def run(self, jobs: Sequence[Job], on_event: EventHook | None = None) -> list[JobResult]:
        out = self.stream or sys.stdout  # looked up now: a test runner may have replaced sys.stdout
        for job in jobs:
            for path, data in job.files.items():
                atomic_write_bytes(path, data)
            out.write(shlex.join(torchrun_argv(job.argv, self.nproc)) + "\n")
        out.flush()
        return [JobResult(job, None) for job in jobs]

    def left_line(self, results: Sequence[JobResult], grid_path: Path) -> str:
        return f"printed {len(results)} command(s), one per run; nothing was run"

