"""Data layer: data sets, long-tailed subsets, shot groups and class samplers."""

from ltbench.data.datasets import DATASETS, DataBundle, DatasetInfo, build_bundle, get_dataset
from ltbench.data.longtail import longtail_counts, longtail_indices, subset_sha
from ltbench.data.sampling import SAMPLING_KINDS, class_index_table, class_sampling_probabilities, sample_indices
from ltbench.data.shots import GROUPS, SHOT_RULES, shot_groups

__all__ = [
    "DATASETS", "DataBundle", "DatasetInfo", "GROUPS", "SHOT_RULES", "build_bundle", "get_dataset",
    "longtail_counts", "longtail_indices", "shot_groups", "subset_sha",
    "SAMPLING_KINDS", "class_index_table", "class_sampling_probabilities", "sample_indices",
]
