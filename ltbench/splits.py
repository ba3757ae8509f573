"""Split summaries and index export: reuse ltbench's long-tailed subsets without its images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ltbench.data.datasets import get_dataset
from ltbench.data.longtail import longtail_counts, longtail_indices
from ltbench.data.shots import SHOT_RULES, shot_groups
from ltbench.errors import LtbenchError


def _ratio(value: Any) -> float:
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise LtbenchError(f"ratio must be a number >= 1, got {value!r}") from None
    if not ratio >= 1:
        raise LtbenchError(f"ratio must be >= 1, got {value}")
    return ratio


def split_summary(dataset: str, ratio: Any, profile: str = "exp", max_per_class: int | None = None,
                  split_dir: Path | None = None, data_dir: Path | None = None) -> dict:
    """Counts, total and group sizes under every shot rule, computed from the formula alone.

    A fixed split (imagenet-lt) takes its counts from its split folder instead (the train list, else
    train_class_counts.json); `ratio` is then its own n_max / n_min.
    """
    info = get_dataset(dataset)
    if info.split_counts is not None:
        from ltbench.data.imagenet_lt import split_dir_for

        counts = info.split_counts(split_dir_for(split_dir, data_dir))
        r = max(counts) / max(1, min(counts))
    else:
        r = _ratio(ratio)
        try:
            counts = longtail_counts(info.num_classes, max_per_class or info.max_per_class, r, profile)
        except ValueError as exc:
            raise LtbenchError(str(exc)) from None
    groups = {rule: shot_groups(counts, rule) for rule in SHOT_RULES}
    return {
        "dataset": dataset, "ratio": int(r) if r.is_integer() else r, "profile": profile,
        "total": sum(counts), "counts": counts,
        "group_sizes": {rule: {g: len(ids) for g, ids in gr.items()} for rule, gr in groups.items()},
        "groups": groups["shots-100-20"],
    }


def export_indices(labels_path: Path, ratio: Any, seed: int, profile: str, max_per_class: int | None,
                   out: Path | None) -> int:
    """Cut the LDAM-DRW subset from any label array and save its indices (int64 .npy)."""
    if out is None:
        raise LtbenchError("--labels needs --out FILE.npy")
    try:
        labels = np.load(labels_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise LtbenchError(f"cannot read labels from {labels_path}: {exc}") from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0 or labels.min() < 0:
        raise LtbenchError(f"{labels_path} must hold a 1-D array of non-negative integer labels")
    sizes = np.bincount(labels)
    head = max_per_class or int(sizes[sizes > 0].min())
    try:
        counts = longtail_counts(len(sizes), head, _ratio(ratio), profile)
        idx = longtail_indices(labels, counts, seed=seed)
    except ValueError as exc:
        raise LtbenchError(str(exc)) from None
    np.save(out, idx)
    return len(idx)
