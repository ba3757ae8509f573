"""`ltbench bench`: the performance benchmark (see `ltbench.bench` and docs/performance.md)."""

from __future__ import annotations

import json
import sys

import typer
from rich.table import Table

from ltbench.cli import app, console, user_errors

SPREAD = "\\[min, max]"  # escaped: rich would read [min, max] as markup
_WHAT = {
    "bare": "bare model step (pre-staged tensors)",
    "full": "full trainer step",
    "input": "input path per batch",
    "saliency": "saliency per batch",
}


@app.command()
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
        from ltbench.errors import LtbenchError

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


def _spread(spread) -> str:
    if spread is None:
        return ""
    return "[" + ", ".join(f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" for v in spread) + "]"


def print_tables(result: dict) -> None:
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
