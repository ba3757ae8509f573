"""The JSON result of `ltbench bench`: medians and spreads per variant, per-round ratios, the targets.

Every ratio is computed per round (both sides from the same round), then summarised as the median
with [min, max] over rounds (`ltbench.bench.timing.summarize`). The keys are documented in
docs/performance.md and read back by `ltbench.estimate` (``config`` and ``steps.<case>.full_ms``), so
they do not change.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from ltbench.bench.cases import Case
from ltbench.bench.options import BenchOptions
from ltbench.bench.timing import summarize
from ltbench.bench.variants import ErmLayout

# (key in the result, comparison, limit, description) -- the targets, shown, never asserted
TARGETS: tuple[tuple[str, str, float, str], ...] = (
    ("erm_overhead_ratio", "<=", 1.05, "ERM full step <= 1.05 x bare model step"),
    ("pipeline_speedup", ">=", 10.0, "input path >= 10 x the classic PIL path (DataLoader, workers=0)"),
    ("saliency_share_default", "<=", 0.05, "saliency per batch <= 5 % of the ERM step (default operator)"),
    ("bf16_speedup", ">=", 1.8, "bf16 autocast >= 1.8 x fp32 (ERM step)"),
)
MULTI_VIEW_LIMIT = 1.10  # a method's step <= 1.10 x (predicted images forwarded x ERM step)


def _per_round(samples: dict[str, list[float]], num: str, den: str, scale: float = 1.0) -> list[float]:
    return [scale * a / b for a, b in zip(samples[num], samples[den], strict=True)]


def _put(out: dict[str, Any], key: str, values: Sequence[float], digits: int = 4) -> None:
    med, lo, hi = summarize(values)
    out[key] = round(med, digits)
    out[f"{key}_spread"] = [round(lo, digits), round(hi, digits)]


def _step_entry(case: Case, samples: dict[str, list[float]], medians: dict[str, float],
                erm_images: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"images_per_step": case.images_per_step,
                             "full_ms": medians[f"full:{case.name}"], "bare_ms": medians[f"bare:{case.name}"]}
    _put(entry, "overhead_ratio", _per_round(samples, f"full:{case.name}", f"bare:{case.name}"))
    _put(entry, "step_vs_erm", _per_round(samples, f"full:{case.name}", "full:erm"))
    _put(entry, "bare_vs_erm", _per_round(samples, f"bare:{case.name}", "bare:erm"))
    # a no-grad forward costs about a third of a training forward + backward (backward ~ 2 forwards)
    pred = (case.images_per_step + case.nograd_images / 3) / erm_images
    entry["nograd_images_per_step"] = case.nograd_images
    entry["predicted_step_vs_erm"] = round(pred, 4)
    _put(entry, "vs_prediction", _per_round(samples, f"full:{case.name}", "full:erm", 1.0 / pred))
    return entry


def _late_epoch(out: dict[str, Any], method_cases: Sequence[Case], samples: dict[str, list[float]]) -> None:
    """A late epoch's steps mix the method's step branches by their `late_share` (Method.step_branches);
    ``late_epoch_step_mix`` is the share of the first (costly) branch, e.g. SMCL's mask_prob."""
    shares = [c.late_share for c in method_cases if c.late_share is not None]
    if len(method_cases) < 2 or len(shares) < len(method_cases):
        return
    names = [f"full:{c.name}" for c in method_cases]
    mix = [sum(s * samples[n][r] for s, n in zip(shares, names, strict=True)) / e
           for r, e in enumerate(samples["full:erm"])]
    _put(out, "late_epoch_vs_erm", mix)
    out["late_epoch_step_mix"] = shares[0]


def build_result(opts: BenchOptions, spec: Any, cases: Sequence[Case], method_cases: Sequence[Case],
                 samples: dict[str, list[float]], device: torch.device, erm: ErmLayout, default_op: str,
                 view_names: Sequence[str], n_train: int) -> dict[str, Any]:
    """The JSON-able result from the per-round samples (see the package docstring for the keys)."""
    out: dict[str, Any] = {
        "config": {
            "method": opts.method, "dataset": opts.dataset, "ratio": spec.ratio, "train_images": n_train,
            "backbone": spec.train.backbone, "batch_size": spec.train.batch_size, "precision": erm.precision,
            "channels_last": cases[0].trainer.channels_last, "compile": opts.compile, "device": str(device),
            "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "torch": torch.__version__, "steps": opts.steps,
            "rounds": opts.rounds, "cheap_reps": max(opts.steps, opts.cheap_reps), "views": list(view_names),
            "workers": list(opts.workers),
        },
    }
    medians, spreads = {}, {}
    for name, vals in samples.items():
        med, lo, hi = summarize(vals)
        medians[name], spreads[name] = round(med, 3), [round(lo, 3), round(hi, 3)]

    steps = {case.name: _step_entry(case, samples, medians, cases[0].images_per_step) for case in cases}
    out["steps"] = steps
    primary = steps[method_cases[0].name]
    for key in ("overhead_ratio", "step_vs_erm"):
        out[key], out[f"{key}_spread"] = primary[key], primary[f"{key}_spread"]
    out["predicted_step_vs_erm"] = primary["predicted_step_vs_erm"]
    out["erm_overhead_ratio"] = steps["erm"]["overhead_ratio"]
    out["erm_overhead_ratio_spread"] = steps["erm"]["overhead_ratio_spread"]
    _late_epoch(out, method_cases, samples)

    workers = list(opts.workers)
    if workers:
        _put(out, "pipeline_speedup", _per_round(samples, f"input:classic-w{workers[0]}", "input:ours"), 3)
        out["pipeline_reference_workers"] = workers[0]
        for w in workers[1:]:
            _put(out, f"pipeline_speedup_w{w}", _per_round(samples, f"input:classic-w{w}", "input:ours"), 3)
    out["pipeline_ms"] = {name.split(":", 1)[1]: medians[name] for name in medians if name.startswith("input:")}

    _saliency(out, samples, medians, spreads, default_op)
    _erm_speedups(out, samples, erm)
    out["medians_ms"], out["spreads_ms"] = medians, spreads
    out["targets"] = targets_report(out)
    return out


def _saliency(out: dict[str, Any], samples: dict[str, list[float]], medians: dict[str, float],
              spreads: dict[str, list[float]], default_op: str) -> None:
    out["saliency_ms"], out["saliency_ms_spread"] = {}, {}
    out["saliency_share_of_erm"], out["saliency_share_of_erm_spread"] = {}, {}
    for name in samples:
        if name.startswith("saliency:"):
            op = name.split(":", 1)[1]
            out["saliency_ms"][op], out["saliency_ms_spread"][op] = medians[name], spreads[name]
            share: dict[str, Any] = {}
            _put(share, "s", _per_round(samples, name, "full:erm"))
            out["saliency_share_of_erm"][op], out["saliency_share_of_erm_spread"][op] = share["s"], share["s_spread"]
    out["saliency_default_operator"] = default_op
    out["saliency_share_default"] = out["saliency_share_of_erm"].get(default_op)
    out["saliency_share_default_spread"] = out["saliency_share_of_erm_spread"].get(default_op)


def _erm_speedups(out: dict[str, Any], samples: dict[str, list[float]], erm: ErmLayout) -> None:
    fp32, bf16 = ("bare:erm", f"bare:erm:{erm.other_precision}") if erm.precision == "fp32" else \
        (f"bare:erm:{erm.other_precision}", "bare:erm")
    _put(out, "bf16_speedup", _per_round(samples, fp32, bf16), 3)
    layout = erm.layout_name
    contiguous, cl = ("bare:erm", layout) if layout.endswith("channels-last") else (layout, "bare:erm")
    _put(out, "channels_last_speedup", _per_round(samples, contiguous, cl), 3)
    if "bare:erm:bf16:channels-last" in samples:
        _put(out, "bf16_channels_last_speedup", _per_round(samples, "bare:erm", "bare:erm:bf16:channels-last"), 3)
    if "bare:erm:compiled" in samples:
        _put(out, "compile_speedup", _per_round(samples, "bare:erm", "bare:erm:compiled"), 3)
    else:
        out["compile_speedup"], out["compile_speedup_spread"] = None, None


def targets_report(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets against the measured medians (and whether the whole spread meets them)."""
    rows = []

    def add(name: str, op: str, limit: float, value: float | None, spread: Sequence[float] | None) -> None:
        if value is None:
            return
        def ok(x: float) -> bool:
            return x <= limit if op == "<=" else x >= limit

        rows.append({"target": name, "value": value, "spread": spread, "limit": f"{op} {limit:g}",
                     "met": bool(ok(value)), "met_every_round": bool(spread is not None and all(map(ok, spread)))})

    for key, op, limit, name in TARGETS:
        add(name, op, limit, result.get(key), result.get(f"{key}_spread"))
    for label, entry in result["steps"].items():
        if label == "erm":
            continue
        pred = entry["predicted_step_vs_erm"]
        add(f"{label} step <= {MULTI_VIEW_LIMIT:g} x ({pred:g} x ERM step)", "<=", MULTI_VIEW_LIMIT,
            entry["vs_prediction"], entry["vs_prediction_spread"])
    return rows
