"""Launchers: how a sweep's jobs are run. One module per launcher, all behind `base.Launcher`.

    local     a pool of subprocesses on this machine (`local.LocalLauncher`)
    submitit  one SLURM job array, or submitit's local executor (`submitit_launcher.SubmititLauncher`)
    print     one shell command per run, for any other scheduler (`printer.PrintLauncher`)

A new launcher is a `Launcher` subclass in its own module plus one line in `LAUNCHERS`.
"""

from __future__ import annotations

from ltbench.errors import LtbenchError
from ltbench.launchers.base import Launcher, LaunchOptions, LaunchSite
from ltbench.launchers.local import LocalLauncher
from ltbench.launchers.printer import PrintLauncher
from ltbench.launchers.submitit_launcher import SubmititLauncher

LAUNCHERS: dict[str, type[Launcher]] = {"local": LocalLauncher, "submitit": SubmititLauncher,
                                        "print": PrintLauncher}


def get_launcher_class(name: str) -> type[Launcher]:
    if name not in LAUNCHERS:
        raise LtbenchError(f"unknown launcher {name!r}; choose from {', '.join(LAUNCHERS)}")
    return LAUNCHERS[name]


def check_options(name: str, opts: LaunchOptions, dry_run: bool = False) -> None:
    """Refuse an option the named launcher does not read, naming the launchers that do (a dry run plans
    only, so it takes every option); then the launcher's own checks. An unknown name is reported later,
    by `get_launcher_class`, after the grid file has been read."""
    chosen = LAUNCHERS.get(name)
    if not dry_run:
        for key, flag in opts.given():
            if chosen is None or key not in chosen.reads:
                owners = [n for n, cls in LAUNCHERS.items() if key in cls.reads]
                raise LtbenchError(f"{flag} is an option of --launcher {' or '.join(owners)}")
    if chosen is not None:
        chosen.check(opts)


__all__ = ["LAUNCHERS", "LaunchOptions", "LaunchSite", "Launcher", "LocalLauncher", "PrintLauncher",
           "SubmititLauncher", "check_options", "get_launcher_class"]
