"""The data layer's shared shapes: what a data set is (DatasetInfo), what a loader returns (Pool) and what
the trainer consumes (DataBundle), plus the default data folder.

Its own module so that the per-data-set loaders (ltbench.data.imagenet_lt) and the registry of data sets
(ltbench.data.datasets) both import it instead of each other. No torch import at run time: tensors appear
in annotations only, so spec code can read DatasetInfo fields without loading torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class Pool:
    """A full (balanced) data set as uint8 NCHW tensors, before the long-tail cut."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    test_meta: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    max_per_class: int  # images per class in the full training set (the head of the LT subset)
    channels: int
    size: int
    family: str  # "cifar" (32px recipes) or "imagenet"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str
    load: Callable[[Path, bool], Pool]
    version: str = "1"  # part of every run spec: bump it when the construction changes
    # file-backed data sets (ImageNet-LT): a fixed split read from list files instead of `load` + a cut
    bundle: Callable[..., DataBundle] | None = None  # (info, root, split_dir, max_per_class, with_val)
    split_counts: Callable[[Path], list[int]] | None = None  # per-class train counts from a split dir
    fixed_ratio: float | None = None  # the imbalance ratio of a fixed split (the only valid --ratio)


@dataclass
class DataBundle:
    """What the trainer gets: the long-tailed train subset and the balanced test set."""

    info: DatasetInfo
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_counts: list[int]
    subset_sha: str
    test_meta: dict[str, torch.Tensor] = field(default_factory=dict)
    # file-backed data sets: split name -> ImageList (paths + labels); the image tensors above are empty
    files: dict[str, Any] | None = None
    # resident data sets with_val: the val half of the test set (ltbench.data.val_split); test_* is the other
    val_images: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None


def default_data_dir() -> Path:
    """--data-dir, else $LTBENCH_DATA, else ~/.cache/ltbench."""
    env = os.environ.get("LTBENCH_DATA")
    return Path(env) if env else Path.home() / ".cache" / "ltbench"
