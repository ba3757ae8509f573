"""Background reliance measured on the same classes: seen versus unseen backgrounds (the `shapes` data set).

In `shapes` (ltbench/data/shapes.py) every class appears on every background in the balanced test set,
but in training the tail classes (the second half, `allowed_backgrounds`) appear on only a few. A test
image is "seen" when its (class, background) pair occurs in the training pool.

The older `seen_split` gap compared all seen images (every head-class image among them) with all unseen
ones (tail classes only), so it mixed head-versus-tail accuracy into the background effect. Here the
comparison stays inside each class:

- `per_class_background_acc`: per class, accuracy (%) on its seen-background and on its unseen-background
  test images (None where a class has no such images: head classes have no unseen backgrounds);
- `bg_gap_tail`: over the classes that have both kinds of test images (the background-limited classes,
  whatever their training count under a class order), the mean of acc_seen - acc_unseen, in points.
  None when no class has both.
"""

from __future__ import annotations

from typing import Any

import torch


def per_class_accuracy(preds: torch.Tensor, labels: torch.Tensor, select: torch.Tensor,
                       num_classes: int) -> list[float | None]:
    """Accuracy (%) per class over the test images in `select`; None for a class with none selected."""
    sel = select.bool()
    total = torch.bincount(labels[sel].long(), minlength=num_classes)
    hit = torch.bincount(labels[sel & (preds == labels)].long(), minlength=num_classes)
    return [round(100.0 * int(h) / int(t), 4) if int(t) else None
            for h, t in zip(hit.tolist(), total.tolist(), strict=True)]


def background_metrics(preds: torch.Tensor, labels: torch.Tensor, seen: torch.Tensor,
                       num_classes: int) -> dict[str, Any]:
    """`per_class_background_acc` and `bg_gap_tail` (see the module docstring)."""
    preds, labels, seen = preds.cpu(), labels.cpu(), seen.cpu().bool()
    acc_seen = per_class_accuracy(preds, labels, seen, num_classes)
    acc_unseen = per_class_accuracy(preds, labels, ~seen, num_classes)
    gaps = [s - u for s, u in zip(acc_seen, acc_unseen, strict=True) if s is not None and u is not None]
    return {"per_class_background_acc": {"seen": acc_seen, "unseen": acc_unseen},
            "bg_gap_tail": round(sum(gaps) / len(gaps), 4) if gaps else None}
