"""Shared test settings: tiny runs on the procedural `shapes` data (no download, CPU only)."""

from __future__ import annotations

import pytest

# a few hundred training images, the smallest CIFAR ResNet: one epoch takes about a second on CPU
TINY = {"backbone": "resnet8", "max_per_class": 60, "batch_size": 64}


@pytest.fixture
def tiny() -> dict:
    return dict(TINY)
