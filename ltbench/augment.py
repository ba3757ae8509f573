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

import functools
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
    "color_jitter",
    "crop_flip_apply",
    "crop_flip_params",
    "cutmix_box",
    "cutout",
    "cutout_mask",
    "normalize",
    "paste",
    "random_crop_flip",
    "resized_crop_flip",
    "rgb_to_gray",
    "rrc_params",
    "sim_augment",
    "square_mask",
]

# ITU-R BT.601 luma weights. PIL's ``convert("L")`` uses them. torchvision's tensor grayscale uses
# 0.2989 for red instead, which differs by at most 1e-4.
_LUMA = (0.299, 0.587, 0.114)

# RGB -> YIQ (NTSC) matrix, rounded to three decimals so that grey maps to I = Q = 0 exactly. The
# inverse is computed once (on first use, not at import: torch loads lazily), so a zero hue rotation gives
# the identity up to float rounding.
_RGB2YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


@functools.cache
def _yiq2rgb() -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(row) for row in torch.linalg.inv(torch.tensor(_RGB2YIQ, dtype=torch.float64)).tolist())


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


# ----------------------------------------------------------------------------------------------------
# SimAugment (SupContrast main_supcon.py): RandomResizedCrop + flip + ColorJitter(p) + RandomGrayscale(p)
# ----------------------------------------------------------------------------------------------------


def rrc_params(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    attempts: int = 10,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-sample RandomResizedCrop boxes. Returns int64 ``(top, left, crop_h, crop_w)``, each ``[n]``.

    This is the rule of torchvision's ``RandomResizedCrop.get_params``, vectorised. Up to ``attempts``
    tries per sample each draw an area fraction uniform on ``scale`` and a log-uniform aspect ratio
    (w/h) on ``ratio``. They set ``w = round(sqrt(A * aspect))`` and ``h = round(sqrt(A / aspect))``,
    using round-half-to-even like Python's ``round``. The first try that fits inside the image is kept.
    All tries are drawn at once and the first valid one is picked with ``argmax``. Because the tries
    are i.i.d., the box distribution is the same as torchvision's sequential loop; only the random
    stream differs.

    If no try fits, torchvision's fallback applies: a central crop clamped to the ``ratio`` range. For
    square images with 1 in ``ratio``, that is the full image. The kept box's top-left corner is
    uniform over the valid integer positions.
    """
    area = float(height * width)
    u = torch.rand((n, attempts, 2), generator=generator, device=device)
    target = area * _uniform(scale[0], scale[1], u[..., 0])
    aspect = torch.exp(_uniform(math.log(ratio[0]), math.log(ratio[1]), u[..., 1]))
    cw = torch.round(torch.sqrt(target * aspect))
    ch = torch.round(torch.sqrt(target / aspect))
    valid = (cw > 0) & (cw <= width) & (ch > 0) & (ch <= height)
    first = valid.to(torch.int32).argmax(dim=1, keepdim=True)  # index of the first valid try
    ok = valid.any(dim=1)
    cw = cw.gather(1, first).squeeze(1).long()
    ch = ch.gather(1, first).squeeze(1).long()

    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fh, fw = height, int(round(height * max(ratio)))
    else:
        fw, fh = width, height

    pos = torch.rand((n, 2), generator=generator, device=device)
    top = torch.floor(pos[:, 0] * (height - ch + 1)).long()
    left = torch.floor(pos[:, 1] * (width - cw + 1)).long()
    top = torch.where(ok, top, (height - fh) // 2)
    left = torch.where(ok, left, (width - fw) // 2)
    ch = torch.where(ok, ch, fh)
    cw = torch.where(ok, cw, fw)
    return top, left, ch, cw


def resized_crop_flip(
    x: Tensor,
    top: Tensor,
    left: Tensor,
    crop_h: Tensor,
    crop_w: Tensor,
    flip_mask: Tensor | None = None,
    size: tuple[int, int] | None = None,
) -> Tensor:
    """Crop each sample's box, resize it bilinearly to ``size`` (default H x W), and optionally mirror it.

    This uses one ``F.affine_grid`` + ``F.grid_sample`` call (bilinear, ``align_corners=False``). The
    per-sample affine maps output pixel centres to the centres of the crop box, like crop-then-resize.
    The sampling coordinates are clamped to the box's outermost pixel centres. That makes the crop
    edges replicate, as a resize of the cropped image does, instead of blending in pixels from outside
    the box. A flip is folded into the affine as a negative x-scale, which mirrors the output.

    Compared with torchvision, this matches ``resized_crop`` + ``hflip`` on float tensors (bilinear) up
    to float rounding whenever the box is not larger than the output, i.e. upsampling. For a box larger
    than the output (downsampling), there is no antialiasing, unlike PIL and torchvision's default
    ``antialias=True``. That case never arises when the output size is the input size. PIL also
    quantises to uint8 after the resize, and this code does not.
    """
    n, c, h, w = _check_batch(x)
    x = _to_float01(x)
    oh, ow = size if size is not None else (h, w)
    t, l_, chf, cwf = (v.to(x.dtype) for v in (top, left, crop_h, crop_w))
    sx = cwf / w
    sy = chf / h
    if flip_mask is not None:
        sx = torch.where(flip_mask, -sx, sx)
    zero = torch.zeros_like(sx)
    theta = torch.stack(
        (
            torch.stack((sx, zero, (2 * l_ + cwf) / w - 1), dim=1),
            torch.stack((zero, sy, (2 * t + chf) / h - 1), dim=1),
        ),
        dim=1,
    )  # [N, 2, 3]
    grid = F.affine_grid(theta, [n, c, oh, ow], align_corners=False)
    gx_lo = ((2 * l_ + 1) / w - 1).view(n, 1, 1)
    gx_hi = ((2 * (l_ + cwf) - 1) / w - 1).view(n, 1, 1)
    gy_lo = ((2 * t + 1) / h - 1).view(n, 1, 1)
    gy_hi = ((2 * (t + chf) - 1) / h - 1).view(n, 1, 1)
    grid = torch.stack(
        (
            torch.minimum(torch.maximum(grid[..., 0], gx_lo), gx_hi),
            torch.minimum(torch.maximum(grid[..., 1], gy_lo), gy_hi),
        ),
        dim=-1,
    )
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _hue_shift_hsv(x: Tensor, hue: Tensor) -> Tensor:
    """Rotate the HSV hue of a float RGB batch by ``hue[n]`` turns, keeping S and V.

    Hue in sixths of a turn, ``h6``, comes from the usual hexcone formula. The way back uses the closed
    form ``channel = V - (V - min) * clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + h6) mod 6`` and
    ``n = 5, 3, 1`` for R, G, B. Sector selection uses mask arithmetic rather than ``torch.where``,
    which is several times slower on CPU. Grey pixels (max = min) come back unchanged.
    """
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    is_b = ~(is_r | is_g)
    num = is_r * (g - b) + is_g * (2.0 * delta + (b - r)) + is_b * (4.0 * delta + (r - g))
    h6 = num / (delta + (delta == 0))  # in [-1, 5]; grey pixels get 0
    offs = (5.0 - 2.0 * torch.arange(3, device=x.device, dtype=x.dtype)).view(1, 3, 1, 1)  # R, G, B: 5, 3, 1
    k = h6 + 6.0 * hue.view(-1, 1, 1, 1) + offs
    # k mod 6 via floor. The weight below is continuous across the wrap (it is 0 at k = 0 and at
    # k = 6), so a rounding slip at an exact multiple of 6 is harmless.
    k = k - 6.0 * torch.floor(k * (1.0 / 6.0))
    weight = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return maxc - delta * weight


def _hue_shift_yiq(x: Tensor, hue: Tensor) -> Tensor:
    """Approximate a hue shift of ``hue[n]`` turns by rotating the I/Q chroma plane of YIQ, then clamp.

    Luma Y is kept exactly, whereas the HSV shift keeps V and S. The rotation runs clockwise in the
    (I, Q) plane, which is the direction of increasing HSV hue (red to yellow to green). On saturated
    colours this deviates noticeably from the HSV shift.
    """
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    (a00, a01, a02), (a10, a11, a12), (a20, a21, a22) = _RGB2YIQ
    yy = a00 * r + a01 * g + a02 * b
    ii = a10 * r + a11 * g + a12 * b
    qq = a20 * r + a21 * g + a22 * b
    theta = (-2.0 * math.pi) * hue.view(-1, 1, 1, 1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    ii, qq = cos * ii - sin * qq, sin * ii + cos * qq
    out = [m0 * yy + m1 * ii + m2 * qq for (m0, m1, m2) in _yiq2rgb()]
    return torch.cat(out, dim=1).clamp(0.0, 1.0)


def color_jitter(
    x: Tensor,
    brightness: Tensor | None = None,
    contrast: Tensor | None = None,
    saturation: Tensor | None = None,
    hue: Tensor | None = None,
    hue_mode: str = "hsv",
) -> Tensor:
    """Colour jitter with per-sample factors (each a tensor ``[N]``, or ``None`` to skip that step).

    The steps run in this **fixed** order: brightness, contrast, saturation, hue. torchvision's
    ``ColorJitter`` shuffles the order for every image. Each step clamps to [0, 1], like torchvision's
    ``_blend``:

    * brightness: ``b * x``;
    * contrast: blend with the mean luma of each image (for C = 1, the image mean);
    * saturation: blend with the per-pixel luma;
    * hue: the shift in turns. With ``hue_mode="hsv"`` (the default), this is the exact HSV hue
      rotation of torchvision's tensor ``adjust_hue``. With ``"yiq"``, it is a cheaper approximation
      by rotation in YIQ space; see :func:`_hue_shift_yiq`.

    Saturation and hue are skipped for C = 1. The luma weights are PIL's (see :func:`rgb_to_gray`).
    PIL's ``ImageEnhance`` differs in two ways: it rounds to uint8 after every step, and it rounds the
    contrast mean to an integer grey level.
    """
    c = x.shape[1]

    def col(v: Tensor) -> Tensor:
        return v.to(x.dtype).view(-1, 1, 1, 1)

    if brightness is not None:
        x = (col(brightness) * x).clamp(0.0, 1.0)
    if contrast is not None:
        f = col(contrast)
        ch_mean = x.mean(dim=(2, 3))  # [N, C]. The mean luma is the luma of the channel means.
        mean = rgb_to_gray(ch_mean.view(-1, 3, 1, 1)) if c == 3 else ch_mean.view(-1, 1, 1, 1)
        x = (f * x + (1.0 - f) * mean).clamp(0.0, 1.0)
    if c == 3 and saturation is not None:
        f = col(saturation)
        x = (f * x + (1.0 - f) * rgb_to_gray(x)).clamp(0.0, 1.0)
    if c == 3 and hue is not None:
        if hue_mode == "hsv":
            x = _hue_shift_hsv(x, hue.to(x.dtype))
        elif hue_mode == "yiq":
            x = _hue_shift_yiq(x, hue.to(x.dtype))
        else:
            raise ValueError(f"hue_mode must be 'hsv' or 'yiq', got {hue_mode!r}")
    return x


def sim_augment(
    x_uint8: Tensor,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
    jitter_p: float = 0.8,
    gray_p: float = 0.2,
    hue_mode: str = "hsv",
) -> Tensor:
    """SimAugment view (SupContrast ``main_supcon.py`` CIFAR recipe, no blur), batched with per-sample parameters.

    Pipeline per sample:

    1. ``RandomResizedCrop(H x W, scale, ratio)`` (:func:`rrc_params` + :func:`resized_crop_flip`),
       bilinear. If none of the 10 tries fits, the sample falls back to torchvision's central crop,
       which is the full image for square inputs.
    2. ``RandomHorizontalFlip(0.5)``, folded into the resampling grid.
    3. ``ColorJitter(*jitter)`` with probability ``jitter_p``. The factors are brightness, contrast and
       saturation ~ U(max(0, 1 - j), 1 + j) and hue ~ U(-j_h, j_h). Samples that are not selected get
       identity factors, so the whole batch runs through the same ops with no branch per sample.
    4. ``RandomGrayscale(gray_p)``: luma copied to all three channels.
    5. Clamp to [0, 1].

    For C = 1 inputs, saturation, hue and grayscale are skipped.

    Deviations from torchvision's PIL pipeline:

    * the jitter order is fixed (brightness, contrast, saturation, hue), while torchvision draws a
      random order per image;
    * there is no uint8 rounding between steps;
    * the contrast mean is not rounded to an integer grey level;
    * crops are resampled without antialiasing. This only matters if a box is larger than the output,
      which never happens here;
    * with ``hue_mode="yiq"``, the hue step is only an approximation of the HSV hue shift;
    * the random stream differs from torchvision's; only the parameter distributions are the same.

    Random draws, in order: RRC tries ``[N, 10, 2]``, RRC positions ``[N, 2]``, flip ``[N]``,
    jitter gate ``[N]``, jitter factors ``[N, 4]``, grayscale gate ``[N]``.

    Returns:
        float32 ``[N, C, H, W]`` in [0, 1] (the input's float dtype if ``x_uint8`` is float).
    """
    n, c, h, w = _check_batch(x_uint8)
    device = x_uint8.device
    top, left, ch, cw = rrc_params(n, h, w, scale, ratio, generator, device)
    flip_mask = _rand(n, generator, device) < 0.5
    x = resized_crop_flip(x_uint8, top, left, ch, cw, flip_mask)

    jit_on = _rand(n, generator, device) < jitter_p
    u = _rand(n, generator, device, 4)
    bj, cj, sj, hj = jitter

    def factor(j: float, ui: Tensor) -> Tensor:
        return torch.where(jit_on, _uniform(max(0.0, 1.0 - j), 1.0 + j, ui), torch.ones_like(ui))

    hue = torch.where(jit_on, _uniform(-hj, hj, u[:, 3]), torch.zeros_like(u[:, 3]))
    x = color_jitter(
        x,
        brightness=factor(bj, u[:, 0]) if bj > 0 else None,
        contrast=factor(cj, u[:, 1]) if cj > 0 else None,
        saturation=factor(sj, u[:, 2]) if sj > 0 else None,
        hue=hue if hj > 0 else None,
        hue_mode=hue_mode,
    )

    gray_on = _rand(n, generator, device) < gray_p
    if c == 3:
        # lerp with weight exactly 1 returns the end value exactly, so grey samples have equal channels.
        # It is cheaper than torch.where on CPU.
        x = torch.lerp(x, rgb_to_gray(x).expand(n, 3, h, w), gray_on.to(x.dtype).view(n, 1, 1, 1))
    return x.clamp(0.0, 1.0)
