"""Where the trainer's batches come from.

`ResidentSource` keeps a CIFAR-sized uint8 data set on the device: a batch is one gather, and
augmentation happens on the device afterwards (DESIGN.md "Performance stance"). A file-backed
source (ImageNet-LT) implements the same three calls with DataLoader workers that decode images.
The trainer's own generator produces the epoch order, so any source gives the same sample order.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class ResidentSource:
    """A whole data set as device tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device):
        self.images = images.to(device)
        self.labels = labels.to(device)

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])

    def batches(self, order: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """uint8 images and labels, `batch_size` at a time, in `order` (the last batch may be short)."""
        for start in range(0, order.shape[0], batch_size):
            idx = order[start:start + batch_size]
            yield self.images[idx], self.labels[idx]

    def fetch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Specific samples (a second batch drawn by a class sampler)."""
        return self.images[idx], self.labels[idx]
