"""Data layer: data sets, long-tailed subsets, shot groups and class samplers.

The names below load their module on first use (PEP 562 module __getattr__), so that importing one
torch-free piece (ltbench.data.bundle, .longtail, .shots) does not import the samplers' torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "DATASETS": "datasets", "DataBundle": "bundle", "DatasetInfo": "bundle", "build_bundle": "datasets",
    "get_dataset": "datasets", "longtail_counts": "longtail", "longtail_indices": "longtail",
    "subset_sha": "longtail", "SAMPLING_KINDS": "sampling", "class_index_table": "sampling",
    "class_sampling_probabilities": "sampling", "sample_indices": "sampling", "GROUPS": "shots",
    "SHOT_RULES": "shots", "shot_groups": "shots",
}
__all__ = [
    "DATASETS", "DataBundle", "DatasetInfo", "GROUPS", "SAMPLING_KINDS", "SHOT_RULES", "build_bundle",
    "class_index_table", "class_sampling_probabilities", "get_dataset", "longtail_counts", "longtail_indices",
    "sample_indices", "shot_groups", "subset_sha",
]

if TYPE_CHECKING:
    from ltbench.data.bundle import DataBundle, DatasetInfo
    from ltbench.data.datasets import DATASETS, build_bundle, get_dataset
    from ltbench.data.longtail import longtail_counts, longtail_indices, subset_sha
    from ltbench.data.sampling import SAMPLING_KINDS, class_index_table, class_sampling_probabilities, sample_indices
    from ltbench.data.shots import GROUPS, SHOT_RULES, shot_groups


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'ltbench.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ltbench.data.{_HOMES[name]}"), name)
