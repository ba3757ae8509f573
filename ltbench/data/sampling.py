"""Class-level sampling distributions and fast on-device class-conditional sampling.

CMO's minority-weighted sampler (naver-ai/cmo ``imbalance_data/imbalance_cifar.py`` ``get_weighted_sampler``),
SMCL's target-class sampler (arXiv 2406.02223 Section 3.2, eq. 2-3) and its alternatives (docs/methods.md
§SMCL, row I).

Every sampler here is described by the probability that one draw yields a sample of class k. A sampler
defined by per-*sample* weights w_y (as ``WeightedRandomSampler`` is) has class mass n_k * w_k, so all
kinds reduce to a class vector; the image inside the drawn class is then uniform.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["SAMPLING_KINDS", "class_sampling_probabilities", "class_index_table", "sample_indices"]

# kind -> {parameter name: default}
SAMPLING_KINDS: dict[str, dict[str, float]] = {
    "instance": {},
    "uniform": {},
    "cmo": {"alpha": 1.0},
    "effective-number": {"beta": 0.9999},
    "class-level": {"beta": 0.9999},
}


def _effective_number(counts: np.ndarray, beta: float) -> np.ndarray:
    """E_k = (1 - beta**n_k) / (1 - beta), the effective number of samples of
    Cui et al., "Class-Balanced Loss Based on Effective Number of Samples" (CVPR 2019), Sec. 3."""
    return (1.0 - np.power(beta, counts)) / (1.0 - beta)


def class_sampling_probabilities(
    class_counts: Sequence[int] | np.ndarray | torch.Tensor, kind: str, **params: float
) -> np.ndarray:
    """Per-class probability that one draw yields a sample of that class (float64, sums to 1).

    Kinds (classes with n_k = 0 always get probability 0):

    - ``instance``: p_k ∝ n_k (plain shuffling).
    - ``uniform``: p_k = 1/C (over the non-empty classes).
    - ``cmo``: per-sample weight n_y**-alpha (CMO ``--weighted_alpha``, naver-ai/cmo), so p_k ∝ n_k**(1-alpha);
      ``alpha`` defaults to 1.0, which is class-uniform.
    - ``effective-number``: per-sample weight 1/E_y (an alternative to ``class-level``), so p_k ∝ n_k/E_k;
      ``beta`` defaults to 0.9999.
    - ``class-level``: SMCL eq. (3), p_k ∝ 1/E_k; ``beta`` defaults to 0.9999. Worked numbers
      for CIFAR-100-LT r=100 -> p_tail = 0.04378, p_tail/p_head = 97.6.
    """
    if kind not in SAMPLING_KINDS:
        raise ValueError(f"unknown sampling kind {kind!r}; valid kinds: {', '.join(SAMPLING_KINDS)}")
    allowed = SAMPLING_KINDS[kind]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise ValueError(
            f"unknown parameter(s) {unknown} for sampling kind {kind!r}; valid parameters: {valid}"
        )
    values = {**allowed, **params}

    if isinstance(class_counts, torch.Tensor):
        class_counts = class_counts.detach().cpu().numpy()
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"class_counts must be a non-empty 1-D sequence, got shape {counts.shape}")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError("class_counts must be finite and non-negative")
    present = counts > 0
    if not np.any(present):
        raise ValueError("class_counts has no non-empty class")

    mass = np.zeros_like(counts)
    n = counts[present]
    if kind == "instance":
        mass[present] = n
    elif kind == "uniform":
        mass[present] = 1.0
    elif kind == "cmo":
        alpha = float(values["alpha"])
        if not np.isfinite(alpha):
            raise ValueError(f"alpha must be finite, got {alpha}")
        mass[present] = n * np.power(n, -alpha)
    else:
        beta = float(values["beta"])
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        e = _effective_number(n, beta)
        mass[present] = n / e if kind == "effective-number" else 1.0 / e
    return mass / mass.sum()


def class_index_table(labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Precompute a table for class-conditional sampling, on ``labels``' device.

    Returns ``order`` (dataset indices sorted by class, stable, so ascending within a class) and
    ``offsets`` (length C+1): the indices of class k are ``order[offsets[k]:offsets[k + 1]]``.
    """
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D tensor, got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    labels = labels.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        low, high = int(labels.min()), int(labels.max())
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{low}, {high}]")
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=num_classes)
    offsets = torch.zeros(num_classes + 1, dtype=torch.long, device=labels.device)
    offsets[1:] = torch.cumsum(counts, dim=0)
    return order, offsets


def sample_indices(
    probs: torch.Tensor, order: torch.Tensor, offsets: torch.Tensor, n: int, generator: torch.Generator
) -> torch.Tensor:
    """Draw ``n`` dataset indices: a class k ~ ``probs`` (with replacement), then a uniform image of k.

    Vectorised, on ``probs``' device, no host synchronisation; exactly reproducible for a given
    ``generator`` state (which must live on the same device). ``probs`` must be 0 for empty classes
    (as :func:`class_sampling_probabilities` guarantees); this is not checked, to avoid a sync.
    """
    device = probs.device
    classes = torch.multinomial(probs, n, replacement=True, generator=generator)
    start = offsets[classes]
    size = offsets[classes + 1] - start
    u = torch.rand(n, generator=generator, device=device)
    within = (u * size).long()  # floor, since u * size >= 0
    # defensive: keep the index inside its class even if a backend's rounding makes u * size == size
    within = torch.minimum(within, size - 1)
    return order[start + within]
