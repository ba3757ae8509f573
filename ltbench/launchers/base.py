"""What every launcher is: the options a sweep may give it, and the interface the sweep calls.

A launcher runs a list of jobs (`ltbench.launch.Job`) and reports each start and end. Each launcher
says which of the sweep's options it reads (`reads`), whether it detaches (hands the runs to something
that outlives the sweep), and how it is built from the options; `ltbench.sweep` calls only this
interface and never asks which launcher it has.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ltbench.launch import EventHook, Job, JobResult


@dataclass(frozen=True)
class LaunchOptions:
    """`ltbench sweep`'s launcher options. Fields with a `flag` are refused by a launcher that does not
    read them (`ltbench.launchers.check_options`); `jobs` and `gpus` pick local worker slots."""

    jobs: int = 1
    gpus: str | None = None  # comma-separated GPU ids for the local worker slots
    # in the order their misuse is reported
    partition: str | None = field(default=None, metadata={"flag": "--partition"})
    gpus_per_run: int | None = field(default=None, metadata={"flag": "--gpus-per-run"})
    cpus_per_run: int | None = field(default=None, metadata={"flag": "--cpus-per-run"})
    timeout_min: int | None = field(default=None, metadata={"flag": "--timeout-min"})
    array_parallelism: int | None = field(default=None, metadata={"flag": "--array-parallelism"})
    slurm_args: tuple[str, ...] = field(default=(), metadata={"flag": "--slurm-arg"})
    wait: bool = field(default=False, metadata={"flag": "--wait"})
    cluster: str = field(default="slurm", metadata={"flag": "--cluster"})

    def given(self) -> list[tuple[str, str]]:
        """(field, flag) of every flagged option set to something other than its default."""
        return [(f.name, f.metadata["flag"]) for f in dataclasses.fields(self)
                if "flag" in f.metadata and getattr(self, f.name) != f.default]

    def run_gpus(self, device: str) -> int:
        """GPUs per run of a detached launcher: --gpus-per-run, else one (none with --device cpu)."""
        if self.gpus_per_run is not None:
            return self.gpus_per_run
        return 0 if device == "cpu" else 1


@dataclass(frozen=True)
class LaunchSite:
    """Where a sweep's jobs go: the results folder, the grid's name, the --device asked for, the job count."""

    results_dir: Path
    grid_name: str
    device: str
    n_jobs: int


class Launcher(ABC):
    """Runs jobs; built by `create` from the sweep's options."""

    reads: ClassVar[frozenset[str]] = frozenset()  # LaunchOptions fields with a flag that it reads
    detached: ClassVar[bool] = False  # hands runs to something else (a scheduler, a shell): no worker slots here
    records_submissions: ClassVar[bool] = False  # keeps submitted.json (a scheduler holds the runs)
    stdout_is_output: ClassVar[bool] = False  # its output is stdout (commands): the sweep's messages go to stderr
    child_device: str = "auto"  # the --device each worker gets (`create` sets it)

    @classmethod
    def check(cls, opts: LaunchOptions) -> None:
        """Refuse options that make no sense for this launcher (beyond the flags it does not read)."""
        return None

    @classmethod
    @abstractmethod
    def create(cls, opts: LaunchOptions, site: LaunchSite) -> Launcher:
        """The launcher for these options (may raise LtbenchError)."""

    @abstractmethod
    def run(self, jobs: Sequence[Job], on_event: EventHook | None = None) -> list[JobResult]:
        """Run (or hand over) the jobs; results in the order of `jobs` (returncode None: not waited for)."""

    @property
    def waits(self) -> bool:
        """True if `run` returns only when every job has ended."""
        return not self.detached

    def start_line(self, n_jobs: int) -> str | None:
        """What the sweep says before it hands over the jobs (None: nothing)."""
        return None

    def left_line(self, results: Sequence[JobResult], grid_path: Path) -> str:
        """What the sweep says when it returns without waiting for the runs (a detached launcher)."""
        return f"handed over {len(results)} run(s); follow with `ltbench status {grid_path}`"
