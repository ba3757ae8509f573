"""Expected calibration error and reliability diagrams (Guo et al., "On Calibration of Modern Neural
Networks", ICML 2017, arXiv:1706.04599, Sec. 2): confidences (max softmax probability) fall into
M = 15 equal-width bins (lo, hi]; ECE = sum_b |B_b| / n * |acc(B_b) - conf(B_b)|.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BINS = 15


def softmax_confidence(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return 1.0 / np.exp(z).sum(axis=1)


def bin_index(confidence: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Bin b holds confidences in (b/M, (b+1)/M]; a confidence of 0 goes to bin 0. Compared against the
    edges b/M themselves (not ceil(c*M), which puts 0.2 = 3/15 one bin too high: 0.2*15 > 3 in floats)."""
    edges = np.arange(bins + 1) / bins
    return np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Per-bin counts, accuracy and mean confidence, and the ECE (all accuracies as fractions)."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    idx = bin_index(confidence, bins)
    count = np.bincount(idx, minlength=bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=bins)
    conf_sum = np.bincount(idx, weights=confidence, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(count > 0, acc_sum / count, np.nan)
        conf = np.where(count > 0, conf_sum / count, np.nan)
    n = max(1, int(count.sum()))
    ece = float(np.nansum(count / n * np.abs(acc - conf))) if count.sum() else None
    return {"count": count, "accuracy": acc, "confidence": conf, "ece": ece, "n": int(count.sum())}
