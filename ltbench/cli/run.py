"""Commands that train or check one run: run, run-spec (the sweep's worker), doctor and bench."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from ltbench.cli.app import console, default_results, err_console, say, user_errors
from ltbench.errors import LtbenchError


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
        runtime = RuntimeOptions(results_dir=results_dir or default_results(), data_dir=data_dir,
                                 download=download, device=device, force=force, compile=compile_,
                                 progress=not quiet and sys.stderr.isatty(), split_dir=split_dir,
                                 workers=workers, image_cache=image_cache,
                                 tracker="tensorboard" if tensorboard else None)
        from ltbench.tracking import check_available

        check_available(runtime.tracker)
        from ltbench.rundir import run_state

        if force or run_state(runtime.results_dir / spec.run_id) != "done":  # a finished run reads only
            from ltbench.launch import check_writable

            check_writable(runtime.results_dir)
        final = train(spec, runtime)
        if env_rank() == 0:  # under torchrun only rank 0 reports
            print_final(spec.run_id, runtime.results_dir, final)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def print_final(run_id: str, results_dir: Path, final: dict[str, Any]) -> None:
    table = Table(title=run_id, show_header=True)
    for col in ("top1", "many", "medium", "few", "best (oracle)"):
        table.add_column(col, justify="right")
    table.add_row(_fmt(final["top1"]), _fmt(final["many"]), _fmt(final["medium"]), _fmt(final["few"]),
                  f"{_fmt(final['best_top1'])} @ {final['best_epoch']}")
    console.print(table)
    console.print(f"run directory: {Path(results_dir) / run_id}", highlight=False)



# ----- the sweep's worker: one run from its spec.json ------------------------------------------

def run_spec(
    spec_path: Path = typer.Argument(..., help="A run directory's spec.json."),
    results_dir: Path | None = typer.Option(None, "--results-dir",
                                            help="Default: three levels above the spec."),
    data_dir: Path | None = typer.Option(None, "--data-dir"),
    device: str = typer.Option("auto", "--device"),
    download: bool = typer.Option(False, "--download"),
) -> None:
    """Train the run whose spec.json is given (what `ltbench sweep` runs in each worker process)."""
    with user_errors():
        from ltbench.config import RunSpec
        from ltbench.files import read_json
        from ltbench.locks import EXIT_LOCKED, RunLocked
        from ltbench.rundir import RunDir
        from ltbench.train import RuntimeOptions, train

        try:
            spec = RunSpec.from_dict(read_json(spec_path))
        except FileNotFoundError:
            raise LtbenchError(f"{spec_path} does not exist") from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise LtbenchError(f"{spec_path} is not a readable ltbench spec ({exc})") from None
        run_dir = spec_path.resolve().parent
        results_dir = (results_dir or run_dir.parent.parent.parent).resolve()
        if run_dir != results_dir / spec.run_id:
            raise LtbenchError(f"{spec_path} does not belong to {results_dir} (its run id is {spec.run_id})")
        say(f"run-spec {spec.run_id} (pid {os.getpid()})")
        runtime = RuntimeOptions(results_dir=results_dir, data_dir=data_dir, download=download, device=device,
                                 progress=False)
        try:
            final = train(spec, runtime)
        except RunLocked as exc:  # another sweep is training it: not a failure of this run
            err_console.print(f"busy: {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_LOCKED) from None
        except LtbenchError as exc:  # make the reason visible to `ltbench status`
            # (failures inside training are recorded by the trainer under the run's lock; these came before)
            if not getattr(exc, "failure_recorded", False) and int(os.environ.get("RANK", "0")) == 0:
                RunDir(run_dir).record_failure(str(exc), "error", when="unrecorded")
            raise
        print_final(spec.run_id, results_dir, final)


# ----- doctor ------------------------------------------------------------------------------------

_DOCTOR_MARKS = {"ok": "[green]✓[/green]", "fail": "[red]✗[/red]", "warn": "[yellow]![/yellow]",
                 "info": "·", "skip": "–"}


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


# ----- bench -------------------------------------------------------------------------------------

SPREAD = "\\[min, max]"  # escaped: rich would read [min, max] as markup
_WHAT = {
    "bare": "bare model step (pre-staged tensors)",
    "full": "full trainer step",
    "input": "input path per batch",
    "saliency": "saliency per batch",
}


def bench(
    method: str = typer.Option("erm", "--method", "-m", help="Method to measure (ERM is always measured too)."),
    dataset: str = typer.Option("shapes", "--dataset", "-d", help="Data set (shapes needs no download)."),
    ratio: str = typer.Option("100", "--ratio", "-r", help="Imbalance ratio."),
    steps: int = typer.Option(3, "--steps", help="Timed model steps per variant per round."),
    rounds: int = typer.Option(5, "--rounds", help="Interleaved rounds (median and [min, max] over rounds)."),
    batch_size: int | None = typer.Option(128, "--batch-size", "-b",
                                          help="Batch size for every case (0: the method's recipe)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    precision: str | None = typer.Option(None, "--precision", help="fp32 or bf16 (default: the spec's)."),
    channels_last: bool | None = typer.Option(None, "--channels-last/--no-channels-last",
                                              help="Memory layout (default: channels-last on CUDA only)."),
    compile_: bool = typer.Option(False, "--compile", help="Also time a torch.compile'd ERM step (cold: ~60 s)."),
    threads: int | None = typer.Option(None, "--threads", help="torch intra-op threads (default: torch's)."),
    workers: str = typer.Option("0,2", "--workers", help="DataLoader workers of the classic input path."),
    malloc_heap: bool = typer.Option(False, "--malloc-heap",
                                     help="glibc: keep large CPU buffers on the heap (allocator experiment)."),
    preset: str = typer.Option("paper", "--preset", help="paper (ResNet-32), quick or cpu."),
    set_: list[str] = typer.Option([], "--set", help="Override a setting or hyperparameter: key=value."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Where a training step's time goes: bare vs full step, input path, saliency, precision, layout."""
    with user_errors():
        from ltbench.bench import BenchOptions, run_bench
        from ltbench.config import parse_set_pairs

        try:
            worker_list = tuple(int(w) for w in workers.split(",") if w.strip())
        except ValueError:
            raise LtbenchError(f"--workers expects comma-separated integers, got {workers!r}") from None
        opts = BenchOptions(method=method, dataset=dataset, ratio=ratio, steps=steps, rounds=rounds,
                            batch_size=batch_size or None, device=device, precision=precision,
                            channels_last=channels_last, compile=compile_, overrides=parse_set_pairs(set_),
                            preset=preset, threads=threads, workers=worker_list, malloc_heap=malloc_heap)
        progress = None if as_json or not sys.stderr.isatty() else (lambda msg: console.print(f"[dim]{msg}[/dim]"))
        result = run_bench(opts, progress)
        if as_json:
            typer.echo(json.dumps(result, indent=1))
            return
        print_tables(result)


def _ms(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def _spread(spread: Sequence[float] | None) -> str:
    if spread is None:
        return ""
    return "[" + ", ".join(f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" for v in spread) + "]"


def print_tables(result: dict[str, Any]) -> None:
    cfg = result["config"]
    layout = "channels-last" if cfg["channels_last"] else "contiguous"
    console.print(f"{cfg['method']} on {cfg['dataset']} r{cfg['ratio']:g}: {cfg['backbone']}, "
                  f"batch {cfg['batch_size']}, {cfg['precision']}, {layout}, "
                  f"{cfg['device']} x {cfg['threads']} threads; {cfg['rounds']} rounds x {cfg['steps']} steps "
                  f"({cfg['cheap_reps']} calls for the input path and saliency)", highlight=False)

    times = Table("variant", "what", "median ms", SPREAD, title="time per call (interleaved rounds)")
    for name, med in result["medians_ms"].items():
        kind = name.split(":", 1)[0]
        times.add_row(name, _WHAT.get(kind, ""), _ms(med), _spread(result["spreads_ms"][name]))
    console.print(times)

    steps = Table("step", "images", "full ms", "bare ms", "full / bare", "vs ERM", "predicted", "bare vs ERM",
                  title="training steps (ratios per round)")
    for label, e in result["steps"].items():
        steps.add_row(label, str(e["images_per_step"]), _ms(e["full_ms"]), _ms(e["bare_ms"]),
                      f"{e['overhead_ratio']:.3f} {_spread(e['overhead_ratio_spread'])}",
                      f"{e['step_vs_erm']:.2f} {_spread(e['step_vs_erm_spread'])}",
                      f"{e['predicted_step_vs_erm']:g}",
                      f"{e['bare_vs_erm']:.2f} {_spread(e['bare_vs_erm_spread'])}")
    console.print(steps)

    ratios = Table("ratio", "median", SPREAD, title="other ratios (per round)")
    rows = [("pipeline_speedup", f"classic PIL (workers={result.get('pipeline_reference_workers')}) / ours")]
    rows += [(k, k.replace("pipeline_speedup_", "classic PIL ").replace("w", "workers=") + " / ours")
             for k in result if k.startswith("pipeline_speedup_w") and not k.endswith("_spread")]
    rows += [("bf16_speedup", "fp32 / bf16 autocast (ERM bare step)"),
             ("channels_last_speedup", "contiguous / channels-last (ERM bare step)"),
             ("bf16_channels_last_speedup", "fp32 contiguous / bf16 channels-last (ERM bare step)"),
             ("compile_speedup", "eager / compiled (ERM bare step)"),
             ("late_epoch_vs_erm", f"late-epoch step mix (p = {result.get('late_epoch_step_mix')}) / ERM")]
    for key, label in rows:
        if result.get(key) is not None:
            ratios.add_row(label, f"{result[key]:.3g}", _spread(result.get(f"{key}_spread")))
    for op, share in result["saliency_share_of_erm"].items():
        ratios.add_row(f"saliency {op} / ERM step ({_ms(result['saliency_ms'][op])} ms)", f"{share:.3%}",
                       _spread([f * 100 for f in result["saliency_share_of_erm_spread"][op]]) + " %")
    console.print(ratios)

    targets = Table("target", "measured", SPREAD, "limit", "met", title="issue targets")
    for t in result["targets"]:
        met = "[green]yes[/green]" if t["met_every_round"] else ("[yellow]median[/yellow]" if t["met"]
                                                                   else "[red]no[/red]")
        targets.add_row(t["target"], f"{t['value']:.3g}", _spread(t["spread"]), t["limit"], met)
    console.print(targets)
