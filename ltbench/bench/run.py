"""`run_bench`: build the cases and variants, time them in interleaved rounds, return the result."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ltbench.bench.cases import build_cases, index_batches, record_forwards
from ltbench.bench.options import BenchOptions
from ltbench.bench.result import build_result
from ltbench.bench.timing import Variant, loadavg, run_rounds, warm_up
from ltbench.bench.variants import erm_variants, input_variants, saliency_variants, step_variants
from ltbench.cpu import keep_buffers_on_heap
from ltbench.errors import LtbenchError


def _check(opts: BenchOptions) -> None:
    if opts.steps < 1 or opts.rounds < 1:
        raise LtbenchError(f"steps and rounds must be >= 1, got {opts.steps} and {opts.rounds}")
    if any(w < 0 for w in opts.workers):
        raise LtbenchError(f"DataLoader workers must be >= 0, got {list(opts.workers)}")
    if opts.threads is not None and opts.threads < 1:
        raise LtbenchError(f"threads must be >= 1, got {opts.threads}")


def run_bench(opts: BenchOptions, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-able result (see the `ltbench.bench` docstring for the keys)."""
    from ltbench.config import build_spec
    from ltbench.data.datasets import build_bundle
    from ltbench.trainer import resolve_device

    say = progress or (lambda _msg: None)
    _check(opts)
    device = resolve_device(opts.device)
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    heap = keep_buffers_on_heap() if opts.malloc_heap else False
    load_before = loadavg()
    random.seed(opts.seed)
    np.random.seed(opts.seed)

    say("building the data set and the trainers")
    probe = build_spec(opts.method, opts.dataset, opts.ratio, opts.seed, opts.preset,
                       {k: v for k, v in opts.overrides.items() if k in ("data_seed", "profile", "max_per_class")})
    bundle = build_bundle(probe.dataset, probe.ratio, probe.profile, probe.data_seed, probe.max_per_class,
                          opts.data_dir, opts.download)
    spec, cases = build_cases(opts, device, bundle)
    erm, method_cases = cases[0], cases[1:] or cases[:1]
    model_reps, cheap_reps = opts.steps, max(opts.steps, opts.cheap_reps)
    n_batches = 2 + opts.rounds * max(model_reps, cheap_reps)
    for case in cases:
        case.indices = index_batches(case.trainer, spec.train.batch_size, n_batches)

    say("warm-up step per case (records the forwarded shapes)")
    for case in cases:
        record_forwards(case)

    variants: list[Variant] = step_variants(cases, model_reps)
    more, erm_layout = erm_variants(erm, device, opts.compile, model_reps)
    variants += more
    more, input_case = input_variants(method_cases[0], bundle, opts.workers, n_batches, cheap_reps, device)
    variants += more
    more, default_op = saliency_variants(method_cases[0], input_case, bundle.info, device, cheap_reps)
    variants += more

    say(f"warm-up of {len(variants)} variants")
    warm_up(variants, device)
    samples, round_load = run_rounds(variants, opts.rounds, opts.seed, device, say)

    for case in cases:  # one host sync at the end: were the timed steps numerically sane?
        if not all(math.isfinite(float(v)) for v in case.sums.values()):
            raise LtbenchError(f"non-finite training loss in the benchmark's {case.name} steps")

    view_names = tuple(method_cases[0].trainer.method.views())
    result = build_result(opts, spec, cases, method_cases, samples, device, erm_layout, default_op, view_names,
                          len(bundle.train_labels))
    result["config"].update({"malloc_heap": heap, "loadavg_before": load_before, "loadavg_after": loadavg(),
                             "loadavg_1min_per_round": round_load})
    return result
