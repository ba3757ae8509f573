"""AutoAugment's CIFAR-10 policy, batched on the device with per-sample sub-policies, equal to PIL's per image.

AutoAugment (Cubuk et al., CVPR 2019, arXiv 1805.09501) learned 25 sub-policies for CIFAR-10; each is two
(operation, probability, magnitude level 0-9) steps. Per image, one sub-policy is drawn uniformly and
each of its two steps is applied with its probability. The reference is the widely copied PIL
implementation (DeepVoltaire/AutoAugment `autoaugment.py::SubPolicy`), which CMO's
`util/autoaug.py::CIFAR10Policy` and ConCutMix's CIFAR classification view use; the policy table is also
torchvision's `AutoAugmentPolicy.CIFAR10`:

| op | value at level m (0-9, numpy.linspace) | PIL call of the reference |
|---|---|---|
| ShearX, ShearY | ±linspace(0, 0.3)[m] | affine (1, ±v, 0, 0, 1, 0) / (1, 0, 0, ±v, 1, 0), BICUBIC, fill 128 |
| TranslateX, TranslateY | ±linspace(0, 150/331)[m] x side | affine with that offset, NEAREST, fill 128 |
| Rotate | linspace(0, 30)[m] degrees, no sign | RGBA rotate about the centre, NEAREST, composited on grey 128 |
| Color, Contrast, Sharpness, Brightness | factor 1 ± linspace(0, 0.9)[m] | ImageEnhance |
| Posterize | keep round(linspace(8, 4))[m] bits | ImageOps.posterize |
| Solarize | invert pixels >= linspace(256, 0)[m] | ImageOps.solarize |
| AutoContrast, Equalize, Invert | no parameter | ImageOps |

The sign of the signed ops is drawn per application. Rotate has none in the reference (`rotate_with_fill`
gets the magnitude as is: always counter-clockwise), so the sign drawn for a Rotate step is unused.

Every op reproduces PIL's uint8 arithmetic, so the batch equals the reference image by image
(tests/test_autoaugment.py checks each op against torchvision's functional ops on PIL images, which call
PIL, and whole sub-policies): values stay integers 0..255 between ops; ImageEnhance blends in float32 and
truncates (Pillow `libImaging/Blend.c`); the L conversion is ITU-R 601-2 in 16.16 fixed point
(`Convert.c`); SMOOTH rounds (`Filter.c`); autocontrast's LUT is computed in float64 like
`ImageOps.autocontrast`; nearest translations floor float64 source coordinates (`Geometry.c`
`ImagingScaleAffine`), nearest rotations use its 16.16 fixed-point path (`affine_fixed`), shears its
bicubic filter (a = -1 cubic, edge rows and columns repeated, truncated). Batched like
`augment_imagenet.rand_augment`: each step computes every op on the whole batch and keeps, per image,
the one it drew (the others pass through), so there is no per-sample Python loop and no host
synchronisation. The random stream is torch's, not Python's `random` (the distributions are the same).
One-channel images: Color is the identity, as PIL's on an L image.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from ltbench.augment_imagenet import _col, _equalize

AA_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Color", "Posterize", "Solarize",
          "Contrast", "Sharpness", "Brightness", "AutoContrast", "Equalize", "Invert")
AA_FILL = 128.0
# ops whose magnitude the reference multiplies by random.choice([-1, 1]) (not Rotate: module docstring)
SIGNED_OPS = frozenset({"ShearX", "ShearY", "TranslateX", "TranslateY", "Color", "Contrast", "Sharpness",
                        "Brightness"})

# (op, probability, level) x 2 per sub-policy: AutoAugment's CIFAR-10 policy (arXiv 1805.09501, appendix)
CIFAR10_POLICY: tuple[tuple[tuple[str, float, int], tuple[str, float, int]], ...] = (
    (("Invert", 0.1, 7), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, 8), ("Equalize", 0.9, 2)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 5), ("Equalize", 0.5, 1)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, 7), ("AutoContrast", 0.4, 8)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 3)),
    (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.2, 8), ("Equalize", 0.6, 4)),
    (("Color", 0.9, 9), ("Equalize", 0.6, 6)),
    (("AutoContrast", 0.8, 4), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 2), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, 8), ("Invert", 0.1, 3)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 1)),
)


def op_value(op: str, level: int) -> float:
    """The magnitude of `op` at `level` (0-9), before the random sign: numpy.linspace(lo, hi, 10)[level]."""
    if op in ("ShearX", "ShearY"):
        return _linspace(0.0, 0.3, level)
    if op in ("TranslateX", "TranslateY"):
        return _linspace(0.0, 150.0 / 331.0, level)
    if op == "Rotate":
        return _linspace(0.0, 30.0, level)
    if op in ("Color", "Contrast", "Sharpness", "Brightness"):
        return _linspace(0.0, 0.9, level)
    if op == "Posterize":
        return float(round(_linspace(8.0, 4.0, level)))
    if op == "Solarize":
        return _linspace(256.0, 0.0, level)
    return 0.0


def _linspace(lo: float, hi: float, level: int) -> float:
    """numpy.linspace(lo, hi, 10)[level], bit for bit (start + i * step, the last point exactly hi)."""
    return hi if level == 9 else level * ((hi - lo) / 9) + lo


@functools.lru_cache(maxsize=8)
def _tables(device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The policy as device tensors: op indices, probabilities, magnitudes (float64, as the reference's),
    and per op whether its magnitude takes the drawn sign."""
    ops = torch.tensor([[AA_OPS.index(o) for o, _, _ in sp] for sp in CIFAR10_POLICY], device=device)
    probs = torch.tensor([[p for _, p, _ in sp] for sp in CIFAR10_POLICY], device=device)
    values = torch.tensor([[op_value(o, m) for o, _, m in sp] for sp in CIFAR10_POLICY], device=device,
                          dtype=torch.float64)
    signed = torch.tensor([o in SIGNED_OPS for o in AA_OPS], device=device)
    return ops, probs, values, signed


# ----- PIL's arithmetic, batched (v: float32 integers 0..255, [N, C, H, W]) ---------------------------

def _luma(v: Tensor) -> Tensor:
    """PIL's RGB -> L: (R 19595 + G 38470 + B 7471 + 2^15) >> 16 (exact in float32: < 2^24)."""
    if v.shape[1] == 1:
        return v
    return torch.floor((v[:, 0:1] * 19595 + v[:, 1:2] * 38470 + v[:, 2:3] * 7471 + 32768) / 65536)


def _blend(degenerate: Tensor, v: Tensor, factor: Tensor) -> Tensor:
    """Image.blend(degenerate, v, factor): float32 arithmetic, clipped, truncated."""
    return torch.floor((degenerate + _col(factor) * (v - degenerate)).clamp(0.0, 255.0))


def _contrast_mean(v: Tensor) -> Tensor:
    """ImageEnhance.Contrast's grey level: int(mean of the L image + 0.5), in exact integer arithmetic."""
    total = _luma(v).to(torch.int64).sum(dim=(1, 2, 3), keepdim=True)
    n = v.shape[2] * v.shape[3]
    return torch.div(2 * total + n, 2 * n, rounding_mode="floor").to(v.dtype)


def _smooth(v: Tensor) -> Tensor:
    """ImageFilter.SMOOTH (3x3, centre 5, others 1, / 13), rounded; the 1-px border is copied."""
    total = F.avg_pool2d(v, 3, stride=1, padding=1, divisor_override=1) + 4.0 * v  # exact integer sums
    out = torch.floor((2.0 * total + 13.0) / 26.0)  # round(total / 13): total / 13 is never k + 0.5
    inner = torch.zeros_like(v[:1, :1], dtype=torch.bool)
    inner[..., 1:-1, 1:-1] = True
    return torch.where(inner, out, v)


def _autocontrast(v: Tensor) -> Tensor:
    """ImageOps.autocontrast per channel: LUT int(i * scale + offset) in float64, identity when flat."""
    lo = v.amin(dim=(2, 3), keepdim=True).double()
    hi = v.amax(dim=(2, 3), keepdim=True).double()
    scale = 255.0 / (hi - lo).clamp(min=1.0)
    offset = -lo * scale
    out = torch.floor(v.double() * scale + offset).clamp(0.0, 255.0).to(v.dtype)
    return torch.where(hi > lo, out, v)


def _pixel_centres(h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
    ys = torch.arange(h, device=device, dtype=torch.float64).view(1, h, 1) + 0.5
    xs = torch.arange(w, device=device, dtype=torch.float64).view(1, 1, w) + 0.5
    return ys, xs


def _gather(v: Tensor, iy: Tensor, ix: Tensor) -> Tensor:
    """v[n, :, iy[n, r, c], ix[n, r, c]] for in-range int64 indices [N, H, W]."""
    n, c, h, w = v.shape
    flat = (iy * w + ix).view(n, 1, h * w).expand(n, c, h * w)
    return v.reshape(n, c, h * w).gather(2, flat).view(n, c, h, w)


def _nearest(v: Tensor, iy: Tensor, ix: Tensor, fill: float) -> Tensor:
    h, w = v.shape[2:]
    inside = ((ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)).unsqueeze(1)
    return torch.where(inside, _gather(v, iy.clamp(0, h - 1), ix.clamp(0, w - 1)), torch.full_like(v, fill))


def _translate(v: Tensor, tx: Tensor, ty: Tensor, fill: float) -> Tensor:
    """PIL affine (1, 0, tx, 0, 1, ty), NEAREST (ImagingScaleAffine): source index floor(p + 0.5 + t)."""
    n, _, h, w = v.shape
    ys, xs = _pixel_centres(h, w, v.device)
    ix = torch.floor(tx.view(n, 1, 1) + xs).long().expand(n, h, w)
    iy = torch.floor(ty.view(n, 1, 1) + ys).long().expand(n, h, w)
    return _nearest(v, iy, ix, fill)


def _rotate(v: Tensor, degrees: Tensor, fill: float) -> Tensor:
    """Image.rotate(degrees) about the centre, NEAREST: PIL's matrix, then its 16.16 fixed-point sampler."""
    n, _, h, w = v.shape
    rad = -torch.deg2rad(degrees.double())
    cos, sin = torch.round(torch.cos(rad), decimals=15), torch.round(torch.sin(rad), decimals=15)
    cx, cy = w / 2.0, h / 2.0
    a = [cos, sin, cos * -cx + sin * -cy + cx, -sin, cos, -sin * -cx + cos * -cy + cy]

    def fix(t: Tensor) -> Tensor:
        return torch.floor(t * 65536.0 + 0.5).long().view(n, 1, 1)

    a0, a1, a3, a4 = fix(a[0]), fix(a[1]), fix(a[3]), fix(a[4])
    a2, a5 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5), fix(a[5] + a[3] * 0.5 + a[4] * 0.5)
    yi = torch.arange(h, device=v.device).view(1, h, 1)
    xi = torch.arange(w, device=v.device).view(1, 1, w)
    ix = torch.div(a2 + yi * a1 + xi * a0, 65536, rounding_mode="floor")  # xx >> 16
    iy = torch.div(a5 + yi * a4 + xi * a3, 65536, rounding_mode="floor")
    return _nearest(v, iy, ix, fill)


def _cubic(p0: Tensor, p1: Tensor, p2: Tensor, p3: Tensor, d: Tensor) -> Tensor:
    """Pillow's BICUBIC macro (Geometry.c), in its order of operations (the a = -1 cubic)."""
    q2 = -p0 + p2
    q3 = 2 * (p0 - p1) + p2 - p3
    q4 = -p0 + p1 - p2 + p3
    return p1 + d * (q2 + d * (q3 + d * q4))


def _shear(v: Tensor, sx: Tensor, sy: Tensor, fill: float) -> Tensor:
    """PIL affine (1, sx, 0, sy, 1, 0), BICUBIC: Pillow's generic transform and bicubic filter in float64."""
    n, c, h, w = v.shape
    ys, xs = _pixel_centres(h, w, v.device)
    px = xs + sx.double().view(n, 1, 1) * ys  # a0 x + a1 y + a2, as affine_transform computes it
    py = sy.double().view(n, 1, 1) * xs + ys
    inside = ((px >= 0) & (px < w) & (py >= 0) & (py < h)).unsqueeze(1)
    fx, fy = px - 0.5, py - 0.5
    x0, y0 = torch.floor(fx), torch.floor(fy)
    dx, dy = (fx - x0).unsqueeze(1), (fy - y0).unsqueeze(1)
    x0, y0 = x0.long() - 1, y0.long() - 1
    src = v.double()
    cols = [(x0 + k).clamp(0, w - 1) for k in range(4)]
    rows = []
    for j in range(4):
        p0, p1, p2, p3 = (_gather(src, (y0 + j).clamp(0, h - 1), col) for col in cols)
        rows.append(_cubic(p0, p1, p2, p3, dx))
    out = _cubic(rows[0], rows[1], rows[2], rows[3], dy)
    out = torch.floor(out.clamp(0.0, 255.0)).to(v.dtype)  # (UINT8) v after the <= 0 / >= 255 tests
    return torch.where(inside, out, torch.full_like(v, fill))


def apply_ops(v: Tensor, op: Tensor, value: Tensor, fill: float = AA_FILL) -> Tensor:
    """One AutoAugment step on a batch of integer values 0..255 (float32 [N, C, H, W]).

    Image i gets `AA_OPS[op[i]]` with the signed magnitude `value[i]` (float64 [N]; the factor, shift
    fraction, angle, bits or threshold of the module table); op -1 leaves it unchanged.
    """
    n, _, h, w = v.shape
    sel = {name: _col(op == i) for i, name in enumerate(AA_OPS)}
    factor = (1.0 + value).to(v.dtype)  # PIL receives the Python float 1 +- m and blends in float32
    zero = torch.zeros_like(value)
    out = v
    out = torch.where(sel["ShearX"] | sel["ShearY"],
                      _shear(v, torch.where(op == AA_OPS.index("ShearX"), value, zero),
                             torch.where(op == AA_OPS.index("ShearY"), value, zero), fill), out)
    out = torch.where(sel["TranslateX"] | sel["TranslateY"],
                      _translate(v, torch.where(op == AA_OPS.index("TranslateX"), value * w, zero),
                                 torch.where(op == AA_OPS.index("TranslateY"), value * h, zero), fill), out)
    out = torch.where(sel["Rotate"], _rotate(v, value, fill), out)
    out = torch.where(sel["Brightness"], _blend(torch.zeros_like(v), v, factor), out)
    out = torch.where(sel["Color"], _blend(_luma(v), v, factor), out)
    out = torch.where(sel["Contrast"], _blend(_contrast_mean(v), v, factor), out)
    out = torch.where(sel["Sharpness"], _blend(_smooth(v), v, factor), out)
    out = torch.where(sel["Invert"], 255.0 - v, out)
    keep = _col(torch.pow(2.0, 8.0 - value.clamp(0.0, 8.0)).to(v.dtype))  # posterize: keep `value` high bits
    out = torch.where(sel["Posterize"], torch.floor(v / keep) * keep, out)
    out = torch.where(sel["Solarize"] & (v >= _col(value.to(v.dtype))), 255.0 - v, out)
    out = torch.where(sel["AutoContrast"], _autocontrast(v), out)
    return torch.where(sel["Equalize"], _equalize(v), out)


def cifar10_policy(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """AutoAugment CIFAR-10 policy on a float [0, 1] batch [N, C, H, W] (C = 1 or 3), per-sample draws.

    The input is read as uint8 pixels (x * 255, rounded), as the reference receives PIL images.
    Random draws, in order: sub-policy index [N]; then per step: gate [N], sign [N].
    """
    n = x.shape[0]
    dev = x.device
    ops_t, probs_t, values_t, signed_t = _tables(dev)
    v = (x * 255.0).round().clamp(0.0, 255.0)
    policy = torch.randint(len(CIFAR10_POLICY), (n,), generator=generator, device=dev)
    for step in range(2):
        gate = torch.rand(n, generator=generator, device=dev) < probs_t[policy, step]
        sign = torch.where(torch.rand(n, generator=generator, device=dev) < 0.5, -1.0, 1.0).double()
        op = ops_t[policy, step]
        signed = torch.where(signed_t[op], sign, 1.0) * values_t[policy, step]
        v = apply_ops(v, torch.where(gate, op, -1), signed)
    return v / 255.0


__all__ = ["AA_OPS", "CIFAR10_POLICY", "SIGNED_OPS", "apply_ops", "cifar10_policy", "op_value"]
