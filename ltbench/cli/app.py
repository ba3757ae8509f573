"""The `ltbench` Typer app, its consoles, error handling and the helpers every command group shares.

The commands themselves live one group per module (`ltbench.cli.run`, `.catalog`, `.sweep`, `.grids`,
`.analysis`) and are registered on `app` by `ltbench.cli`, in the order `ltbench --help` lists them.
Nothing here imports torch: commands import heavy modules inside their function bodies.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from ltbench.errors import LtbenchError

if TYPE_CHECKING:  # pragma: no cover
    from ltbench.grid import Grid

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="ltbench: long-tailed recognition benchmark (SMCL and its baselines).")
list_app = typer.Typer(no_args_is_help=True, help="List methods, data sets, presets.")
data_app = typer.Typer(no_args_is_help=True, help="Fetch data sets (the only commands that download).")
plot_app = typer.Typer(no_args_is_help=True, help="Figures from finished runs.")
app.add_typer(list_app, name="list")
app.add_typer(data_app, name="data")
app.add_typer(plot_app, name="plot")
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}

DEFAULT_REPORTS = Path("results/reports")
RESULTS_HELP = "Default: $LTBENCH_RESULTS or results/runs."


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _state["debug"] = debug


@contextmanager
def user_errors() -> Iterator[None]:
    """One clear line and a non-zero exit for anything a user can cause; tracebacks only with --debug."""
    try:
        yield
    except LtbenchError as exc:
        if _state["debug"]:
            raise
        # the message is text, not rich markup: "[slurm]" in a pip command must survive
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[red]error:[/red] {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
                          highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


# ----- output helpers ----------------------------------------------------------------------------

def say(msg: str) -> None:
    console.print(msg, highlight=False, soft_wrap=True)


def say_err(msg: str) -> None:  # e.g. `--launcher print` keeps stdout for the commands
    err_console.print(msg, highlight=False, soft_wrap=True)


def warn(msg: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {msg}", highlight=False, soft_wrap=True)


# ----- arguments the command groups share ----------------------------------------------------------

def default_results() -> Path:
    from ltbench.rundir import default_results_dir

    return default_results_dir()


def require_results(path: Path) -> Path:
    """A results folder a reading command can read: an existing directory (else one line, exit 2)."""
    if not path.exists():
        raise LtbenchError(f"results folder {path} does not exist (--results-dir or $LTBENCH_RESULTS)")
    if not path.is_dir():
        raise LtbenchError(f"results folder {path} is not a directory")
    return path


def split_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise LtbenchError("--methods expects a comma-separated list of method names")
    return names


def load_grid(file: str, methods: str | None = None) -> Grid:
    """An experiment file (or a shipped grid's name), restricted to `--methods` if given."""
    from ltbench.grid import load_grid as load
    from ltbench.grid import resolve_grid_path

    grid = load(resolve_grid_path(file))
    names = split_names(methods)
    return grid.with_methods(names) if names else grid


# ----- the entry point ---------------------------------------------------------------------------

def main() -> None:
    """The `ltbench` command. Usage errors (unknown option, missing or malformed value) get the same
    one-line `error:` form as every other user error, not Typer's multi-line box."""
    empty = _empty_path_option(sys.argv[1:])
    if empty:
        err_console.print(f"[red]error:[/red] {empty} is empty: give a folder or file, or leave the option out "
                          "for its default (see 'ltbench --help')", highlight=False, soft_wrap=True)
        sys.exit(2)
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        err_console.print("[red]error:[/red] aborted", highlight=False)
        sys.exit(1)
    except Exception as exc:
        if not _is_usage_error(exc):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            # with rich help Typer has printed it already and the message is empty; without, it is the help
            if exc.format_message().strip():  # type: ignore[attr-defined]
                print(exc.format_message(), file=sys.stderr)  # type: ignore[attr-defined]
        else:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
            err_console.print(f"[red]error:[/red] {escape(message)}{escape(hint)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    sys.exit(code if isinstance(code, int) else 0)


# Path options: an empty value would parse as Path('') == Path('.') and write into the working directory.
_PATH_OPTIONS = ("--results-dir", "--data-dir", "--split-dir", "--out", "--cache-dir", "--image-cache")


def _empty_path_option(args: list[str]) -> str | None:
    """The first path option given an empty value (`--results-dir ''` or `--results-dir=`), else None."""
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in _PATH_OPTIONS and ((eq and not value.strip()) or
                                      (not eq and i + 1 < len(args) and not args[i + 1].strip())):
            return name
    return None


def _is_usage_error(exc: Exception) -> bool:
    """Click's exceptions, recognised by interface: Typer vendors Click privately (typer._click), so
    the class cannot be imported from a public module."""
    return isinstance(getattr(exc, "exit_code", None), int) and callable(getattr(exc, "format_message", None))
