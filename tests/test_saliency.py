"""Tests for ltbench.saliency: OpenCV parity, peak ties, spectral-residual disc hits, locators."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from ltbench import saliency as S

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _rand_u8(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


def _smooth_u8(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Blocky images with some structure, so maps are not pure noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, c, h // 4, w // 4, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return (x * 255).round().to(torch.uint8)


def _cv2_fine_grained(arr: np.ndarray) -> np.ndarray:
    ok, smap = cv2.saliency.StaticSaliencyFineGrained_create().computeSaliency(arr)
    assert ok
    return (smap * 255).astype(np.uint8)


def _as_levels(maps: torch.Tensor) -> np.ndarray:
    levels = torch.round(maps.cpu() * 255)
    assert torch.allclose(levels, maps.cpu() * 255, atol=1e-4)  # fine-grained maps are exactly k / 255
    return levels.to(torch.uint8).numpy()


# ---------------------------------------------------------------- fine-grained parity with OpenCV


@pytest.mark.parametrize("make", [_rand_u8, _smooth_u8])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 32, 32), (3, 24, 40)])
def test_fine_grained_uint8_matches_opencv(make, shape):
    c, h, w = shape
    u8 = make(4, c, h, w, seed=11)
    maps = S.saliency_maps(u8, "fine-grained", "uint8")
    # Float input with exact k/255 pixels goes through round(x*255) and must give the same maps.
    maps_f = S.saliency_maps(u8.float() / 255, "fine-grained", "uint8")
    assert torch.equal(maps, maps_f)
    got = _as_levels(maps)
    for i in range(u8.shape[0]):
        arr = u8[i].permute(1, 2, 0).numpy()  # HWC, RGB as stored
        arr = np.ascontiguousarray(arr[..., 0] if c == 1 else arr)
        np.testing.assert_array_equal(got[i], _cv2_fine_grained(arr))


def test_fine_grained_normalized_matches_saliencymix_recipe():
    tv = pytest.importorskip("torchvision.transforms")
    u8 = _smooth_u8(4, 3, 32, 32, seed=3)
    got = _as_levels(S.saliency_maps(u8, "fine-grained", "normalized"))
    normalize = tv.Normalize(
        mean=[x / 255.0 for x in (125.3, 123.0, 113.9)], std=[x / 255.0 for x in (63.0, 62.1, 66.7)]
    )
    for i in range(4):
        img = normalize(u8[i].float().div(255))  # ToTensor + Normalize
        temp = img.numpy().transpose(1, 2, 0)  # the strided HWC view SaliencyMix hands to OpenCV
        np.testing.assert_array_equal(got[i], _cv2_fine_grained(temp))
    # Float pixels give the same maps as their uint8 source.
    assert np.array_equal(got, _as_levels(S.saliency_maps(u8.float() / 255, "fine-grained", "normalized")))


def test_saliencymix_constants():
    assert S.SALIENCYMIX_CIFAR_MEAN == pytest.approx((0.49137, 0.48235, 0.44667), abs=1e-5)
    assert S.SALIENCYMIX_CIFAR_STD == pytest.approx((0.24706, 0.24353, 0.26157), abs=1e-5)


@pytest.mark.parametrize("c", [1, 3])
def test_fine_grained_normalized_explicit_stats(c):
    u8 = _rand_u8(3, c, 32, 32, seed=5)
    mean, std = (0.5,) * c, (0.25,) * c
    got = _as_levels(S.saliency_maps(u8, "fine-grained", "normalized", mean=mean, std=std))
    x = (u8.float() / 255 - 0.5) / 0.25
    for i in range(3):
        arr = x[i].permute(1, 2, 0).numpy()
        arr = np.ascontiguousarray(arr[..., 0] if c == 1 else arr, dtype=np.float32)
        np.testing.assert_array_equal(got[i], _cv2_fine_grained(arr))


def test_normalized_grayscale_needs_stats():
    with pytest.raises(ValueError, match="explicitly"):
        S.saliency_maps(_rand_u8(1, 1, 16, 16, 0), "fine-grained", "normalized")
    with pytest.raises(ValueError, match="1 or 3"):
        S.saliency_maps(_rand_u8(1, 3, 16, 16, 0), "fine-grained", "normalized", mean=(0.5, 0.5), std=(1, 1))


def test_float_input_is_read_as_bytes():
    """The documented OpenCV behaviour: a float32 image is read as its bytes (period 4 along columns)."""
    for value in (0.3, -1.7):
        const = torch.full((2, 1, 32, 32), value)
        maps = _as_levels(S.saliency_maps(const, "fine-grained", "normalized", mean=(0.0,), std=(1.0,)))
        assert len(np.unique(maps)) > 1
        assert np.abs(maps[:, :, 4:].astype(int) - maps[:, :, :-4].astype(int)).max() <= 1
        profile = maps.reshape(2, 32, 8, 4).astype(float).mean(axis=(0, 1, 2))
        raw_bytes = np.frombuffer(np.float32(value).tobytes(), dtype=np.uint8).astype(float)
        assert np.corrcoef(profile, raw_bytes)[0, 1] > 0.99
    flat_u8 = _as_levels(S.saliency_maps(torch.full((1, 3, 32, 32), 77, dtype=torch.uint8)))
    assert not flat_u8.any()


# ---------------------------------------------------------------- peak


@pytest.mark.parametrize("device", DEVICES)
def test_peak_first_maximum(device):
    maps = torch.zeros(5, 4, 6, device=device)
    maps[0, 1, 4] = maps[0, 3, 0] = 2.0  # tie on different rows -> earlier row
    maps[1, 2, 5] = maps[1, 2, 1] = 1.0  # tie on one row -> smaller column
    maps[2].fill_(7.0)  # everything tied -> (0, 0)
    # map 3 all zero -> (0, 0)
    maps[4, 3, 5] = 0.5  # unique maximum at the last pixel
    rows, cols = S.peak(maps)
    assert rows.dtype == cols.dtype == torch.int64
    assert rows.device.type == device
    assert rows.tolist() == [1, 2, 0, 0, 3]
    assert cols.tolist() == [4, 1, 0, 0, 5]


@pytest.mark.parametrize("device", DEVICES)
def test_peak_ties_large_maps(device):
    g = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 4, (64, 32, 32), generator=g).to(torch.float32)  # many ties at the max
    rows, cols = S.peak(levels.to(device))
    ref = [np.unravel_index(np.argmax(m), m.shape) for m in levels.numpy()]
    assert rows.cpu().tolist() == [int(r) for r, _ in ref]
    assert cols.cpu().tolist() == [int(c) for _, c in ref]


def test_peak_rejects_bad_shape():
    with pytest.raises(ValueError):
        S.peak(torch.zeros(3, 4))


# ---------------------------------------------------------------- spectral residual


def _disc_images(n: int, size: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    luma = torch.tensor([0.299, 0.587, 0.114])
    images = torch.empty(n, 3, size, size)
    discs = []
    for i in range(n):
        bg = 0.1 + 0.8 * torch.rand(1, generator=g).item()
        r = int(torch.randint(3, 7, (1,), generator=g))
        cy = int(torch.randint(r, size - r, (1,), generator=g))
        cx = int(torch.randint(r, size - r, (1,), generator=g))
        colour = torch.rand(3, generator=g)
        while abs(float((colour * luma).sum()) - bg) < 0.25:  # contrasting colour
            colour = torch.rand(3, generator=g)
        img = torch.full((3, size, size), bg)
        img[:, (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = colour[:, None]
        images[i] = img
        discs.append((cy, cx, r))
    return (images * 255).round() / 255, discs


def test_spectral_residual_finds_disc():
    images, discs = _disc_images(64, 32, seed=0)
    rows, cols = S.locate(images, "saliency", "spectral-residual")
    hits = [
        math.hypot(float(rows[i]) - cy, float(cols[i]) - cx) <= r + 1 for i, (cy, cx, r) in enumerate(discs)
    ]
    assert sum(hits) / len(hits) >= 0.9


def test_spectral_residual_batched_equals_single_and_range():
    u8 = _smooth_u8(6, 3, 32, 32, seed=9)
    batched = S.saliency_maps(u8, "spectral-residual")
    single = torch.cat([S.saliency_maps(u8[i : i + 1], "spectral-residual") for i in range(6)])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)
    assert torch.allclose(batched.amin(dim=(1, 2)), torch.zeros(6))
    assert torch.allclose(batched.amax(dim=(1, 2)), torch.ones(6))
    flat = S.saliency_maps(torch.full((2, 1, 16, 16), 0.5), "spectral-residual")
    assert torch.isfinite(flat).all() and flat.min() >= 0 and flat.max() <= 1
    gray = S.saliency_maps(u8[:, :1], "spectral-residual")
    assert gray.shape == (6, 32, 32)


# ---------------------------------------------------------------- shapes, dtype, device


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", S.SALIENCY_METHODS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_map_shape_dtype_device(device, method, dtype):
    u8 = _rand_u8(3, 3, 20, 28, seed=1)
    images = (u8 if dtype == torch.uint8 else u8.float() / 255).to(device)
    for repr_ in S.INPUT_REPRS:
        maps = S.saliency_maps(images, method, repr_)
        assert maps.shape == (3, 20, 28)
        assert maps.dtype == torch.float32
        assert maps.device == images.device
        assert 0.0 <= float(maps.min()) and float(maps.max()) <= 1.0
    rows, cols = S.locate(images, "saliency", method)
    assert rows.shape == cols.shape == (3,)
    assert rows.device == images.device and rows.dtype == torch.int64
    assert bool(((rows >= 0) & (rows < 20) & (cols >= 0) & (cols < 28)).all())


# ---------------------------------------------------------------- locators


def test_random_locator_reproducible_and_covers():
    images = torch.zeros(3000, 1, 8, 12)
    a = S.locate(images, "random", generator=torch.Generator().manual_seed(7))
    b = S.locate(images, "random", generator=torch.Generator().manual_seed(7))
    c = S.locate(images, "random", generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    assert sorted(a[0].unique().tolist()) == list(range(8))
    assert sorted(a[1].unique().tolist()) == list(range(12))
    # rows are drawn first, then cols, from the same generator
    g = torch.Generator().manual_seed(7)
    assert torch.equal(a[0], torch.randint(0, 8, (3000,), generator=g))
    assert torch.equal(a[1], torch.randint(0, 12, (3000,), generator=g))
    assert a[0].dtype == torch.int64


def test_center_locator():
    rows, cols = S.locate(torch.zeros(4, 3, 31, 24, dtype=torch.uint8), "center")
    assert rows.tolist() == [15] * 4 and cols.tolist() == [12] * 4
    assert rows.dtype == torch.int64


def test_unknown_choices_raise():
    images = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="fine-grained.*spectral-residual"):
        S.saliency_maps(images, "itti")
    with pytest.raises(ValueError, match="uint8.*normalized"):
        S.saliency_maps(images, input_repr="bgr")
    with pytest.raises(ValueError, match="saliency.*random.*center"):
        S.locate(images, "corner")
    with pytest.raises(ValueError):
        S.saliency_maps(torch.zeros(1, 2, 8, 8))
    with pytest.raises(TypeError):
        S.saliency_maps(torch.zeros(1, 3, 8, 8, dtype=torch.int32))
