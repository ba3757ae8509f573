"""The `ltbench` command line: thin wrappers that build a spec and call the library."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ltbench.errors import LtbenchError

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="ltbench: long-tailed recognition benchmark (SMCL and its baselines).")
list_app = typer.Typer(no_args_is_help=True, help="List methods, data sets, presets.")
data_app = typer.Typer(no_args_is_help=True, help="Fetch data sets (the only commands that download).")
app.add_typer(list_app, name="list")
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    _state["debug"] = debug


@contextmanager
def user_errors():
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


def _default_results() -> Path:
    from ltbench.results import default_results_dir

    return default_results_dir()


@app.command()
def run(
    method: str = typer.Option(..., "--method", "-m", help="Method name (ltbench list methods)."),
    dataset: str = typer.Option("shapes", "--dataset", "-d", help="Data set (ltbench list datasets)."),
    ratio: str = typer.Option("100", "--ratio", "-r", help="Imbalance ratio n_max / n_min (>= 1)."),
    seed: int = typer.Option(0, "--seed", "-s", help="Training seed (the subset seed is data_seed)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Shortcut for --set epochs=N."),
    preset: str = typer.Option("paper", "--preset", help="paper (reference recipe), quick or cpu."),
    set_: list[str] = typer.Option([], "--set", help="Override a setting or hyperparameter: key=value."),
    precision: str | None = typer.Option(None, "--precision", help="fp32 or bf16 (shortcut for --set)."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help="Default: $LTBENCH_RESULTS or results/runs."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Default: $LTBENCH_DATA or ~/.cache/ltbench."),
    download: bool = typer.Option(False, "--download", help="Download the data set if it is missing."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    force: bool = typer.Option(False, "--force", help="Retrain even if the run is done."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    split_dir: Path | None = typer.Option(None, "--split-dir", help="ImageNet-LT split lists. Default: "
                                          "$LTBENCH_IMAGENET_LT_SPLITS, else <data-dir>/ImageNet_LT."),
    nproc_per_node: int = typer.Option(1, "--nproc-per-node", help="Train one run on N processes (GPUs) "
                                       "with torchrun + DistributedDataParallel."),
    workers: int | None = typer.Option(None, "--workers", help="Image decode workers per process "
                                       "(file-backed data; default: CPUs / processes, at most 8)."),
    image_cache: Path | None = typer.Option(None, "--image-cache", help="Read pre-resized images from this "
                                            "folder (built by `ltbench data cache`)."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also write the per-epoch metrics as "
                                     "TensorBoard scalars in <run dir>/tensorboard (needs tensorboard)."),
) -> None:
    """Train one run (or resume it, or do nothing if it is done)."""
    with user_errors():
        from ltbench.config import build_spec, parse_set_pairs
        from ltbench.distributed import env_rank, torchrun_command
        from ltbench.train import RuntimeOptions, train

        if nproc_per_node < 1:
            raise LtbenchError(f"--nproc-per-node must be >= 1, got {nproc_per_node}")
        if nproc_per_node > 1 and "WORLD_SIZE" not in os.environ:  # re-launch this command under torchrun
            import subprocess

            raise typer.Exit(subprocess.call(torchrun_command(sys.argv[1:], nproc_per_node)))

        overrides = parse_set_pairs(set_)
        if epochs is not None:
            overrides["epochs"] = epochs
        if precision is not None:
            overrides["precision"] = precision
        spec = build_spec(method, dataset, ratio, seed, preset, overrides)
        runtime = RuntimeOptions(results_dir=results_dir or _default_results(), data_dir=data_dir,
                                 download=download, device=device, force=force, compile=compile_,
                                 progress=not quiet and sys.stderr.isatty(), split_dir=split_dir,
                                 workers=workers, image_cache=image_cache,
                                 tracker="tensorboard" if tensorboard else None)
        from ltbench.tracking import check_available

        check_available(runtime.tracker)
        from ltbench.results import run_state

        if force or run_state(runtime.results_dir / spec.run_id) != "done":  # a finished run reads only
            _check_writable(runtime.results_dir)
        final = train(spec, runtime)
        if env_rank() == 0:  # under torchrun only rank 0 reports
            _print_final(spec.run_id, runtime.results_dir, final)


def _check_writable(path: Path) -> None:
    import os

    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise LtbenchError(f"results dir {path} is not writable")


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def _print_final(run_id: str, results_dir: Path, final: dict) -> None:
    table = Table(title=run_id, show_header=True)
    for col in ("top1", "many", "medium", "few", "best (oracle)"):
        table.add_column(col, justify="right")
    table.add_row(_fmt(final["top1"]), _fmt(final["many"]), _fmt(final["medium"]), _fmt(final["few"]),
                  f"{_fmt(final['best_top1'])} @ {final['best_epoch']}")
    console.print(table)
    console.print(f"run directory: {Path(results_dir) / run_id}", highlight=False)


@list_app.command("methods")
def list_methods_cmd() -> None:
    """Registered methods with a one-line description."""
    from ltbench.registry import list_methods

    table = Table("method", "description")
    for entry in list_methods():
        table.add_row(entry.name, entry.description)
    console.print(table)


@list_app.command("datasets")
def list_datasets_cmd() -> None:
    """Data sets, their size and where they come from."""
    from ltbench.data import DATASETS

    table = Table("dataset", "classes", "per class", "image", "description")
    for info in DATASETS.values():
        table.add_row(info.name, str(info.num_classes), str(info.max_per_class),
                      f"{info.channels}x{info.size}x{info.size}", info.description)
    console.print(table)


@list_app.command("presets")
def list_presets_cmd() -> None:
    """Training presets per data-set family."""
    from ltbench.config import PRESETS, TrainSettings

    table = Table("preset", "family", "settings (over the defaults)")
    table.add_row("(defaults)", "", json.dumps({k: v for k, v in TrainSettings().__dict__.items()}))
    for name, fams in PRESETS.items():
        for fam, values in fams.items():
            table.add_row(name, fam, json.dumps(values))
    console.print(table)


@app.command()
def splits(
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="Data set whose split to print."),
    ratio: str = typer.Option("100", "--ratio", "-r"),
    profile: str = typer.Option("exp", "--profile", help="exp or step."),
    max_per_class: int | None = typer.Option(None, "--max-per-class", help="Head size (default: the full class)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    labels: Path | None = typer.Option(None, "--labels", help="A .npy label array to cut a subset from."),
    seed: int = typer.Option(0, "--seed", help="Subset seed (data_seed) for --labels."),
    out: Path | None = typer.Option(None, "--out", help="Write the subset indices (.npy) for --labels."),
    split_dir: Path | None = typer.Option(None, "--split-dir", help="Fixed splits (imagenet-lt): the folder "
                                          "of the list files or train_class_counts.json."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="For the default --split-dir."),
    class_order: int = typer.Option(0, "--class-order", help="Which classes are head and tail (0: identity; "
                                    "the runs' class_order setting)."),
) -> None:
    """Per-class counts, totals and shot groups of a long-tailed split (no images needed)."""
    with user_errors():
        from ltbench.splits import export_indices, split_summary

        if labels is not None:
            n = export_indices(labels, ratio, seed, profile, max_per_class, out)
            console.print(f"{n} indices written to {out}", highlight=False)
            return
        if dataset is None:
            raise LtbenchError("splits needs --dataset (or --labels FILE.npy --out FILE.npy)")
        summary = split_summary(dataset, ratio, profile, max_per_class, split_dir=split_dir, data_dir=data_dir,
                                class_order=class_order)
        if as_json:
            typer.echo(json.dumps(summary, indent=1))
            return
        counts = summary["counts"]
        console.print(f"{summary['dataset']} ratio {summary['ratio']}: {summary['total']} images, "
                      f"{len(counts)} classes, {max(counts)} .. {min(counts)} per class", highlight=False)
        table = Table("rule", "many", "medium", "few")
        for rule, sizes in summary["group_sizes"].items():
            table.add_row(rule, *(str(sizes[g]) for g in ("many", "medium", "few")))
        console.print(table)
        console.print("counts: " + ", ".join(map(str, summary["counts"])), highlight=False)
        if class_order:
            console.print(f"class order {class_order}, head to tail: " + ", ".join(map(str, summary["permutation"])),
                          highlight=False)


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument(..., help="cifar10, cifar100 or fashion-mnist."),
    data_dir: Path | None = typer.Option(None, "--data-dir"),
) -> None:
    """Download a data set with torchvision into the data dir."""
    with user_errors():
        from ltbench.data.datasets import default_data_dir, get_dataset

        info = get_dataset(name)
        if name == "shapes":
            raise LtbenchError("shapes is generated on the fly; nothing to fetch")
        root = data_dir or default_data_dir()
        info.load(root, True)
        console.print(f"{name} is ready under {root}", highlight=False)


@data_app.command("cache")
def data_cache(
    name: str = typer.Argument(..., help="A file-backed data set (imagenet-lt)."),
    cache_dir: Path = typer.Option(..., "--cache-dir", help="Where to write the uint8 copies."),
    image_size: int = typer.Option(224, "--image-size", help="View size of the runs that will read it."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="The image root (ILSVRC-2012)."),
    split_dir: Path | None = typer.Option(None, "--split-dir", help="The split lists."),
    workers: int = typer.Option(8, "--workers", help="Decode processes."),
    val: bool = typer.Option(False, "--val", help="Also cache the val list (for val_select runs)."),
) -> None:
    """Decode a file-backed data set once into pre-resized uint8 files (train at base size, test cropped)."""
    with user_errors():
        from ltbench.data.datasets import build_bundle, get_dataset
        from ltbench.sources import base_size, build_cache

        info = get_dataset(name)
        if info.bundle is None:
            raise LtbenchError(f"{name} is held in memory; only file-backed data sets (imagenet-lt) are cached")
        bundle = build_bundle(name, info.fixed_ratio or 1, data_dir=data_dir, split_dir=split_dir, with_val=val)
        base = base_size(image_size)
        for split, files in bundle.files.items():
            out = base if split == "train" else image_size
            path = build_cache(files, base, out, cache_dir, workers)
            console.print(f"{split}: {len(files)} images -> {path}", highlight=False)


_DOCTOR_MARKS = {"ok": "[green]✓[/green]", "fail": "[red]✗[/red]", "warn": "[yellow]![/yellow]",
                 "info": "·", "skip": "–"}


@app.command()
def doctor(
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]: the device to check for."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Default: $LTBENCH_DATA or ~/.cache/ltbench."),
    results_dir: Path | None = typer.Option(None, "--results-dir", help="Default: $LTBENCH_RESULTS or results/runs."),
    compile_: bool = typer.Option(False, "--compile", help="Also try torch.compile (a cold compile takes a while)."),
    compile_timeout: float = typer.Option(120.0, "--compile-timeout", help="Seconds allowed for --compile."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Is this machine ready? Versions, device, bf16/TF32, compile, OpenCV, data, results folder, threads.
    Exit 0 when everything required for the device is there, 1 otherwise."""
    from ltbench.doctor import DoctorOptions, ready, report, run_checks, target_device

    with user_errors():
        try:
            target = target_device(device)
        except ValueError as exc:
            raise LtbenchError(str(exc)) from None
        checks = run_checks(DoctorOptions(target, data_dir, results_dir, compile_, compile_timeout))
    if as_json:
        typer.echo(json.dumps(report(checks, target), indent=1))
    else:
        for c in checks:
            hint = f"  [dim]→ {escape(c.hint)}[/dim]" if c.hint and c.status != "ok" else ""
            console.print(f"{_DOCTOR_MARKS.get(c.status, '?')} {escape(c.name)}: {escape(c.value)}{hint}",
                          highlight=False, soft_wrap=True)
        verdict = "ready" if ready(checks) else "NOT ready (see ✗ above)"
        console.print(f"device {target}: {verdict}", highlight=False)
    raise typer.Exit(0 if ready(checks) else 1)


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
            if exc.format_message().strip():
                print(exc.format_message(), file=sys.stderr)
        else:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = " ".join(exc.format_message().split())
            err_console.print(f"[red]error:[/red] {escape(message)}{escape(hint)}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
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


# Sub-command modules register themselves on `app`; imported last because they import `app` from here.
from ltbench import cli_bench  # noqa: E402,F401,I001  (registers bench)
from ltbench import cli_grid  # noqa: E402,F401  (registers sweep/status/table/ablate/plot/demo)
from ltbench import cli_analyze  # noqa: E402,F401  (registers analyze)

if __name__ == "__main__":
    main()
