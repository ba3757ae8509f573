"""Tests for ltbench.augment: batched, per-sample augmentation (docs/methods.md §Augmentations)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TVF
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from ltbench.augment import (
    box_masks,
    color_jitter,
    crop_flip_apply,
    crop_flip_params,
    cutmix_box,
    cutout,
    normalize,
    paste,
    random_crop_flip,
    resized_crop_flip,
    rgb_to_gray,
    rrc_params,
    sim_augment,
    square_mask,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=gen(seed))


# --------------------------------------------------------------------------------------------------
# normalize / paste
# --------------------------------------------------------------------------------------------------


def test_normalize_matches_torchvision():
    x = torch.rand(4, 3, 5, 6, generator=gen())
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    assert torch.allclose(normalize(x, mean, std), TF.normalize(x, list(mean), list(std)), atol=1e-6)
    as_tensors = normalize(x, torch.tensor(mean), torch.tensor(std))
    assert torch.allclose(as_tensors, TF.normalize(x, list(mean), list(std)), atol=1e-6)
    x1 = torch.rand(2, 1, 4, 4, generator=gen())
    assert torch.allclose(normalize(x1, [0.5], [0.25]), (x1 - 0.5) / 0.25)
    with pytest.raises(ValueError):
        normalize(x, [0.5], [0.5])


def test_paste_is_where():
    base, source = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[0, :, 1:3, 2:4] = True
    out = paste(base, source, mask)
    assert out[0, :, 1:3, 2:4].eq(1).all() and out.sum() == 3 * 4


# --------------------------------------------------------------------------------------------------
# random crop + flip (LDAM-DRW cifar_train.py)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("c", "h", "w", "padding"), [(3, 32, 32, 4), (1, 8, 10, 3), (3, 7, 5, 0)])
def test_crop_flip_matches_per_sample_reference(c, h, w, padding):
    n = 24
    x = images(n, c, h, w)
    top, left, flip = crop_flip_params(n, padding, gen(1), x.device)
    out = crop_flip_apply(x, top, left, flip, padding)
    assert out.dtype == torch.float32 and out.shape == (n, c, h, w)
    for i in range(n):
        padded = F.pad(x[i], (padding,) * 4)
        t, l_ = int(top[i]), int(left[i])
        ref = padded[:, t : t + h, l_ : l_ + w]
        if flip[i]:
            ref = ref.flip(-1)
        assert torch.equal(out[i], ref.float() / 255)


def test_crop_flip_matches_torchvision_pil_ops():
    """Same offsets and flips through PIL (pad -> crop -> hflip -> to_tensor) give identical pixels."""
    n, padding = 8, 4
    x = images(n)
    top, left, flip = crop_flip_params(n, padding, gen(2), x.device)
    out = crop_flip_apply(x, top, left, flip, padding)
    for i in range(n):
        img = Image.fromarray(x[i].permute(1, 2, 0).numpy())
        img = TVF.crop(TVF.pad(img, padding), int(top[i]), int(left[i]), 32, 32)
        if flip[i]:
            img = TVF.hflip(img)
        assert torch.equal(out[i], TVF.to_tensor(img))


def test_random_crop_flip_draws_per_sample_params():
    n = 256
    top, left, flip = crop_flip_params(n, 4, gen(3), "cpu")
    assert int(top.min()) == 0 and int(top.max()) == 8 and int(left.min()) == 0 and int(left.max()) == 8
    assert 0.35 < flip.float().mean().item() < 0.65
    # The public function is exactly params + apply with the same generator stream.
    x = images(n, 3, 8, 8)
    assert torch.equal(random_crop_flip(x, 4, gen(3)), crop_flip_apply(x, top, left, flip, 4))
    # 64 copies of one image get different crops.
    same = images(1).expand(64, -1, -1, -1)
    out = random_crop_flip(same, 4, gen(4))
    assert torch.unique(out.flatten(1), dim=0).shape[0] > 40
    no_flip = crop_flip_params(16, 4, gen(5), "cpu", flip=False)
    assert no_flip[2] is None


def test_random_crop_flip_reproducible():
    x = images(32)
    a = random_crop_flip(x, 4, gen(7))
    assert torch.equal(a, random_crop_flip(x, 4, gen(7)))
    assert not torch.equal(a, random_crop_flip(x, 4, gen(8)))


# --------------------------------------------------------------------------------------------------
# CutOut (uoguelph-mlrg/Cutout util/cutout.py)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [16, 7])
def test_square_mask_matches_clipped_slices(length):
    h, w = 32, 20
    centres = [(0, 0), (31, 19), (16, 10), (3, 18), (30, 1), (8, 8)]
    rows = torch.tensor([r for r, _ in centres])
    cols = torch.tensor([c for _, c in centres])
    mask = square_mask(h, w, rows, cols, length)
    assert mask.shape == (len(centres), 1, h, w) and mask.dtype == torch.bool
    half = length // 2
    for i, (r, c) in enumerate(centres):
        ref = torch.zeros(h, w, dtype=torch.bool)
        ref[max(0, r - half) : min(h, r + half), max(0, c - half) : min(w, c + half)] = True
        assert torch.equal(mask[i, 0], ref)


def _all_clipped_squares(h: int, w: int, length: int) -> torch.Tensor:
    rr, cc = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return square_mask(h, w, rr.flatten(), cc.flatten(), length)[:, 0]  # [H*W, H, W]


def test_cutout_zeroes_exactly_one_clipped_square():
    n, length = 48, 16
    x = 0.1 + 0.9 * torch.rand(n, 3, 32, 32, generator=gen())  # no natural zeros
    out = cutout(x, length, gen(11))
    assert out.shape == x.shape and out.dtype == x.dtype
    zero = out == 0
    assert torch.equal(zero[:, :1].expand_as(zero), zero)  # the hole spans all channels
    assert torch.equal(out[~zero], x[~zero])  # nothing else changed
    squares = _all_clipped_squares(32, 32, length)
    for i in range(n):
        assert (squares == zero[i, 0]).flatten(1).all(dim=1).any(), f"sample {i} is not a clipped square"
    # Holes differ across the batch, and border centres really clip.
    areas = zero[:, 0].flatten(1).sum(1)
    assert torch.unique(zero[:, 0].flatten(1), dim=0).shape[0] > n // 2
    assert int(areas.max()) == length * length and int(areas.min()) < length * length


def test_cutout_two_holes_uint8_and_reproducible():
    x = images(16) | 1  # no zeros
    out = cutout(x, 8, gen(3), n_holes=2)
    assert out.dtype == torch.uint8
    zero = (out == 0)[:, 0]
    squares = _all_clipped_squares(32, 32, 8)
    for i in range(16):
        hit = (squares & ~zero[i]).flatten(1).sum(1) == 0  # squares fully inside the zero set
        union = squares[hit].any(dim=0)
        assert torch.equal(union, zero[i])
    assert torch.equal(out, cutout(x, 8, gen(3), n_holes=2))
    assert not torch.equal(out, cutout(x, 8, gen(4), n_holes=2))


# --------------------------------------------------------------------------------------------------
# CutMix / CMO box (CMO cifar_train.py rand_bbox) and per-sample boxes
# --------------------------------------------------------------------------------------------------


def test_cutmix_box_hand_computed():
    # lam = 0.75 -> r = 0.5 -> cut 16, half 8; the centre (0, 0) clips to rows 0..8 and cols 0..8.
    assert cutmix_box(32, 32, 0.75, 0, 0) == (0, 0, 8, 8, 1 - 64 / 1024)
    # The bottom-right corner clips to [23, 32).
    assert cutmix_box(32, 32, 0.75, 31, 31) == (23, 23, 32, 32, 1 - 81 / 1024)
    # Odd cut: r = 0.484375 gives 32 * r = 15.5, so cut = 15 and half = 7, and the box is 14 wide.
    lam = 1 - (15.5 / 32) ** 2
    assert cutmix_box(32, 32, lam, 16, 16) == (9, 9, 23, 23, 1 - 196 / 1024)
    # Non-square 4 x 6 (rows x cols), lam = 0.51, r = 0.7: rows get int(4 r) = 2 (half 1) and
    # columns get int(6 r) = 4 (half 2). With the axes swapped, the box would be rows 0..4, cols 2..4.
    top, left, bottom, right, lam_c = cutmix_box(4, 6, 0.51, 2, 3)
    assert (top, left, bottom, right) == (1, 1, 3, 5)
    assert lam_c == pytest.approx(1 - 8 / 24)
    # lam = 0.75 on 4 x 6: rows cut 2 (half 1), cols cut int(3.0) = 3 (half 1) -> 1 x 2 box at the corner.
    assert cutmix_box(4, 6, 0.75, 0, 5) == (0, 4, 1, 6, 1 - 2 / 24)
    # Extremes: lam = 1 gives an empty box; lam = 0 centred covers the whole image.
    assert cutmix_box(32, 32, 1.0, 5, 5)[4] == 1.0
    assert cutmix_box(32, 32, 0.0, 16, 16) == (0, 0, 32, 32, 0.0)


@pytest.mark.parametrize(("h", "w"), [(32, 32), (4, 6), (7, 5), (9, 16)])
def test_box_masks_agree_with_cutmix_box(h, w):
    g = gen(h * 100 + w)
    n = 64
    rows = torch.randint(0, h, (n,), generator=g)
    cols = torch.randint(0, w, (n,), generator=g)
    rows[:4] = torch.tensor([0, h - 1, 0, h - 1])  # corners
    cols[:4] = torch.tensor([0, w - 1, w - 1, 0])
    lams = torch.rand(n, generator=g, dtype=torch.float64)
    lams[4], lams[5] = 0.0, 1.0
    scalar_lam = float(lams[6])
    mask_s, lam_s = box_masks(h, w, scalar_lam, rows, cols)
    mask_t, lam_t = box_masks(h, w, lams, rows, cols)
    assert mask_s.shape == (n, 1, h, w) and mask_s.dtype == torch.bool
    assert lam_s.dtype == torch.float32 and lam_s.shape == (n,)
    odd_seen = False
    for i in range(n):
        r, c = int(rows[i]), int(cols[i])
        for mask, lam_b, lam in ((mask_s, lam_s, scalar_lam), (mask_t, lam_t, float(lams[i]))):
            top, left, bottom, right, lam_c = cutmix_box(h, w, lam, r, c)
            ref = torch.zeros(h, w, dtype=torch.bool)
            ref[top:bottom, left:right] = True
            assert torch.equal(mask[i, 0], ref), (i, lam, r, c)
            assert float(lam_b[i]) == pytest.approx(1 - lam_c, abs=1e-6)
            odd_seen |= int(h * math.sqrt(1 - lam)) % 2 == 1
    assert odd_seen


def test_box_masks_and_paste_compose():
    base, source = torch.zeros(3, 3, 8, 8), torch.ones(3, 3, 8, 8)
    mask, lam_b = box_masks(8, 8, 0.75, torch.tensor([0, 4, 7]), torch.tensor([0, 4, 7]))
    out = paste(base, source, mask)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), lam_b)
    # 8 x 8, lam = 0.75 -> cut 4, half 2: centre 0 -> [0, 2); centre 4 -> [2, 6); centre 7 -> [5, 8).
    assert lam_b.tolist() == [4 / 64, 16 / 64, 9 / 64]


# --------------------------------------------------------------------------------------------------
# SimAugment pieces (SupContrast main_supcon.py)
# --------------------------------------------------------------------------------------------------


def test_rrc_params_bounds_and_fallback():
    n, h, w = 512, 32, 24
    top, left, ch, cw = rrc_params(n, h, w, (0.2, 1.0), (3 / 4, 4 / 3), gen(1))
    assert all(t.dtype == torch.int64 for t in (top, left, ch, cw))
    assert (ch >= 1).all() and (cw >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + ch <= h).all() and (left + cw <= w).all()
    frac = (ch * cw).double() / (h * w)
    aspect = cw.double() / ch
    assert frac.min() > 0.15 and aspect.min() > 0.6 and aspect.max() < 1.6  # slack for the rounding
    assert torch.unique(torch.stack((top, left, ch, cw), 1), dim=0).shape[0] > n // 2
    # No try can fit (w/h >= 2 but the crop covers 99% of a square): central crop of the widest allowed
    # shape, width = W and height = round(W / 2).
    top, left, ch, cw = rrc_params(8, 32, 32, (0.99, 1.0), (2.0, 2.5), gen(2))
    assert cw.eq(32).all() and ch.eq(16).all() and top.eq(8).all() and left.eq(0).all()


@pytest.mark.parametrize(("h", "w"), [(32, 32), (24, 32)])
def test_resized_crop_flip_matches_torchvision(h, w):
    n = 12
    x = images(n, 3, h, w)
    top, left, ch, cw = rrc_params(n, h, w, generator=gen(3))
    flip = torch.rand(n, generator=gen(4)) < 0.5
    out = resized_crop_flip(x, top, left, ch, cw, flip)
    xf = x.float() / 255
    for i in range(n):
        ref = TF.resized_crop(
            xf[i], int(top[i]), int(left[i]), int(ch[i]), int(cw[i]), [h, w], antialias=True
        )
        if flip[i]:
            ref = TF.horizontal_flip(ref)
        assert torch.allclose(out[i], ref, atol=1e-5)


def test_color_jitter_matches_torchvision_per_sample():
    n = 6
    x = torch.rand(n, 3, 8, 8, generator=gen())
    g = gen(1)
    b, c, s = (0.6 + 0.8 * torch.rand(n, generator=g) for _ in range(3))
    hue = 0.2 * torch.rand(n, generator=g) - 0.1
    out = color_jitter(x, b, c, s, hue)
    for i in range(n):
        ref = TF.adjust_brightness(x[i], float(b[i]))
        ref = TF.adjust_contrast(ref, float(c[i]))
        ref = TF.adjust_saturation(ref, float(s[i]))
        ref = TF.adjust_hue(ref, float(hue[i]))
        # Our luma weights are PIL's 0.299 versus torchvision's 0.2989 for red: 1e-4 of slack.
        assert torch.allclose(out[i], ref, atol=2e-4)
    ones, zeros = torch.ones(n), torch.zeros(n)
    assert torch.allclose(color_jitter(x, ones, ones, ones, zeros), x, atol=1e-6)
    # Exact HSV hue shift for any angle.
    for shift in (0.5, -0.37):
        hs = color_jitter(x, hue=torch.full((n,), shift))
        assert torch.allclose(hs, TF.adjust_hue(x, shift), atol=1e-5)


def test_color_jitter_yiq_hue_approximation():
    x = torch.rand(4, 3, 8, 8, generator=gen())
    assert torch.allclose(color_jitter(x, hue=torch.zeros(4), hue_mode="yiq"), x, atol=1e-5)
    grey = torch.rand(4, 1, 8, 8, generator=gen(1)).expand(4, 3, 8, 8)
    assert torch.allclose(color_jitter(grey, hue=torch.full((4,), 0.1), hue_mode="yiq"), grey, atol=1e-5)
    # The rotation runs in the direction of increasing HSV hue: clearly closer to torchvision's shift than
    # the opposite rotation. Per pixel, though, it is a rough approximation: about as far from the HSV
    # result as the unshifted input is.
    ref = TF.adjust_hue(x, 0.05)
    shifted = color_jitter(x, hue=torch.full((4,), 0.05), hue_mode="yiq")
    wrong_way = color_jitter(x, hue=torch.full((4,), -0.05), hue_mode="yiq")
    assert 1.5 * (shifted - ref).abs().mean() < (wrong_way - ref).abs().mean()
    with pytest.raises(ValueError):
        color_jitter(x, hue=torch.zeros(4), hue_mode="hsl")


@pytest.mark.parametrize("c", [3, 1])
def test_sim_augment_output_contract(c):
    x = images(64, c)
    out = sim_augment(x, gen(5))
    assert out.shape == x.shape and out.dtype == torch.float32 and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, sim_augment(x, gen(5)))
    assert not torch.equal(out, sim_augment(x, gen(6)))
    # Float input in [0, 1] gives the same result as uint8 input.
    assert torch.allclose(sim_augment(x.float() / 255, gen(5)), out, atol=1e-6)


def test_sim_augment_grayscale_samples_have_equal_channels():
    x = images(200, seed=1)
    all_gray = sim_augment(x, gen(1), gray_p=1.0)
    assert torch.equal(all_gray[:, 0], all_gray[:, 1]) and torch.equal(all_gray[:, 1], all_gray[:, 2])
    out = sim_augment(x, gen(2))
    is_gray = (out[:, 0] == out[:, 1]).flatten(1).all(1) & (out[:, 1] == out[:, 2]).flatten(1).all(1)
    assert 15 <= int(is_gray.sum()) <= 70  # about 0.2 * 200
    none_gray = sim_augment(x, gen(2), gray_p=0.0)
    assert not ((none_gray[:, 0] == none_gray[:, 1]).flatten(1).all(1)).any()


def test_sim_augment_params_differ_per_sample():
    same = images(1).expand(32, -1, -1, -1)
    out = sim_augment(same, gen(9))
    assert torch.unique(out.flatten(1), dim=0).shape[0] == 32
    # Per-sample jitter: without geometry changes (crop is always the full image), colour statistics
    # still differ.
    out = sim_augment(same, gen(9), scale=(1.0, 1.0), ratio=(1.0, 1.0), gray_p=0.0)
    means = out.mean(dim=(1, 2, 3))
    assert torch.unique(means).shape[0] > 16


def test_sim_augment_without_jitter_is_geometry_plus_gray():
    x = images(16)
    out = sim_augment(x, gen(3), jitter=(0.0, 0.0, 0.0, 0.0), gray_p=0.0, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    xf = x.float() / 255
    is_flipped = torch.tensor(
        [torch.allclose(o, r.flip(-1), atol=1e-6) for o, r in zip(out, xf, strict=True)]
    )
    is_same = torch.tensor([torch.allclose(o, r, atol=1e-6) for o, r in zip(out, xf, strict=True)])
    assert (is_flipped | is_same).all() and is_flipped.any() and is_same.any()
    g = rgb_to_gray(xf)
    assert g.shape == (16, 1, 32, 32)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_outputs_follow_input_device(device):
    g = torch.Generator(device=device).manual_seed(0)
    x = images(8).to(device)
    assert random_crop_flip(x, 4, g).device.type == device
    assert cutout(x.float() / 255, 16, g).device.type == device
    out = sim_augment(x, g)
    assert out.device.type == device and out.dtype == torch.float32
    rows = torch.randint(0, 32, (8,), generator=g, device=device)
    mask, lam_b = box_masks(32, 32, torch.rand(8, generator=g, device=device), rows, rows.flip(0))
    assert mask.device.type == device and lam_b.device.type == device
