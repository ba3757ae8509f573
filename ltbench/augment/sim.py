"""SimAugment on the device, batched and per sample: RandomResizedCrop + flip + ColorJitter + RandomGrayscale.

The recipe of HobbitLong/SupContrast ``main_supcon.py`` (CIFAR, without blur), also the view of the
ImageNet-LT pipelines (ltbench/augment_imagenet.py). Same conventions as ltbench/augment/core.py: one
tensor-valued draw per parameter through the caller's generator, no host synchronisation.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

from ltbench.augment.core import _check_batch, _rand, _to_float01, _uniform, rgb_to_gray

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
    from torch import Tensor
else:  # torch on first use (ltbench/lazy.py)
    from ltbench.lazy import F, torch

__all__ = ["color_jitter", "resized_crop_flip", "rrc_params", "sim_augment"]

# RGB -> YIQ (NTSC) matrix, rounded to three decimals so that grey maps to I = Q = 0 exactly. The
# inverse is computed once (on first use, not at import: torch loads lazily), so a zero hue rotation gives
# the identity up to float rounding.
_RGB2YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


@functools.cache
def _yiq2rgb() -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(row) for row in torch.linalg.inv(torch.tensor(_RGB2YIQ, dtype=torch.float64)).tolist())


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
