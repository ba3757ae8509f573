"""The saliency bank: maps computed once, then moved through exactly the views' crop/flip geometry."""

from __future__ import annotations

import pytest
import torch

from ltbench.augment import crop_flip_apply, crop_flip_params
from ltbench.saliency import peak, saliency_maps
from ltbench.saliency_cache import SaliencyBank, crop_flip_maps, precompute_maps, resized_crop_flip_maps


def _images(n: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    x[:, :, 10:16, 20:26] = 255  # a bright square: a clear saliency peak
    return x


def test_fine_grained_bank_stores_the_reference_maps_exactly():
    x = _images()
    bank = SaliencyBank.build(x, chunk=5)  # chunking must not change anything
    assert bank.maps.shape == (12, 1, 32, 32) and bank.maps.dtype == torch.uint8
    assert torch.equal(bank.maps[:, 0].float() / 255, saliency_maps(x))


def test_identity_geometry_gives_the_peaks_of_the_un_augmented_images():
    x = _images()
    bank = SaliencyBank.build(x)
    n = x.shape[0]
    centre = torch.full((n,), 4)
    rows, cols = bank.peaks(torch.arange(n), centre, centre, torch.zeros(n, dtype=torch.bool), padding=4)
    ref_rows, ref_cols = peak(saliency_maps(x))
    assert torch.equal(rows, ref_rows) and torch.equal(cols, ref_cols)


def test_maps_move_with_the_same_crop_and_flip_as_their_images():
    x = _images(16)
    maps = x[:, :1].clone()  # a "map" equal to the red channel: after the same geometry they must still agree
    g = torch.Generator().manual_seed(3)
    top, left, flip = crop_flip_params(16, 4, g, "cpu")
    view = crop_flip_apply(x, top, left, flip, padding=4)
    assert torch.equal(crop_flip_maps(maps, top, left, flip, padding=4), view[:, 0])


def test_flip_and_shift_geometry():
    maps = torch.arange(32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(1, 1, 32, 32).repeat(2, 1, 1, 1)
    top = torch.tensor([4, 0])
    left = torch.tensor([4, 0])
    flip = torch.tensor([True, False])
    out = crop_flip_maps(maps, top, left, flip, padding=4) * 255
    assert torch.equal(out[0].round().to(torch.uint8), maps[0, 0].flip(-1))
    assert torch.equal(out[1, 4:, 4:].round().to(torch.uint8), maps[1, 0, :28, :28])
    assert out[1, :4].abs().sum() == 0 and out[1, :, :4].abs().sum() == 0  # revealed padding: no saliency


def test_spectral_residual_bank_and_resized_crops():
    x = _images(6)
    maps = precompute_maps(x, "spectral-residual", chunk=4)
    ref = saliency_maps(x, "spectral-residual")
    assert (maps[:, 0].float() / 255 - ref).abs().max() <= 0.5 / 255 + 1e-6
    n = x.shape[0]
    full = torch.full((n,), 32)
    zero = torch.zeros(n, dtype=torch.int64)
    same = resized_crop_flip_maps(maps, zero, zero, full, full)  # the whole image at its own size: identity
    assert torch.allclose(same, maps[:, 0].float() / 255, atol=1e-5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="chunk"):
        precompute_maps(_images(2), chunk=0)
    with pytest.raises(ValueError, match="uint8 maps"):
        SaliencyBank(torch.zeros(2, 32, 32))
    assert precompute_maps(_images(0)).shape == (0, 1, 32, 32)


def test_threaded_fine_grained_is_bit_identical():
    from ltbench.saliency_cache import fine_grained_threaded

    x = _images(9)
    for workers in (1, 2, 4):
        assert torch.equal(fine_grained_threaded(x, workers=workers), saliency_maps(x))
    assert torch.equal(fine_grained_threaded(x, "normalized", workers=2), saliency_maps(x, input_repr="normalized"))
    gray = x[:, :1]
    assert torch.equal(fine_grained_threaded(gray, workers=2), saliency_maps(gray))
    assert fine_grained_threaded(_images(0)).shape == (0, 32, 32)
