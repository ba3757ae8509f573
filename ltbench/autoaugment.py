"""AutoAugment's CIFAR-10 policy, batched on the device with per-sample sub-policies.

AutoAugment (Cubuk et al., CVPR 2019, arXiv 1805.09501) learned 25 sub-policies for CIFAR-10; each is two
(operation, probability, magnitude level 0-9) steps. Per image, one sub-policy is drawn uniformly and
each of its two steps is applied with its probability. The operations' magnitude ranges are those of
the widely copied PIL implementation (DeepVoltaire/AutoAugment `autoaugment.py::SubPolicy`, which CMO's
`util/autoaug.py::CIFAR10Policy` and ConCutMix's CIFAR "uncutout" classification view use; the policy
table is also torchvision's `AutoAugmentPolicy.CIFAR10`):

| op | value at level m (0-9) |
|---|---|
| ShearX, ShearY | ±linspace(0, 0.3, 10)[m], PIL affine about the top-left corner |
| TranslateX, TranslateY | ±linspace(0, 150/331, 10)[m] x image side, in pixels |
| Rotate | ±linspace(0, 30, 10)[m] degrees about the centre |
| Color, Contrast, Sharpness, Brightness | PIL ImageEnhance factor 1 ± linspace(0, 0.9, 10)[m] |
| Posterize | keep round(linspace(8, 4, 10))[m] bits |
| Solarize | invert pixels >= linspace(256, 0, 10)[m] |
| AutoContrast, Equalize, Invert | PIL ImageOps, no parameter |

The sign is drawn per application. Geometric ops fill uncovered pixels with grey 128 (the reference's
`fillcolor`). Batched like `augment_imagenet.rand_augment`: each step runs every op on the whole batch
with identity parameters for the images that did not draw it, so there is no per-sample Python loop and
no host synchronisation. Deviations: bilinear resampling for every geometric op (the reference uses
bicubic for shears, nearest for translations and rotations); no uint8 rounding between ops; the random
stream is torch's, not Python's `random` (the distributions are the same). One-channel images skip
nothing: Color is then the identity, as PIL's on an L image.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from ltbench.augment_imagenet import _affine, _autocontrast, _blend, _col, _equalize, _smooth

AA_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Color", "Posterize", "Solarize",
          "Contrast", "Sharpness", "Brightness", "AutoContrast", "Equalize", "Invert")
AA_FILL = 128.0

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


def _linspace(lo: float, hi: float, level: int) -> float:
    return lo + (hi - lo) * level / 9.0


def op_value(op: str, level: int) -> float:
    """The magnitude of `op` at `level` (0-9), before the random sign (module table)."""
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


@functools.lru_cache(maxsize=8)
def _tables(device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """The policy as device tensors (built once per device and dtype, not per batch)."""
    ops = torch.tensor([[AA_OPS.index(o) for o, _, _ in sp] for sp in CIFAR10_POLICY], device=device)
    probs = torch.tensor([[p for _, p, _ in sp] for sp in CIFAR10_POLICY], device=device, dtype=dtype)
    values = torch.tensor([[op_value(o, m) for o, _, m in sp] for sp in CIFAR10_POLICY], device=device,
                          dtype=dtype)
    return ops, probs, values


def _gray(v: Tensor) -> Tensor:
    """PIL's L conversion (ITU-R 601-2 luma) of a 0..255 batch; a one-channel batch is its own grey."""
    if v.shape[1] == 1:
        return v
    return (v[:, 0:1] * 299 + v[:, 1:2] * 587 + v[:, 2:3] * 114) / 1000


def cifar10_policy(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """AutoAugment CIFAR-10 policy on a float [0, 1] batch [N, C, H, W] (C = 1 or 3), per-sample draws.

    Random draws, in order: sub-policy index [N]; then per step: gate [N], sign [N].
    """
    n, c, h, w = x.shape
    dev, dt = x.device, x.dtype
    ops_t, probs_t, values_t = _tables(dev, dt)
    v = x * 255.0
    fill = torch.full((c,), AA_FILL, dtype=dt, device=dev)
    ident = torch.eye(3, dtype=dt, device=dev).repeat(n, 1, 1)
    policy = torch.randint(len(CIFAR10_POLICY), (n,), generator=generator, device=dev)
    for step in range(2):
        gate = torch.rand(n, generator=generator, device=dev) < probs_t[policy, step]
        sign = torch.where(torch.rand(n, generator=generator, device=dev) < 0.5, -1.0, 1.0).to(dt)
        op = ops_t[policy, step]
        value = values_t[policy, step]
        sel = {name: gate & (op == i) for i, name in enumerate(AA_OPS)}
        signed = value * sign

        # geometric ops: one resampling of the whole batch (identity matrices for the others)
        m = ident.clone()
        rad = torch.deg2rad(signed)
        cos, sin = torch.cos(rad), torch.sin(rad)
        cx, cy = w / 2.0, h / 2.0
        rot = sel["Rotate"]
        m[:, 0, 0] = torch.where(rot, cos, m[:, 0, 0])
        m[:, 0, 1] = torch.where(rot, -sin, m[:, 0, 1])
        m[:, 0, 2] = torch.where(rot, cx - cos * cx + sin * cy, m[:, 0, 2])
        m[:, 1, 0] = torch.where(rot, sin, m[:, 1, 0])
        m[:, 1, 1] = torch.where(rot, cos, m[:, 1, 1])
        m[:, 1, 2] = torch.where(rot, cy - sin * cx - cos * cy, m[:, 1, 2])
        m[:, 0, 1] = torch.where(sel["ShearX"], signed, m[:, 0, 1])
        m[:, 1, 0] = torch.where(sel["ShearY"], signed, m[:, 1, 0])
        m[:, 0, 2] = torch.where(sel["TranslateX"], signed * w, m[:, 0, 2])
        m[:, 1, 2] = torch.where(sel["TranslateY"], signed * h, m[:, 1, 2])
        geometric = rot | sel["ShearX"] | sel["ShearY"] | sel["TranslateX"] | sel["TranslateY"]
        v = torch.where(_col(geometric), _affine(v, m, fill), v)

        # PIL ImageEnhance blends with factor 1 + signed value (1, the identity, for the others)
        factor = 1.0 + signed
        one = torch.ones_like(factor)
        v = _blend(torch.zeros_like(v), v, torch.where(sel["Brightness"], factor, one))
        v = _blend(_gray(v), v, torch.where(sel["Color"], factor, one))
        mean = torch.floor(_gray(v).mean(dim=(2, 3), keepdim=True) + 0.5)
        v = _blend(mean, v, torch.where(sel["Contrast"], factor, one))
        v = _blend(_smooth(v), v, torch.where(sel["Sharpness"], factor, one))

        # pixel-level ops
        v = torch.where(_col(sel["Invert"]), 255.0 - v, v)
        poster = sel["Posterize"]  # keep `value` high bits (step 1, the identity on integers, for the others)
        keep = _col(torch.where(poster, torch.pow(2.0, 8.0 - value), torch.ones_like(value)))
        v = torch.where(_col(poster), torch.floor(v.round() / keep) * keep, v)
        v = torch.where(_col(sel["Solarize"]) & (v >= _col(value)), 255.0 - v, v)
        v = torch.where(_col(sel["AutoContrast"]), _autocontrast(v), v)
        v = torch.where(_col(sel["Equalize"]), _equalize(v), v)
    return (v / 255.0).clamp(0.0, 1.0)


__all__ = ["AA_OPS", "CIFAR10_POLICY", "cifar10_policy", "op_value"]
