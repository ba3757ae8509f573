"""Saliency computed once per training image and moved through each view's geometry (docs/performance.md).

Also `fine_grained_threaded`: the default OpenCV maps with an explicit thread count.

Not wired into the trainer: these are helpers for a proposed change (docs/performance.md). The
model-free operators of `ltbench.saliency` depend only on the image, so a map can be computed once per
training image and stored as one uint8 channel (a CIFAR-100-LT bank is 10,847 x 32 x 32 B = 11 MB),
then cropped and flipped with the **same** per-sample parameters as the view it belongs to. A masked
step then needs a gather, a one-channel crop/flip and an argmax instead of a per-image OpenCV call.

What this changes: today SMCL computes the map on the augmented view x1 (crop + flip + CutOut). A
cached map is the map of the un-augmented image, moved by the view's geometry. The operator does not
commute with the crop: the zero border the crop reveals and the CutOut hole are salient to a
centre-surround operator. Measured on `shapes` (docs/performance.md) the peaks agree exactly for only a
small share of images, so this is a fidelity decision for the method's owner, not a silent substitute.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ltbench.augment import crop_flip_apply, resized_crop_flip
from ltbench.saliency import _check_images, _fine_grained, peak, saliency_maps

__all__ = ["SaliencyBank", "crop_flip_maps", "fine_grained_threaded", "precompute_maps", "resized_crop_flip_maps"]


def fine_grained_threaded(
    images: torch.Tensor,
    input_repr: str = "uint8",
    workers: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """`saliency_maps(images, "fine-grained", input_repr)` with an explicit thread count (the default
    operator itself now splits its OpenCV loop over torch's intra-op threads; this keeps the knob)."""
    _check_images(images)
    if input_repr not in ("uint8", "normalized"):
        raise ValueError(f"unknown saliency input representation {input_repr!r}")
    if images.shape[0] == 0:
        return torch.empty(0, *images.shape[-2:], dtype=torch.float32, device=images.device)
    return _fine_grained(images, input_repr, mean, std, workers)


@torch.no_grad()
def precompute_maps(
    images: torch.Tensor,
    method: str = "fine-grained",
    input_repr: str = "uint8",
    chunk: int = 1024,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """uint8 maps ``[N, 1, H, W]`` (value = round(255 * map)) of every image, computed ``chunk`` at a time.

    The fine-grained maps are SaliencyMix's uint8 quantisation already, so they are stored exactly;
    spectral-residual maps are rounded to 1/255 (this can break near-ties of the peak).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    parts = []
    for start in range(0, images.shape[0], chunk):
        maps = saliency_maps(images[start:start + chunk], method, input_repr, mean, std)
        parts.append(maps.mul(255).round_().clamp_(0, 255).to(torch.uint8).unsqueeze(1))
    if not parts:
        return torch.empty(0, 1, *images.shape[2:], dtype=torch.uint8, device=images.device)
    return torch.cat(parts)


def crop_flip_maps(maps: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip_mask: torch.Tensor | None,
                   padding: int = 4) -> torch.Tensor:
    """The views' maps ``[N, H, W]`` (float, k/255): the same gather as `augment.crop_flip_apply`.

    Pass the ``(top, left, flip_mask)`` that `augment.crop_flip_params` drew for the view. The zero padding
    the crop reveals has saliency 0, so a peak never lands there unless the whole visible map is 0.
    """
    return crop_flip_apply(maps, top, left, flip_mask, padding)[:, 0]


def resized_crop_flip_maps(maps: torch.Tensor, top: torch.Tensor, left: torch.Tensor, crop_h: torch.Tensor,
                           crop_w: torch.Tensor, flip_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The maps of RandomResizedCrop(+flip) views (`augment.rrc_params` boxes), bilinear like the images."""
    return resized_crop_flip(maps, top, left, crop_h, crop_w, flip_mask)[:, 0]


class SaliencyBank:
    """uint8 saliency maps of a whole training set, resident on its device, indexed like the images."""

    def __init__(self, maps: torch.Tensor):
        if maps.dtype != torch.uint8 or maps.dim() != 4 or maps.shape[1] != 1:
            raise ValueError(f"expected uint8 maps [N, 1, H, W], got {maps.dtype} {tuple(maps.shape)}")
        self.maps = maps

    @classmethod
    def build(cls, images: torch.Tensor, method: str = "fine-grained", input_repr: str = "uint8",
              chunk: int = 1024, **stats: Sequence[float] | None) -> SaliencyBank:
        return cls(precompute_maps(images, method, input_repr, chunk, **stats))

    def __len__(self) -> int:
        return self.maps.shape[0]

    def peaks(self, idx: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip_mask: torch.Tensor | None,
              padding: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        """Box centres (rows, cols) for a crop/flip view of images ``idx``: no OpenCV, no host sync."""
        return peak(crop_flip_maps(self.maps[idx], top, left, flip_mask, padding))
