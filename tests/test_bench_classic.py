"""The classic PIL input path of `ltbench bench` (ltbench.bench.classic) reads the pipeline registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ltbench.bench import ClassicDataset, classic_transform
from ltbench.bench.classic import CLASSIC
from ltbench.errors import LtbenchError
from ltbench.pipelines import names

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def test_every_cifar_pipeline_has_a_classic_transform():
    assert set(CLASSIC) == set(names("cifar"))


@pytest.mark.parametrize("pipeline", sorted(CLASSIC))
def test_classic_views_are_normalised_tensors_of_the_image_size(pipeline):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    data = ClassicDataset(images, np.arange(4), [classic_transform(pipeline, 32, MEAN, STD)] * 2)
    *views, label = data[1]
    assert label == 1 and len(views) == 2
    for v in views:
        assert v.shape == (3, 32, 32) and v.dtype == torch.float32


def test_pipelines_without_a_classic_path_are_named():
    with pytest.raises(LtbenchError, match="no classic equivalent of pipeline 'randaug'"):
        classic_transform("randaug", 32, MEAN, STD)
    with pytest.raises(LtbenchError, match="unknown augmentation pipeline 'nope'"):
        classic_transform("nope", 32, MEAN, STD)
