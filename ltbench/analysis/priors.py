"""Accuracy under shifted test class priors (the test-agnostic protocol of SADE, Zhang et al.,
"Self-Supervised Aggregation of Diverse Experts for Test-Agnostic Long-Tailed Recognition",
arXiv:2107.09249, Sec. 5; also used by BalPoE, Sarkar et al., arXiv:2305.12729).

Classes are ranked by training frequency (most frequent first). A forward long-tailed prior with
imbalance rho gives the class of rank k (0-based, C classes) the weight rho^(-k/(C-1)); a backward prior
reverses the ranking; uniform is the balanced test set itself. Instead of subsampling the balanced
test set to that prior (SADE's construction), we take the expectation: sum_k p_k * acc_k, with acc_k the
per-class accuracy on the balanced test set. This needs only per_class_acc, so it works for every run
ever recorded, and it has no sampling noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RHOS = (50, 10, 5, 2)


def frequency_rank(train_counts: Sequence[int]) -> np.ndarray:
    """Class ids from the most to the least frequent in training (ties: lower id first)."""
    counts = np.asarray(train_counts)
    return np.lexsort((np.arange(len(counts)), -counts))


def shifted_prior(train_counts: Sequence[int], rho: float, direction: str) -> np.ndarray:
    """p over classes (sums to 1): 'forward' follows the training order, 'backward' reverses it,
    'uniform' ignores rho."""
    c = len(train_counts)
    if direction == "uniform" or rho == 1 or c == 1:
        return np.full(c, 1.0 / c)
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be forward, backward or uniform, got {direction!r}")
    weights = float(rho) ** (-np.arange(c) / (c - 1))
    if direction == "backward":
        weights = weights[::-1]
    p = np.empty(c)
    p[frequency_rank(train_counts)] = weights
    return p / p.sum()


def prior_grid(train_counts: Sequence[int], rhos: Sequence[float] = RHOS) -> list[tuple[str, np.ndarray]]:
    """(label, p) for forward rho (largest first), uniform, backward rho (smallest first): SADE's order."""
    out = [(f"forward-{r:g}", shifted_prior(train_counts, r, "forward")) for r in rhos]
    out.append(("uniform", shifted_prior(train_counts, 1, "uniform")))
    out += [(f"backward-{r:g}", shifted_prior(train_counts, r, "backward")) for r in reversed(rhos)]
    return out


def shifted_accuracy(per_class_acc: Sequence[float | None], p: np.ndarray) -> float | None:
    """sum_k p_k * acc_k (percent); None when a class with weight has no accuracy."""
    acc = np.array([np.nan if a is None else a for a in per_class_acc], dtype=float)
    if np.isnan(acc[p > 0]).any():
        return None
    return float(np.nansum(p * acc))


def prior_adjusted_per_class(logits: np.ndarray, labels: np.ndarray, train_counts: Sequence[int],
                             p: np.ndarray) -> np.ndarray:
    """Per-class accuracy (%) after the prior-aware logit adjustment logits - log pi_train + log p_test
    (the Bayes correction for a known label shift, Menon et al. arXiv:2007.07314 Sec. 4; SADE's
    'prior-aware' upper reference)."""
    train = np.asarray(train_counts, dtype=float)
    adjusted = logits - np.log(train / train.sum()) + np.log(np.clip(p, 1e-300, None))
    preds = adjusted.argmax(axis=1)
    c = len(train)
    correct = np.bincount(labels[preds == labels], minlength=c)
    total = np.bincount(labels, minlength=c)
    return np.where(total > 0, 100.0 * correct / np.maximum(total, 1), np.nan)
