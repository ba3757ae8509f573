"""Batched, per-sample training augmentation on the images' device.

All functions take a batch ``[N, C, H, W]`` (C = 1 or 3) and follow the input's device. Every random draw
goes through an explicit ``torch.Generator`` that must live on the same device as the images. With the
same generator state the output is bit-identical, so runs can be reproduced and resumed. If a function
is given ``generator=None``, it falls back to PyTorch's default generator for that device. That is
convenient in notebooks, but the trainer must always pass its own generator.

Every random parameter is drawn **per sample** with one tensor-valued call. torchvision's random
transforms applied to a batched tensor draw a single parameter set for the whole batch (as the torchvision
transforms documentation states), so this module has its own batched code. There are no Python loops over samples and no
host synchronisation (``.item()``, ``.tolist()``, ``nonzero``) on the hot path.

dtype conventions: the pipelines take the resident uint8 training set and return float32 pixels in
[0, 1], not normalised. The trainer normalises later with :func:`normalize`.

Sources (the recipes in one place: docs/methods.md §Augmentations and §Mixup, CutMix and CMO):

* train augmentation RandomCrop(32, pad 4) + flip (kaidic/LDAM-DRW ``cifar_train.py``): :func:`random_crop_flip`;
* CutMix / CMO box arithmetic (naver-ai/cmo ``cifar_train.py`` ``rand_bbox``): :func:`cutmix_box` (per
  batch), :func:`box_masks` (per sample, used by SMCL), :func:`paste`;
* CutOut (uoguelph-mlrg/Cutout ``util/cutout.py``; CMO ``util/autoaug.py``): :func:`cutout`;
* SimAugment (HobbitLong/SupContrast ``main_supcon.py`` CIFAR recipe, without blur): :func:`sim_augment`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
    from torch import Tensor
else:  # torch on first use: the methods that import this module are read without it (ltbench/lazy.py)
    from ltbench.lazy import F, torch

__all__ = [
    "box_masks",
    "crop_flip_apply",
    "crop_flip_params",
    "cutmix_box",
    "cutout",
    "cutout_mask",
    "normalize",
    "paste",
    "random_crop_flip",
    "rgb_to_gray",
    "square_mask",
]

# ITU-R BT.601 luma weights. PIL's ``convert("L")`` uses them. torchvision's tensor grayscale uses
# 0.2989 for red instead, which differs by at most 1e-4.
_LUMA = (0.299, 0.587, 0.114)


# ----------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------


def _to_float01(x: Tensor) -> Tensor:
    """uint8 -> float32 / 255, which is what ``ToTensor`` does. Float input is returned unchanged."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    if not x.is_floating_point():
        raise TypeError(f"expected uint8 or floating-point images, got {x.dtype}")
    return x


def _check_batch(x: Tensor) -> tuple[int, int, int, int]:
    if x.dim() != 4:
        raise ValueError(f"expected a batch [N, C, H, W], got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if c not in (1, 3):
        raise ValueError(f"expected C = 1 or 3 channels, got {c}")
    return n, c, h, w


def _rand(n: int, generator: torch.Generator | None, device: torch.device, *shape: int) -> Tensor:
    return torch.rand((n, *shape), generator=generator, device=device)


def _uniform(lo: float, hi: float, u: Tensor) -> Tensor:
    return lo + (hi - lo) * u


def _span_mask(size: int, start: Tensor, stop: Tensor) -> Tensor:
    """Bool ``[..., size]``: True where ``start <= index < stop`` (start/stop int tensors ``[...]``)."""
    idx = torch.arange(size, device=start.device)
    return (idx >= start.unsqueeze(-1)) & (idx < stop.unsqueeze(-1))


def rgb_to_gray(x: Tensor) -> Tensor:
    """Luma ``0.299 R + 0.587 G + 0.114 B`` of a float batch ``[N, 3, H, W]``, shape ``[N, 1, H, W]``.

    These are the PIL ``convert("L")`` weights. torchvision's tensor path uses 0.2989 for red.
    """
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b


# ----------------------------------------------------------------------------------------------------
# normalisation and pasting
# ----------------------------------------------------------------------------------------------------


def normalize(x: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """Per-channel ``(x - mean) / std`` for a float batch ``[N, C, H, W]`` of pixels in [0, 1].

    This is the arithmetic of torchvision's ``Normalize`` (subtract, then divide). ``mean`` and ``std``
    must have length C. A Python sequence is copied to ``x.device`` on every call, which is a small
    host-to-device copy on a GPU. On the hot path, pass tensors that are already on the device.
    """
    c = x.shape[-3]
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
    if m.shape[0] != c or s.shape[0] != c:
        raise ValueError(f"mean/std need {c} entries, got {m.shape[0]} and {s.shape[0]}")
    return (x - m) / s


def paste(base: Tensor, source: Tensor, mask: Tensor) -> Tensor:
    """``torch.where(mask, source, base)``: take ``source`` inside the (broadcast) mask, ``base`` outside.

    This is the paste step of CutMix/CMO (naver-ai/cmo ``cifar_train.py``) and of SMCL's ``paste-target``
    fill (docs/methods.md §SMCL, row A).
    """
    return torch.where(mask, source, base)


# ----------------------------------------------------------------------------------------------------
# RandomCrop(size = H x W, padding) + RandomHorizontalFlip  (kaidic/LDAM-DRW cifar_train.py)
# ----------------------------------------------------------------------------------------------------


def crop_flip_params(
    n: int,
    padding: int,
    generator: torch.Generator | None,
    device: torch.device | str,
    flip: bool = True,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Draw per-sample crop offsets and flip decisions for :func:`random_crop_flip`.

    Returns ``(top, left, flip_mask)``. ``top`` and ``left`` are int64 ``[n]`` offsets into the padded
    image, uniform on ``{0, ..., 2 * padding}``, like torchvision's ``RandomCrop.get_params`` on the
    padded image. ``flip_mask`` is bool ``[n]`` with P(True) = 0.5, or ``None`` when ``flip`` is False.
    Draw order: ``top``, ``left``, then ``flip_mask``.
    """
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flip_mask = (torch.rand(n, generator=generator, device=device) < 0.5) if flip else None
    return top, left, flip_mask


def crop_flip_apply(
    x: Tensor, top: Tensor, left: Tensor, flip_mask: Tensor | None, padding: int = 4
) -> Tensor:
    """Apply given per-sample crop offsets and flips with one batched gather. Returns float [0, 1].

    The batch is zero-padded once by ``padding`` on every side. Each output pixel ``(r, c)`` of sample
    ``n`` then reads padded pixel ``(top[n] + r, left[n] + c')``, with ``c' = W - 1 - c`` when the sample
    is flipped and ``c' = c`` otherwise. This equals slicing the padded image and then mirroring the
    crop. The gather runs on the original dtype (uint8), and the result is converted to float32 / 255.
    """
    n, c, h, w = _check_batch(x)
    xp = F.pad(x, (padding, padding, padding, padding)) if padding > 0 else x
    wp = w + 2 * padding
    device = x.device
    rows = top.unsqueeze(1) + torch.arange(h, device=device)  # [N, H]
    col_base = torch.arange(w, device=device)
    if flip_mask is None:
        cols = left.unsqueeze(1) + col_base  # [N, W]
    else:
        cols = left.unsqueeze(1) + torch.where(flip_mask.unsqueeze(1), (w - 1) - col_base, col_base)
    flat = (rows.unsqueeze(2) * wp + cols.unsqueeze(1)).reshape(n, 1, h * w).expand(n, c, h * w)
    out = xp.reshape(n, c, -1).gather(2, flat).reshape(n, c, h, w)
    return _to_float01(out)


def random_crop_flip(
    x_uint8: Tensor,
    padding: int = 4,
    generator: torch.Generator | None = None,
    flip: bool = True,
) -> Tensor:
    """Per-sample ``RandomCrop(H x W, padding)`` + ``RandomHorizontalFlip(0.5)`` + ``ToTensor`` (LDAM-DRW).

    Args:
        x_uint8: uint8 batch ``[N, C, H, W]``. Float input in [0, 1] is also accepted.
        padding: zero padding on each side. The crop offset per axis is uniform on ``{0, ..., 2*padding}``.
        generator: a generator on ``x_uint8.device``. See :func:`crop_flip_params` for the draw order.
        flip: whether to apply the random horizontal flip.

    Returns:
        float32 ``[N, C, H, W]`` in [0, 1], not normalised.

    The pixels match torchvision's PIL pipeline exactly, given the same offsets and flip decisions. Only
    the parameter distribution is shared with torchvision, not its random stream.
    """
    top, left, flip_mask = crop_flip_params(x_uint8.shape[0], padding, generator, x_uint8.device, flip)
    return crop_flip_apply(x_uint8, top, left, flip_mask, padding)


# ----------------------------------------------------------------------------------------------------
# CutOut (DeVries & Taylor, arXiv 1708.04552; uoguelph-mlrg/Cutout util/cutout.py)
# ----------------------------------------------------------------------------------------------------


def square_mask(height: int, width: int, rows: Tensor, cols: Tensor, length: int) -> Tensor:
    """Bool mask ``[N, 1, H, W]`` of CutOut holes centred at ``(rows, cols)``, clipped to the image.

    ``rows`` and ``cols`` are int64 ``[N]`` (one hole per sample) or ``[N, K]`` (K holes, combined with
    OR). Each hole covers rows ``[max(0, r - length//2), min(H, r + length//2))``, and the same for
    columns. This is CutOut's clipping arithmetic (``util/cutout.py``), so an odd ``length`` gives a square one
    pixel smaller.
    """
    if rows.dim() == 1:
        rows, cols = rows.unsqueeze(1), cols.unsqueeze(1)
    half = length // 2
    in_r = _span_mask(height, (rows - half).clamp(0, height), (rows + half).clamp(0, height))  # [N,K,H]
    in_c = _span_mask(width, (cols - half).clamp(0, width), (cols + half).clamp(0, width))  # [N,K,W]
    return (in_r.unsqueeze(3) & in_c.unsqueeze(2)).any(dim=1, keepdim=True)


def cutout_mask(
    n: int,
    height: int,
    width: int,
    length: int = 16,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    n_holes: int = 1,
) -> Tensor:
    """Draw CutOut hole centres and return their bool mask ``[N, 1, H, W]`` (see :func:`square_mask`).

    Centres are uniform over all pixels: the row from ``[0, H)``, then the column from ``[0, W)``, as
    ``[N, n_holes]`` tensors. A centre can lie next to the border, in which case the hole is clipped.
    """
    rows = torch.randint(0, height, (n, n_holes), generator=generator, device=device)
    cols = torch.randint(0, width, (n, n_holes), generator=generator, device=device)
    return square_mask(height, width, rows, cols, length)


def cutout(
    x: Tensor,
    length: int = 16,
    generator: torch.Generator | None = None,
    n_holes: int = 1,
) -> Tensor:
    """Per-sample CutOut (docs/methods.md §Augmentations): set ``n_holes`` clipped squares of side ``length`` to 0.

    Called on the float [0, 1] view *before* :func:`normalize`, the hole is black. This is the
    LT-lineage placement (CMO ``Cutout``) and the ``ltbench`` default. The original CutOut zeroes
    *after* Normalize, which gives the mean colour instead. For that variant, call this after
    :func:`normalize`. Returns a new tensor with the dtype of ``x``. Holes are built by broadcast
    comparisons, so there is no loop and no sync.
    """
    n, _, h, w = _check_batch(x)
    mask = cutout_mask(n, h, w, length, generator, x.device, n_holes)
    return x.masked_fill(mask, 0)


# ----------------------------------------------------------------------------------------------------
# CutMix / CMO box (naver-ai/cmo cifar_train.py rand_bbox) and SMCL's per-sample boxes (docs/methods.md §SMCL)
# ----------------------------------------------------------------------------------------------------


def cutmix_box(
    height: int, width: int, lam: float, center_row: int, center_col: int
) -> tuple[int, int, int, int, float]:
    """CutMix/CMO box for one batch (CMO ``cifar_train.py``). Returns ``(top, left, bottom, right, lam_corrected)``.

    The arithmetic follows the reference ``rand_bbox`` exactly:

    * ``r = sqrt(1 - lam)``;
    * rows get ``cut_w = int(height * r)``. In the reference, ``W = size[2]`` of an NCHW batch, which
      is the number of rows. Columns get ``cut_h = int(width * r)``;
    * per axis, the box is ``[c - cut // 2, c + cut // 2]``, clipped to ``[0, size]``. An odd cut
      therefore loses one pixel;
    * ``bottom`` and ``right`` are exclusive, so the box is ``x[..., top:bottom, left:right]``;
    * ``lam_corrected = 1 - (bottom - top) * (right - left) / (height * width)``.

    This is pure Python arithmetic: one box per batch, with no tensors involved.
    """
    r = math.sqrt(1.0 - lam)
    cut_rows = int(height * r)
    cut_cols = int(width * r)
    top = min(max(center_row - cut_rows // 2, 0), height)
    bottom = min(max(center_row + cut_rows // 2, 0), height)
    left = min(max(center_col - cut_cols // 2, 0), width)
    right = min(max(center_col + cut_cols // 2, 0), width)
    lam_corrected = 1.0 - (bottom - top) * (right - left) / (height * width)
    return top, left, bottom, right, lam_corrected


BOX_CLIPS = ("clip", "shift")


def box_masks(
    height: int, width: int, lam: float | Tensor, rows: Tensor, cols: Tensor, box_clip: str = "clip"
) -> tuple[Tensor, Tensor]:
    """Per-sample CutMix-style boxes, batched (SMCL mask box, docs/methods.md §SMCL, row D).

    Args:
        height, width: image size.
        lam: one λ̃ for the batch (Python float), or a per-sample tensor ``[N]``.
        rows, cols: int64 ``[N]`` box centres on the target device, e.g. the saliency peaks.
        box_clip: ``"clip"`` (the reference): a box reaching past the border is cut there, so its area
            shrinks. ``"shift"``: the box keeps its drawn size and is moved inward until it lies inside
            the image, so every sample's masked share is ``(2 * (int(H r) // 2)) * (2 * (int(W r) // 2)) /
            (H W)``, i.e. ``1 - λ̃`` up to pixel rounding, wherever the centre falls.

    Returns:
        ``(mask, lam_b)``. ``mask`` is bool ``[N, 1, H, W]`` and is True inside each clipped box.
        ``lam_b`` is float32 ``[N]``, the masked share ``box area / (H * W)``, which equals
        ``1 - lam_corrected`` of :func:`cutmix_box`.

    The arithmetic is the same as :func:`cutmix_box`: rows get ``int(height * r)``, columns get
    ``int(width * r)``, and each interval is ``[c - cut//2, c + cut//2)``, clipped. A tensor ``lam`` is
    evaluated in float64, so it rounds like the Python reference.
    """
    half_r: torch.Tensor | int  # a tensor lam gives tensor halves, a float lam Python ints
    half_c: torch.Tensor | int
    if isinstance(lam, torch.Tensor):
        r = torch.sqrt(1.0 - lam.to(device=rows.device, dtype=torch.float64))
        half_r = torch.floor(height * r).long() // 2
        half_c = torch.floor(width * r).long() // 2
    else:
        r_f = math.sqrt(1.0 - lam)
        half_r = int(height * r_f) // 2
        half_c = int(width * r_f) // 2
    if box_clip == "shift":  # equal-area control: the same box, moved inside
        top, bottom = _shift_inside(rows, half_r, height)
        left, right = _shift_inside(cols, half_c, width)
    elif box_clip == "clip":
        top = (rows - half_r).clamp(0, height)
        bottom = (rows + half_r).clamp(0, height)
        left = (cols - half_c).clamp(0, width)
        right = (cols + half_c).clamp(0, width)
    else:
        raise ValueError(f"unknown box_clip {box_clip!r}; choose from {', '.join(BOX_CLIPS)}")
    in_r = _span_mask(height, top, bottom)  # [N, H]
    in_c = _span_mask(width, left, right)  # [N, W]
    mask = (in_r.unsqueeze(2) & in_c.unsqueeze(1)).unsqueeze(1)
    lam_b = ((bottom - top) * (right - left)).to(torch.float32) / float(height * width)
    return mask, lam_b


def _shift_inside(centre: Tensor, half: int | Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Interval ``[c - half, c + half)`` moved by the least amount that puts it inside ``[0, size)``."""
    width = torch.as_tensor(2 * half, device=centre.device)
    start = torch.minimum(torch.clamp(centre - half, min=0), size - width)
    return start, start + width
