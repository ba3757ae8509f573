"""A balanced validation split for data sets whose only held-out images are their balanced test set
(CIFAR-10/100, Fashion-MNIST, shapes).

The test set is cut once, per class, into two disjoint halves with a fixed seed: the first half
("val") is used only for selection (the epoch, a post-hoc tau), the second ("test") is the one
reported. Every run, method and data seed shares the same halves, so selected numbers stay
comparable across a table. With n images of a class, val takes n // 2 and test the other n - n // 2
(all four data sets have an even, equal count per class, so both halves are balanced).

This is the held-out protocol of Menon et al., "Long-tail learning via logit adjustment"
(arXiv:2007.07314), who tune post-hoc tau on a held-out slice rather than on the reported test set.
"""

from __future__ import annotations

import numpy as np

VAL_SPLIT_SEED = 20_210_301  # fixed: the halves are a property of the data set, not of a run


def balanced_halves(labels: np.ndarray, seed: int = VAL_SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(val indices, test indices), sorted and disjoint; per class, val gets n // 2 of its n images."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val, test = [], []
    for cls in np.unique(labels):  # ascending class order: the draw does not depend on image order
        idx = rng.permutation(np.flatnonzero(labels == cls))
        half = len(idx) // 2
        val.append(idx[:half])
        test.append(idx[half:])
    return np.sort(np.concatenate(val)), np.sort(np.concatenate(test))
