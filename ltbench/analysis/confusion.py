"""Confusion matrix and the most-confused class pairs per shot group.

Rows are true classes, columns predictions (ltbench.metrics.confusion_matrix). A pair (true a,
predicted b) is ranked by the share of a's test images predicted as b; a shot group's pairs are those
whose true class is in the group, so a Few-shot class absorbed by a Many-shot neighbour shows up in Few.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ltbench.data.shots import shot_groups

# class names where the data set defines them (torchvision's class lists; Fashion-MNIST: Xiao et al.,
# arXiv:1708.07747, Table 1); other data sets print class ids
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}


def class_name(dataset: str, cls: int) -> str:
    names = CLASS_NAMES.get(dataset)
    return f"{cls} {names[cls]}" if names and cls < len(names) else str(cls)


def most_confused(confusion: np.ndarray, train_counts: Sequence[int], rule: str, top: int = 3) -> list[dict[str, Any]]:
    """Per shot group, the `top` off-diagonal (true, predicted) pairs by share of the true class's images."""
    conf = np.asarray(confusion, dtype=float)
    totals = conf.sum(axis=1)
    out = []
    for group, ids in shot_groups(train_counts, rule).items():
        pairs = []
        for a in ids:
            if totals[a] == 0:
                continue
            for b in range(conf.shape[1]):
                if b != a and conf[a, b] > 0:
                    pairs.append((conf[a, b] / totals[a], a, b))
        pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
        for share, a, b in pairs[:top]:
            out.append({"group": group, "true": int(a), "predicted": int(b), "share": 100.0 * share,
                        "count": int(conf[a, b]), "true_train": int(train_counts[a]),
                        "predicted_train": int(train_counts[b])})
    return out
