"""The batched AutoAugment CIFAR-10 policy (ltbench/autoaugment.py) equals the per-image reference pixel for pixel.

The reference is DeepVoltaire/AutoAugment `autoaugment.py::SubPolicy` (PIL on uint8 images), which CMO's and
ConCutMix's `CIFAR10Policy` copy. Each op is computed here by torchvision's functional op on a PIL image
(`torchvision.transforms.functional`, which calls the same PIL function with the same arguments), on fixed
uint8 images, every level of the policy and both signs, and compared for exact equality: the batched code
reproduces PIL's uint8 arithmetic (module docstring), so no tolerance is needed. torchvision's tensor kernels
are not the reference: they round differently from PIL (e.g. `rgb_to_grayscale` truncates, the contrast
mean is not rounded), which is why the PIL path is used.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from ltbench.autoaugment import AA_FILL, AA_OPS, CIFAR10_POLICY, SIGNED_OPS, apply_ops, cifar10_policy, op_value

FILL = int(AA_FILL)
LEVELS = {op: sorted({m for sp in CIFAR10_POLICY for o, _, m in sp if o == op}) for op in AA_OPS}


def _images(channels: int) -> torch.Tensor:
    """Fixed uint8 images [4, C, 32, 32]: noise in a narrow range, a gradient with noise, a dark low-contrast
    image with few grey levels, and a flat one (autocontrast and equalize leave it unchanged)."""
    g = torch.Generator().manual_seed(7)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    noise = torch.randint(40, 201, (channels, 32, 32), generator=g)
    ramp = ((xx * 6 + yy * 2).clamp(max=255) + torch.randint(-10, 11, (channels, 32, 32), generator=g)).clamp(0, 255)
    dark = 20 + 5 * torch.randint(0, 4, (channels, 32, 32), generator=g)
    flat = torch.full((channels, 32, 32), 90)
    return torch.stack([noise, ramp, dark, flat]).to(torch.uint8)


def _pil(img: torch.Tensor) -> Image.Image:
    arr = img.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0], "L") if arr.shape[2] == 1 else Image.fromarray(arr, "RGB")


def _tensor(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(img)
    return torch.from_numpy((arr[..., None] if arr.ndim == 2 else arr).copy()).permute(2, 0, 1)


def reference_op(img: Image.Image, op: str, level: int, sign: int) -> Image.Image:
    """SubPolicy's op at `level` with the drawn `sign`, through torchvision's functional op on PIL."""
    m = op_value(op, level)
    fill = [FILL] * len(img.getbands())
    if op in ("ShearX", "ShearY"):  # the reference's own PIL call (see test_shears_match_torchvisions_affine)
        s = m * sign
        matrix = (1, s, 0, 0, 1, 0) if op == "ShearX" else (1, 0, 0, s, 1, 0)
        return img.transform(img.size, Image.AFFINE, matrix, Image.BICUBIC, fillcolor=tuple(fill))
    if op in ("TranslateX", "TranslateY"):  # PIL's offset t samples x + t: torchvision's translate is -t
        t = m * img.size[0 if op == "TranslateX" else 1] * sign
        translate = [-t, 0.0] if op == "TranslateX" else [0.0, -t]
        return TF.affine(img, angle=0.0, translate=translate, scale=1.0, shear=[0.0, 0.0],
                         interpolation=InterpolationMode.NEAREST, fill=fill, center=[0, 0])
    if op == "Rotate":  # rotate_with_fill: no sign, nearest, grey outside
        return TF.rotate(img, m, interpolation=InterpolationMode.NEAREST, fill=fill)
    factor = 1 + m * sign
    return {
        "Color": lambda: TF.adjust_saturation(img, factor),  # ImageEnhance.Color
        "Contrast": lambda: TF.adjust_contrast(img, factor),
        "Sharpness": lambda: TF.adjust_sharpness(img, factor),
        "Brightness": lambda: TF.adjust_brightness(img, factor),
        "Posterize": lambda: TF.posterize(img, int(m)),
        "Solarize": lambda: TF.solarize(img, m),
        "AutoContrast": lambda: TF.autocontrast(img),
        "Equalize": lambda: TF.equalize(img),
        "Invert": lambda: TF.invert(img),
    }[op]()


def _ours(images: torch.Tensor, ops: list[str], values: list[float]) -> torch.Tensor:
    """One batched step: image i gets ops[i] (None: unchanged) with the signed magnitude values[i]."""
    op = torch.tensor([AA_OPS.index(o) if o is not None else -1 for o in ops])
    out = apply_ops(images.float(), op, torch.tensor(values, dtype=torch.float64))
    assert torch.equal(out, out.round()) and float(out.min()) >= 0 and float(out.max()) <= 255  # uint8 values
    return out.to(torch.uint8)


def _cases() -> list[tuple[str, int, int]]:
    return [(op, level, sign) for op in AA_OPS for level in (LEVELS[op] or [0])
            for sign in ((1, -1) if op in SIGNED_OPS else (1,))]


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize(("op", "level", "sign"), _cases())
def test_each_op_equals_torchvisions_functional_op_on_pil(op, level, sign, channels):
    images = _images(channels)
    value = op_value(op, level) * (sign if op in SIGNED_OPS else 1)
    n = images.shape[0]
    ours = _ours(images, [op] * n, [value] * n)
    for i in range(n):
        expected = _tensor(reference_op(_pil(images[i]), op, level, sign))
        diff = (ours[i].int() - expected.int()).abs()
        assert torch.equal(ours[i], expected), (f"{op} level {level} sign {sign} image {i}: {int((diff > 0).sum())} "
                                                f"pixels differ, by up to {int(diff.max())}")


@pytest.mark.parametrize("op", ["ShearX", "ShearY"])
def test_shears_match_torchvisions_affine_up_to_its_matrix_rounding(op):
    # torchvision's affine takes a shear angle and rebuilds the matrix entry as sin/cos of atan(s) (ShearY:
    # sin(a) / cos(a)), which can be 1 ulp off s; PIL truncates the bicubic value, so a pixel whose value is
    # within that ulp of an integer comes out 1 lower or higher. Tolerance: at most 1 level, on at most
    # 0.5 % of the pixels. (The exact comparison with the reference's own matrix is in the test above.)
    images = _images(3)
    for level in LEVELS[op] + [9]:
        for sign in (1, -1):
            s = op_value(op, level) * sign
            ours = _ours(images, [op] * images.shape[0], [s] * images.shape[0])
            angle = math.degrees(math.atan(s))
            shear = [angle, 0.0] if op == "ShearX" else [0.0, angle]
            for i in range(images.shape[0]):
                tv = _tensor(TF.affine(_pil(images[i]), angle=0.0, translate=[0, 0], scale=1.0, shear=shear,
                                       interpolation=InterpolationMode.BICUBIC, fill=[FILL] * 3, center=[0, 0]))
                diff = (ours[i].int() - tv.int()).abs()
                assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) <= 0.005, (level, sign, i)


def test_ops_stay_per_image_in_one_mixed_batch():
    # every op of the table in one batch, one per image: each image equals its own reference
    images = _images(3)
    cases = [(op, (LEVELS[op] or [0])[-1], -1 if i % 2 else 1) for i, op in enumerate(AA_OPS)]
    batch = images[torch.arange(len(cases)) % images.shape[0]]
    ops = [op for op, _, _ in cases] + [None]
    values = [op_value(op, m) * (s if op in SIGNED_OPS else 1) for op, m, s in cases] + [0.0]
    batch = torch.cat([batch, images[:1]])
    ours = _ours(batch, ops, values)
    for i, (op, level, sign) in enumerate(cases):
        assert torch.equal(ours[i], _tensor(reference_op(_pil(batch[i]), op, level, sign))), op
    assert torch.equal(ours[-1], batch[-1])  # op -1: unchanged


def test_rotate_is_counter_clockwise_and_unsigned_like_the_reference():
    # the reference passes the magnitude unsigned; a clockwise rotation must not match it
    images = _images(3)[:2]
    value = op_value("Rotate", 2)
    ours = _ours(images, ["Rotate"] * 2, [value] * 2)
    clockwise = _tensor(TF.rotate(_pil(images[0]), -value, interpolation=InterpolationMode.NEAREST, fill=[FILL] * 3))
    assert not torch.equal(ours[0], clockwise)


def _replay(n: int, seed: int) -> tuple[list[int], list[list[bool]], list[list[int]]]:
    """cifar10_policy's draws (module docstring order): sub-policy [N]; per step gate [N], sign [N]."""
    g = torch.Generator().manual_seed(seed)
    policy = torch.randint(len(CIFAR10_POLICY), (n,), generator=g)
    gates, signs = [], []
    for step in range(2):
        p = torch.tensor([CIFAR10_POLICY[int(k)][step][1] for k in policy])
        gates.append((torch.rand(n, generator=g) < p).tolist())
        signs.append(torch.where(torch.rand(n, generator=g) < 0.5, -1, 1).tolist())
    return policy.tolist(), gates, signs


@pytest.mark.parametrize("channels", [3, 1])
def test_the_whole_policy_equals_torchvisions_sequence_of_ops(channels):
    base = _images(channels)
    n, seed = 400, 3
    images = base[torch.arange(n) % base.shape[0]]
    out = cifar10_policy(images.float() / 255.0, torch.Generator().manual_seed(seed))
    ours = (out * 255.0).round().to(torch.uint8)
    assert torch.equal(out * 255.0, (out * 255.0).round().float()) or torch.allclose(out * 255.0, ours.float(),
                                                                                      atol=1e-3)
    policy, gates, signs = _replay(n, seed)
    assert set(policy) == set(range(len(CIFAR10_POLICY)))  # every sub-policy is exercised
    applied = 0
    for i in range(n):
        img = _pil(images[i])
        for step in range(2):
            op, _, level = CIFAR10_POLICY[policy[i]][step]
            if gates[step][i]:
                img = reference_op(img, op, level, signs[step][i])
                applied += 1
        assert torch.equal(ours[i], _tensor(img)), f"image {i}: sub-policy {CIFAR10_POLICY[policy[i]]}"
    assert applied > n // 2


@pytest.mark.parametrize("index", range(len(CIFAR10_POLICY)))
def test_each_sub_policy_with_both_steps_on_equals_the_reference_sequence(index):
    # a fixed sub-policy choice with both steps applied (the random draw bypassed): the batched steps in
    # sequence equal torchvision's two ops in sequence, for both signs of each step
    images = _images(3)
    (op1, _, m1), (op2, _, m2) = CIFAR10_POLICY[index]
    for s1 in (1, -1):
        for s2 in (1, -1):
            v = images.float()
            for op, m, s in ((op1, m1, s1), (op2, m2, s2)):
                value = op_value(op, m) * (s if op in SIGNED_OPS else 1)
                v = apply_ops(v, torch.full((v.shape[0],), AA_OPS.index(op)),
                              torch.full((v.shape[0],), value, dtype=torch.float64))
            for i in range(images.shape[0]):
                expected = reference_op(reference_op(_pil(images[i]), op1, m1, s1), op2, m2, s2)
                assert torch.equal(v[i].to(torch.uint8), _tensor(expected)), (index, s1, s2, i)


def test_magnitudes_are_the_references_numpy_linspace_values_bit_for_bit():
    ranges = {"ShearX": (0, 0.3), "ShearY": (0, 0.3), "TranslateX": (0, 150 / 331), "TranslateY": (0, 150 / 331),
              "Rotate": (0, 30), "Color": (0.0, 0.9), "Contrast": (0.0, 0.9), "Sharpness": (0.0, 0.9),
              "Brightness": (0.0, 0.9), "Solarize": (256, 0)}
    for op, (lo, hi) in ranges.items():
        assert [op_value(op, m) for m in range(10)] == [float(v) for v in np.linspace(lo, hi, 10)], op
    posterize = np.round(np.linspace(8, 4, 10), 0).astype(int)
    assert [op_value("Posterize", m) for m in range(10)] == [float(v) for v in posterize]
    assert SIGNED_OPS == {"ShearX", "ShearY", "TranslateX", "TranslateY", "Color", "Contrast", "Sharpness",
                          "Brightness"}  # SubPolicy's random.choice([-1, 1]) ops; not Rotate
