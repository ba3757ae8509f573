"""Split summaries and index export: reuse ltbench's long-tailed subsets without its images."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ltbench.data.datasets import get_dataset
from ltbench.data.longtail import class_permutation, longtail_counts, longtail_indices, ordered_counts
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


def require_training_images(num_classes: int, head: int, ratio: float, profile: str, where: str,
                            limit: int | None = None) -> None:
    """Refuse a split whose tail classes get no training images (int(head / ratio) == 0), naming the
    largest ratio for this head size and the smallest head size for this ratio that work."""
    if not math.isfinite(ratio):
        raise LtbenchError(f"ratio must be a finite number >= 1, got {ratio}")
    counts = longtail_counts(num_classes, head, ratio, profile)
    empty = sum(c < 1 for c in counts)
    if not empty:
        return
    largest = max(r for r in range(1, head + 1) if min(longtail_counts(num_classes, head, r, profile)) >= 1)
    smallest = math.ceil(ratio)
    while min(longtail_counts(num_classes, smallest, ratio, profile)) < 1:
        smallest += 1
    fix = f"max_per_class >= {smallest}" if limit is None or smallest <= limit else \
        f"a smaller ratio ({where} has at most {limit} images per class)"
    raise LtbenchError(f"ratio {_show(ratio)} with max_per_class={head} leaves {empty} class(es) of {where} without "
                       f"training images; use a ratio <= {largest} or {fix}")


def _show(r: float) -> str:
    return str(int(r)) if float(r).is_integer() else str(r)


def split_summary(dataset: str, ratio: Any, profile: str = "exp", max_per_class: int | None = None,
                  split_dir: Path | None = None, data_dir: Path | None = None, class_order: int = 0) -> dict[str, Any]:
    """Counts, total and group sizes under every shot rule, computed from the formula alone.

    A fixed split (imagenet-lt) takes its counts from its split folder instead (the train list, else
    train_class_counts.json); `ratio` is then its own n_max / n_min. `class_order` permutes which
    classes take the head and tail counts; `permutation[r]` is the class with the r-th largest count.
    """
    info = get_dataset(dataset)
    if max_per_class is not None and max_per_class < 1:
        raise LtbenchError(f"--max-per-class must be >= 1, got {max_per_class}")
    if class_order and info.split_counts is not None:
        raise LtbenchError(f"{dataset} is a fixed split; class_order does not apply")
    if info.split_counts is not None:
        from ltbench.data.imagenet_lt import split_dir_for

        counts = info.split_counts(split_dir_for(split_dir, data_dir))
        r = max(counts) / max(1, min(counts))
    else:
        r = _ratio(ratio)
        try:
            counts = longtail_counts(info.num_classes, max_per_class or info.max_per_class, r, profile)
            counts = ordered_counts(counts, class_order)
        except ValueError as exc:
            raise LtbenchError(str(exc)) from None
    groups = {rule: shot_groups(counts, rule) for rule in SHOT_RULES}
    return {
        "dataset": dataset, "ratio": int(r) if r.is_integer() else r, "profile": profile,
        "total": sum(counts), "counts": counts, "class_order": class_order,
        "permutation": class_permutation(len(counts), class_order),
        "group_sizes": {rule: {g: len(ids) for g, ids in gr.items()} for rule, gr in groups.items()},
        "groups": groups["shots-100-20"],
    }


MAX_LABEL = 10**6  # class ids above this are not a label array (np.bincount would allocate max+1 counters)


def export_indices(labels_path: Path, ratio: Any, seed: int, profile: str, max_per_class: int | None,
                   out: Path | None) -> int:
    """Cut the LDAM-DRW subset from any label array and save its indices (int64 .npy) to exactly `out`."""
    if out is None:
        raise LtbenchError("--labels needs --out FILE.npy")
    out = Path(out)
    if out.is_dir():
        raise LtbenchError(f"--out {out} is a directory; give a file name (e.g. {out / 'subset.npy'})")
    if max_per_class is not None and max_per_class < 1:
        raise LtbenchError(f"--max-per-class must be >= 1, got {max_per_class}")
    try:
        labels = np.load(labels_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise LtbenchError(f"cannot read labels from {labels_path}: {exc}") from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0 or labels.min() < 0:
        raise LtbenchError(f"{labels_path} must hold a 1-D array of non-negative integer labels")
    if labels.max() > MAX_LABEL:
        raise LtbenchError(f"{labels_path} has label {int(labels.max())}; labels must be class ids <= {MAX_LABEL:,}")
    sizes = np.bincount(labels)
    head = max_per_class or int(sizes[sizes > 0].min())
    try:
        counts = longtail_counts(len(sizes), head, _ratio(ratio), profile)
        idx = longtail_indices(labels, counts, seed=seed)
    except ValueError as exc:
        raise LtbenchError(str(exc)) from None
    with open(out, "wb") as fh:  # a file object: np.save would add ".npy" to a name without it
        np.save(fh, idx)
    return len(idx)
