"""Post-hoc logit adjustment (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021,
arXiv:2007.07314, Eq. 9): predict argmax_y f_y(x) - tau * log pi_y, with pi the training class prior.
tau = 0 is the model as trained; tau = 1 is the balanced-error Bayes correction for a softmax model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ltbench.data.shots import GROUPS, shot_groups

TAUS = tuple(round(0.25 * i, 2) for i in range(9))  # 0, 0.25, ..., 2.0


def adjust(logits: np.ndarray, train_counts: Sequence[int], tau: float) -> np.ndarray:
    prior = np.asarray(train_counts, dtype=float)
    return logits - tau * np.log(prior / prior.sum())


def group_accuracy(preds: np.ndarray, labels: np.ndarray, train_counts: Sequence[int], rule: str) -> dict[str, Any]:
    """top1 over images, per-class accuracy, and the unweighted class mean of each shot group (as
    ltbench.metrics.summarize)."""
    c = len(train_counts)
    correct = np.bincount(labels[preds == labels], minlength=c)
    total = np.bincount(labels, minlength=c)
    per_class = np.where(total > 0, 100.0 * correct / np.maximum(total, 1), np.nan)
    out: dict[str, Any] = {"top1": float(100.0 * correct.sum() / max(1, total.sum()))}
    for g, ids in shot_groups(train_counts, rule).items():
        vals = per_class[ids] if ids else np.zeros(0)
        vals = vals[~np.isnan(vals)]
        out[g] = float(vals.mean()) if len(vals) else None
    out["per_class_acc"] = per_class
    return out


def curve(logits: np.ndarray, labels: np.ndarray, train_counts: Sequence[int], rule: str,
          taus: Sequence[float] = TAUS) -> list[dict[str, Any]]:
    """One row per tau: tau, top1, many, medium, few."""
    rows = []
    for tau in taus:
        acc = group_accuracy(adjust(logits, train_counts, tau).argmax(axis=1), labels, train_counts, rule)
        rows.append({"tau": float(tau), **{k: acc[k] for k in ("top1", *GROUPS)}})
    return rows


def select_tau(val_rows: list[dict[str, Any]]) -> float:
    """The tau with the best val top-1 (the smallest such tau on ties)."""
    best = max(r["top1"] for r in val_rows)
    return min(r["tau"] for r in val_rows if r["top1"] == best)
