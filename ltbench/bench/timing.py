"""Interleaved timing of bench variants: each round times every variant once, in a fresh random order.

A round times `reps` calls of each variant, so a burst of outside load hits all variants alike; a
figure is the median over rounds with [min, max] (`summarize`). Only the calls are inside the clock:
a variant's `before`/`after` hooks (e.g. starting DataLoader workers) run untimed.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch


def summarize(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max) of per-round values."""
    vals = [float(v) for v in values]
    return statistics.median(vals), min(vals), max(vals)


def sync(device: torch.device) -> None:
    """Wait for queued device work, so a clock reading covers it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Variant:
    """One timed thing: `step` is called `reps` times per round."""

    name: str
    step: Callable[[], Any]
    reps: int
    before: Callable[[], Any] | None = None  # untimed, once per round before the timed calls
    after: Callable[[], Any] | None = None  # untimed, once per round after them


def time_variant(v: Variant, device: torch.device) -> float:
    """Milliseconds per call of one variant in one round (only the calls are inside the clock)."""
    if v.before is not None:
        v.before()
    gc.collect()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(v.reps):
        v.step()
    sync(device)
    elapsed = time.perf_counter() - t0
    if v.after is not None:
        v.after()
    return elapsed * 1000.0 / v.reps


def loadavg() -> list[float] | None:
    """The 1/5/15-minute load averages (None where the OS has none): outside load shows here."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def warm_up(variants: Sequence[Variant], device: torch.device) -> None:
    """One untimed call of each variant (lazy initialisation, allocator growth, kernel selection)."""
    for v in variants:
        time_variant(dataclasses.replace(v, reps=1), device)


def run_rounds(variants: Sequence[Variant], rounds: int, seed: int, device: torch.device,
               say: Callable[[str], None]) -> tuple[dict[str, list[float]], list[float | None]]:
    """({variant: ms per call in each round}, the 1-minute load average after each round)."""
    samples: dict[str, list[float]] = {v.name: [] for v in variants}
    order_rng = random.Random(seed)
    round_load: list[float | None] = []
    for r in range(rounds):
        say(f"round {r + 1}/{rounds}")
        order = list(variants)
        order_rng.shuffle(order)
        for v in order:
            samples[v.name].append(time_variant(v, device))
        load = loadavg()
        round_load.append(load[0] if load else None)
    return samples, round_load
