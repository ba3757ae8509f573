"""ImageNet-family view pipelines and a batched RandAugment, on the device, per-sample random parameters.

Inputs are uint8 squares from `FileSource` (256 px for 224-px views, `sources.base_size`); outputs are
float [0, 1] views of `size` pixels, not normalised (the trainer normalises). Every draw goes through
the trainer's generator, so runs are reproducible and resumable.

Pipelines (docs/methods.md §ImageNet-LT split and §Augmentations):

* `standard` (CMO ImageNet train transform): RandomResizedCrop(size, scale 0.08-1) + flip +
  ColorJitter(0.4, 0.4, 0.4, 0) applied to every image;
* `sim` (BCL `augmentation_sim`): RandomResizedCrop(size, scale 0.08-1) + flip +
  ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8 + RandomGrayscale(0.2);
* `randaug` (CMO/BCL `rand-n2-m10-mstd0.5`): `standard` followed by :func:`rand_augment`;
* `none`: the centre `size` crop of the stored square (what the test transform sees).

Deviations from the references' PIL pipelines: crops come from the stored 256-px square (see
`ltbench.sources.FileSource`); jitter runs in a fixed order (brightness, contrast, saturation, hue)
instead of a random order per image; no uint8 rounding between steps; crops larger than the output are
resampled without antialiasing (they are at most 256/224 larger).

RandAugment (:func:`rand_augment`) follows the semantics of the timm-style `rand-n2-m10-mstd0.5` that
CMO, BCL and CCM copy (naver-ai/cmo ``util/randaugment.py``): for each image, 2 ops drawn uniformly with
replacement from the 15 below, each applied with probability 0.5 at a magnitude drawn per application
from N(10, 0.5²) and clipped to [0, 10]; level fraction f = magnitude / 10:

| op | parameter |
|---|---|
| Rotate | ±30·f degrees about the centre |
| ShearX, ShearY | ±0.3·f, about the top-left corner (PIL affine) |
| TranslateXRel, TranslateYRel | ±0.45·f of the width / height |
| Color, Contrast, Brightness, Sharpness | PIL ImageEnhance with factor 1.8·f + 0.1 |
| PosterizeTpu | keep int(4·f) bits |
| Solarize | invert pixels >= int(256·f) |
| SolarizeAdd | add int(110·f) to pixels < 128 |
| AutoContrast, Equalize, Invert | PIL ImageOps, no parameter |

Geometric ops fill uncovered pixels with (124, 116, 104) (`img_mean`). It is batched: every op runs on
the whole batch with identity parameters for the images that did not draw it, so there is no per-sample
Python loop and no host synchronisation. Deviations: bilinear resampling only (timm draws bilinear or
bicubic per op); float arithmetic without uint8 rounding after each op; the random stream differs from
Python's `random` (the parameter distributions are the same).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ltbench import augment as aug
from ltbench.device_constants import device_constant

RA_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeTpu", "Solarize", "SolarizeAdd", "Color",
          "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
RA_FILL = (124, 116, 104)
PIPELINES = ("standard", "sim", "randaug", "none")


def pipeline(name: str, images: Tensor, generator: torch.Generator, size: int) -> Tensor:
    """An ImageNet-family named pipeline: uint8 [N, 3, S, S] -> float [0, 1] [N, 3, size, size]."""
    if name == "standard":
        return crop_flip_jitter(images, generator, size)
    if name == "sim":
        return sim_view(images, generator, size)
    if name == "randaug":
        return rand_augment(crop_flip_jitter(images, generator, size), generator)
    if name == "none":
        return center_crop(images, size)
    raise ValueError(f"unknown ImageNet pipeline {name!r}; choose from {', '.join(PIPELINES)}")


def center_crop(images: Tensor, size: int) -> Tensor:
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size].float() / 255.0


def _crop_flip(images: Tensor, generator: torch.Generator, size: int,
               scale: tuple[float, float] = (0.08, 1.0)) -> Tensor:
    n, _, h, w = images.shape
    top, left, ch, cw = aug.rrc_params(n, h, w, scale, generator=generator, device=images.device)
    flip = torch.rand(n, generator=generator, device=images.device) < 0.5
    return aug.resized_crop_flip(images, top, left, ch, cw, flip, size=(size, size))


def crop_flip_jitter(images: Tensor, generator: torch.Generator, size: int) -> Tensor:
    """RandomResizedCrop(size) + flip + ColorJitter(0.4, 0.4, 0.4, 0) (CMO ``imagenet_train.py``)."""
    x = _crop_flip(images, generator, size)
    u = torch.rand((x.shape[0], 3), generator=generator, device=x.device)
    f = 0.6 + 0.8 * u  # U(0.6, 1.4)
    return aug.color_jitter(x, brightness=f[:, 0], contrast=f[:, 1], saturation=f[:, 2])


def sim_view(images: Tensor, generator: torch.Generator, size: int) -> Tensor:
    """BCL ImageNet SimAugment: RRC(0.08-1) + flip + jitter(0.4, 0.4, 0.4, 0.1) p 0.8 + grayscale p 0.2."""
    x = _crop_flip(images, generator, size)
    n, dev = x.shape[0], x.device
    on = torch.rand(n, generator=generator, device=dev) < 0.8
    u = torch.rand((n, 4), generator=generator, device=dev)
    one = torch.ones_like(u[:, 0])
    f = torch.where(on.unsqueeze(1), 0.6 + 0.8 * u[:, :3], one.unsqueeze(1))
    hue = torch.where(on, -0.1 + 0.2 * u[:, 3], torch.zeros_like(one))
    x = aug.color_jitter(x, brightness=f[:, 0], contrast=f[:, 1], saturation=f[:, 2], hue=hue)
    gray = (torch.rand(n, generator=generator, device=dev) < 0.2).to(x.dtype).view(n, 1, 1, 1)
    return torch.lerp(x, aug.rgb_to_gray(x).expand_as(x), gray).clamp(0.0, 1.0)


# ----- RandAugment ------------------------------------------------------------------------------------

def _col(v: Tensor) -> Tensor:
    return v.view(-1, 1, 1, 1)


def _gray255(v: Tensor) -> Tensor:
    """PIL's L conversion (ITU-R 601-2 luma) of a 0..255 RGB batch, [N, 1, H, W]."""
    return (v[:, 0:1] * 299 + v[:, 1:2] * 587 + v[:, 2:3] * 114) / 1000


def _blend(degenerate: Tensor, v: Tensor, factor: Tensor) -> Tensor:
    return (degenerate + _col(factor) * (v - degenerate)).clamp(0.0, 255.0)


def _smooth(v: Tensor) -> Tensor:
    """PIL ImageFilter.SMOOTH (3x3, centre 5, others 1, /13); the 1-px border is left unfiltered."""
    out = (F.avg_pool2d(v, 3, stride=1, padding=1) * 9.0 + 4.0 * v) / 13.0  # 3x3 box sum + 4 x centre
    inner = torch.zeros_like(v[:1, :1], dtype=torch.bool)
    inner[..., 1:-1, 1:-1] = True
    return torch.where(inner, out, v)


def _autocontrast(v: Tensor) -> Tensor:
    lo = v.amin(dim=(2, 3), keepdim=True)
    hi = v.amax(dim=(2, 3), keepdim=True)
    scale = 255.0 / (hi - lo).clamp(min=1e-6)
    out = torch.floor((v - lo) * scale).clamp(0.0, 255.0)
    return torch.where(hi > lo, out, v)


def _equalize(v: Tensor) -> Tensor:
    """PIL ImageOps.equalize per image and channel (histogram LUT), batched."""
    n, c, h, w = v.shape
    q = v.round().clamp(0, 255).long().reshape(n * c, h * w)
    offsets = torch.arange(n * c, device=v.device).unsqueeze(1) * 256
    hist = torch.bincount((q + offsets).reshape(-1), minlength=n * c * 256).view(n * c, 256)
    nonzero = hist > 0
    last = 255 - nonzero.flip(1).to(torch.int64).argmax(dim=1, keepdim=True)  # highest level present
    step = (hist.sum(dim=1, keepdim=True) - hist.gather(1, last)) // 255
    ok = (nonzero.sum(dim=1, keepdim=True) > 1) & (step > 0)
    cum = hist.cumsum(dim=1) - hist  # pixels below each level
    lut = ((step // 2 + cum) // step.clamp(min=1)).clamp(max=255)
    out = lut.gather(1, q).to(v.dtype)
    return torch.where(ok, out, q.to(v.dtype)).reshape(n, c, h, w)


def _affine(v: Tensor, matrices: Tensor, fill: Tensor) -> Tensor:
    """Resample with per-sample pixel-space affines (output -> input, PIL convention), fill outside."""
    n, c, h, w = v.shape
    to_norm = device_constant(((2.0 / w, 0.0, -1.0), (0.0, 2.0 / h, -1.0), (0.0, 0.0, 1.0)), v.device, v.dtype)
    from_norm = torch.linalg.inv(to_norm)
    theta = (to_norm @ matrices @ from_norm)[:, :2]
    grid = F.affine_grid(theta, [n, c + 1, h, w], align_corners=False)
    ones = torch.ones_like(v[:, :1])
    out = F.grid_sample(torch.cat([v, ones], dim=1), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    cover = out[:, c:]
    return out[:, :c] + (1.0 - cover) * fill.view(1, c, 1, 1)


def rand_augment(x: Tensor, generator: torch.Generator, num_ops: int = 2, magnitude: float = 10.0,
                 magnitude_std: float = 0.5, prob: float = 0.5, fill: tuple[int, ...] = RA_FILL) -> Tensor:
    """timm-style RandAugment on a float [0, 1] RGB batch, per-sample ops and magnitudes (module docstring)."""
    n, _, h, w = x.shape
    dev, dt = x.device, x.dtype
    v = x * 255.0
    fill_t = device_constant(tuple(fill), dev, dt)
    ident = torch.eye(3, dtype=dt, device=dev).repeat(n, 1, 1)
    for _ in range(num_ops):
        op = torch.randint(len(RA_OPS), (n,), generator=generator, device=dev)
        gate = torch.rand(n, generator=generator, device=dev) < prob
        level = (magnitude + magnitude_std * torch.randn(n, generator=generator, device=dev)).clamp(0.0, 10.0)
        sign = torch.where(torch.rand(n, generator=generator, device=dev) < 0.5, -1.0, 1.0).to(dt)
        frac = level.to(dt) / 10.0
        sel = {name: gate & (op == i) for i, name in enumerate(RA_OPS)}

        # geometric ops: one resampling of the whole batch (identity for the others)
        m = ident.clone()
        cx, cy = w / 2.0, h / 2.0
        rad = torch.deg2rad(30.0 * frac * sign)
        cos, sin = torch.cos(rad), torch.sin(rad)
        rot = sel["Rotate"]
        m[:, 0, 0] = torch.where(rot, cos, m[:, 0, 0])
        m[:, 0, 1] = torch.where(rot, -sin, m[:, 0, 1])
        m[:, 0, 2] = torch.where(rot, cx - cos * cx + sin * cy, m[:, 0, 2])
        m[:, 1, 0] = torch.where(rot, sin, m[:, 1, 0])
        m[:, 1, 1] = torch.where(rot, cos, m[:, 1, 1])
        m[:, 1, 2] = torch.where(rot, cy - sin * cx - cos * cy, m[:, 1, 2])
        shear = 0.3 * frac * sign
        m[:, 0, 1] = torch.where(sel["ShearX"], shear, m[:, 0, 1])
        m[:, 1, 0] = torch.where(sel["ShearY"], shear, m[:, 1, 0])
        shift = 0.45 * frac * sign
        m[:, 0, 2] = torch.where(sel["TranslateXRel"], shift * w, m[:, 0, 2])
        m[:, 1, 2] = torch.where(sel["TranslateYRel"], shift * h, m[:, 1, 2])
        geometric = rot | sel["ShearX"] | sel["ShearY"] | sel["TranslateXRel"] | sel["TranslateYRel"]
        v = torch.where(_col(geometric), _affine(v, m, fill_t), v)

        # PIL ImageEnhance blends: factor 1.8 f + 0.1, identity (1) for the others
        enhance = 1.8 * frac + 0.1
        one = torch.ones_like(enhance)
        v = _blend(torch.zeros_like(v), v, torch.where(sel["Brightness"], enhance, one))
        v = _blend(_gray255(v), v, torch.where(sel["Color"], enhance, one))
        mean = torch.floor(_gray255(v).mean(dim=(2, 3), keepdim=True) + 0.5)
        v = _blend(mean, v, torch.where(sel["Contrast"], enhance, one))
        v = _blend(_smooth(v), v, torch.where(sel["Sharpness"], enhance, one))

        # pixel-level ops
        v = torch.where(_col(sel["Invert"]), 255.0 - v, v)
        bits = torch.floor(4.0 * frac)  # PosterizeTpu: keep `bits` high bits
        step = _col(torch.pow(2.0, 8.0 - bits))
        v = torch.where(_col(sel["PosterizeTpu"]), torch.floor(v.round() / step) * step, v)
        thresh = _col(torch.floor(256.0 * frac))
        v = torch.where(_col(sel["Solarize"]) & (v >= thresh), 255.0 - v, v)
        add = _col(torch.floor(110.0 * frac))
        v = torch.where(_col(sel["SolarizeAdd"]) & (v < 128.0), (v + add).clamp(max=255.0), v)
        v = torch.where(_col(sel["AutoContrast"]), _autocontrast(v), v)
        v = torch.where(_col(sel["Equalize"]), _equalize(v), v)
    return (v / 255.0).clamp(0.0, 1.0)


__all__ = ["PIPELINES", "RA_OPS", "center_crop", "crop_flip_jitter", "pipeline", "rand_augment", "sim_view"]
