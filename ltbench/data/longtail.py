"""Long-tailed subsets built exactly as the LDAM-DRW reference builds them (kaidic/LDAM-DRW,
imbalance_cifar.py: IMBALANCECIFAR10.get_img_num_per_cls and gen_imbalanced_data)."""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

PROFILES = ("exp", "step")


def longtail_counts(num_classes: int, max_per_class: int, ratio: float, profile: str = "exp") -> list[int]:
    """Per-class image counts of the long-tailed subset, head first.

    `exp`: n_k = int(max * (1/ratio) ** (k / (C - 1))), truncation in float64 as the reference does.
    `step`: the first half of the classes keep `max`, the rest get int(max / ratio) (LDAM's step type).
    """
    if ratio < 1:
        raise ValueError(f"imbalance ratio must be >= 1, got {ratio}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    img_max = float(max_per_class)
    imb_factor = 1.0 / float(ratio)
    if profile == "step" or num_classes == 1:
        half = num_classes // 2
        if num_classes == 1:
            return [int(img_max)]
        return [int(img_max)] * half + [int(img_max * imb_factor)] * (num_classes - half)
    return [int(img_max * imb_factor ** (k / (num_classes - 1.0))) for k in range(num_classes)]


def class_permutation(num_classes: int, class_order: int) -> list[int]:
    """Which class takes each rank of the head-to-tail profile: `perm[r]` is the class given count n_r.

    0 is the identity (class k gets n_k, the LDAM-DRW reference order). Any other value draws a fixed
    permutation from its own RandomState(class_order), independent of the subset seed, so the class
    order and the data seed can be crossed as separate factors.
    """
    if isinstance(class_order, bool) or not isinstance(class_order, int) or class_order < 0:
        raise ValueError(f"class_order must be an integer >= 0, got {class_order!r}")
    if class_order == 0:
        return list(range(num_classes))
    return [int(c) for c in np.random.RandomState(class_order).permutation(num_classes)]


def ordered_counts(counts: list[int], class_order: int) -> list[int]:
    """Per-class counts (indexed by class label) when the ranked `counts` follow `class_order`."""
    perm = class_permutation(len(counts), class_order)
    out = [0] * len(counts)
    for rank, cls in enumerate(perm):
        out[cls] = counts[rank]
    return out


def longtail_indices(targets: npt.ArrayLike, counts: list[int], seed: int = 0) -> np.ndarray:
    """Indices of the subset: per class in ascending order, shuffle that class's indices and keep n_k.

    A private RandomState(seed) consumes the same MT19937 stream as the reference's reseeded global
    NumPy RNG, so the indices (and their class-grouped order) equal LDAM-DRW/CMO's for the same
    labels and seed. Subsets are nested across ratios because each class's shuffle does not depend
    on the counts.
    """
    targets = np.asarray(targets, dtype=np.int64)
    rng = np.random.RandomState(seed)
    chosen = []
    for cls, n in enumerate(counts):
        idx = np.where(targets == cls)[0]
        if n > len(idx):
            raise ValueError(f"class {cls} has {len(idx)} images, the subset asks for {n}")
        rng.shuffle(idx)
        chosen.append(idx[:n])
    return np.concatenate(chosen).astype(np.int64) if chosen else np.zeros(0, dtype=np.int64)


def subset_sha(indices: np.ndarray) -> str:
    """A short hash of the selected indices (in order), recorded in every run."""
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]
