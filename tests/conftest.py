"""Shared test settings: tiny runs on the procedural `shapes` data (no download, CPU only)."""

from __future__ import annotations

import pytest

# a few hundred training images, the smallest CIFAR ResNet: one epoch takes about a second on CPU
TINY = {"backbone": "resnet8", "max_per_class": 60, "batch_size": 64}


@pytest.fixture
def tiny() -> dict:
    return dict(TINY)


def pytest_collection_modifyitems(config, items) -> None:
    """`@pytest.mark.cuda` tests run only where torch sees a CUDA device (tests/test_cuda.py)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is false)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
