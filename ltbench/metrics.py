"""Per-class accuracy from one confusion matrix over the whole test set -> overall / Many / Medium / Few."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ltbench.data.shots import GROUPS, shot_groups


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[C, C] counts, rows = true class, columns = prediction (one bincount, no per-batch averaging)."""
    flat = labels.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def summarize(confusion: torch.Tensor, train_counts: Sequence[int], rule: str) -> dict[str, Any]:
    """Overall top-1 (plain, over all test images), per-class accuracy and shot-group means.

    A group's accuracy is the unweighted mean of its classes' accuracies; an empty group is None.
    Accuracies are percentages.
    """
    conf = confusion.double().cpu()
    total = conf.sum(dim=1)
    correct = conf.diag()
    per_class = torch.where(total > 0, 100.0 * correct / total.clamp(min=1), torch.full_like(total, float("nan")))
    groups = shot_groups(train_counts, rule)
    out: dict[str, Any] = {"top1": float(100.0 * correct.sum() / conf.sum().clamp(min=1))}
    for g in GROUPS:
        ids = groups[g]
        vals = per_class[ids] if ids else torch.zeros(0, dtype=torch.float64)
        vals = vals[~torch.isnan(vals)]
        out[g] = float(vals.mean()) if len(vals) else None
    out["group_sizes"] = {g: len(groups[g]) for g in GROUPS}
    out["shot_rule"] = rule
    out["per_class_acc"] = [None if v != v else round(float(v), 4) for v in per_class.tolist()]
    return out


def subset_accuracy(preds: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                    train_counts: Sequence[int], rule: str) -> dict[str, Any]:
    """Accuracy on the test images selected by `mask`, overall and per shot group (None if empty)."""
    num_classes = len(train_counts)
    sel = mask.bool()
    if not bool(sel.any()):
        return {"top1": None, **{g: None for g in GROUPS}}
    conf = confusion_matrix(preds[sel], labels[sel], num_classes)
    summary = summarize(conf, train_counts, rule)
    return {k: summary[k] for k in ("top1", *GROUPS)}
