"""Equal-area masking (box_clip=shift) and the crop-padding strip kept out of the saliency peak."""

from __future__ import annotations

import math

import pytest
import torch

from ltbench.augment import box_masks
from ltbench.config import build_spec
from ltbench.registry import get_method
from ltbench.saliency import content_boxes, locate, peak, saliency_maps

from .fakes import FakeServices

H = W = 32


def _drawn_share(lam: float, h: int = H, w: int = W) -> float:
    """The box CutMix draws for lam, before any border: (2 * (int(h r) // 2)) x (2 * (int(w r) // 2))."""
    r = math.sqrt(1.0 - lam)
    return (2 * (int(h * r) // 2)) * (2 * (int(w * r) // 2)) / (h * w)


def _corner_images(n: int) -> torch.Tensor:
    """Float views whose most salient spot is a bright square in a corner (a peak on the border)."""
    x = torch.full((n, 3, H, W), 0.3)
    for i in range(n):
        r, c = [(0, 0), (0, W - 4), (H - 4, 0), (H - 4, W - 4)][i % 4]
        x[i, :, r:r + 4, c:c + 4] = 1.0
    return x


def test_shift_keeps_the_drawn_box_at_every_centre():
    rows = torch.tensor([0, 0, 31, 16, 5, 31, 2])
    cols = torch.tensor([0, 31, 31, 16, 30, 0, 17])
    for lam in (0.05, 0.3, 0.5, 0.77, 0.95):
        clip_mask, clip_share = box_masks(H, W, lam, rows, cols)
        mask, share = box_masks(H, W, lam, rows, cols, "shift")
        expected = _drawn_share(lam)
        assert torch.allclose(share, torch.full_like(share, expected))
        assert torch.equal(mask.sum(dim=(1, 2, 3)).float() / (H * W), share)  # the mask is the box
        assert abs(expected - (1 - lam)) <= 4 / H  # pixel rounding only
        assert (clip_share < share).any()  # border centres: clipping shrank those boxes
        inside = clip_share == share
        assert torch.equal(mask[inside], clip_mask[inside])  # a box already inside is not moved
        # the shifted box covers the clipped one (moved inward, not elsewhere)
        assert bool((mask | ~clip_mask).all())


def test_shift_with_per_sample_lambda():
    lam = torch.tensor([0.1, 0.6, 0.9])
    _, share = box_masks(H, W, lam, torch.tensor([0, 31, 16]), torch.tensor([31, 0, 16]), "shift")
    assert share.tolist() == pytest.approx([_drawn_share(v) for v in lam.tolist()])


class _FixedBeta:
    """The host RNG with a chosen lam~ (SMCL draws lam~ ~ Beta once per masked batch)."""

    def __init__(self, lam: float):
        self.lam = lam

    def beta(self, a: float, b: float) -> float:
        return self.lam

    def random(self) -> float:
        return 0.0


@pytest.mark.parametrize("locator", ["saliency", "random", "center"])
def test_every_locator_masks_one_minus_lambda_under_shift(locator):
    entry = get_method("smcl")
    x1 = _corner_images(16)
    if locator == "saliency":  # the scenario of the control: peaks on the border
        rows, cols = locate(x1, "saliency")
        assert bool(((rows < 4) | (rows >= H - 4) | (cols < 4) | (cols >= W - 4)).all())
    for box_clip in ("clip", "shift"):
        spec = build_spec("smcl", "shapes", 10, 0, "paper", {"mask_locator": locator, "box_clip": box_clip})
        sv = FakeServices(image=(H, W))
        method = entry.cls(entry.cls.Hparams(**spec.hparams), sv)
        for lam in (0.2, 0.5, 0.8):
            sv.rng = _FixedBeta(lam)
            _, mask, share = method.mask_batch(x1, x1)
            expected = torch.full_like(share, _drawn_share(lam))
            if box_clip == "shift" or locator == "center":
                assert torch.allclose(share, expected), (box_clip, lam)
                assert torch.equal(mask.sum(dim=(1, 2, 3)).float() / (H * W), share)
            elif locator == "saliency":
                assert bool((share < expected).all())  # clipped at the border: less than asked for


def _padded(images: torch.Tensor, top: int, left: int) -> torch.Tensor:
    """What RandomCrop(pad 4) gives when the crop runs `top` rows / `left` columns past the image."""
    out = torch.zeros_like(images)
    out[:, :, top:, left:] = images[:, :, : H - top, : W - left]
    return out


def test_content_boxes_find_the_zero_strip():
    gen = torch.Generator().manual_seed(0)
    img = torch.randint(1, 255, (3, 3, H, W), generator=gen, dtype=torch.uint8)
    x = torch.cat([_padded(img[:1], 4, 0), _padded(img[1:2], 0, 3), img[2:]])
    x[1, :, :, -2:] = 0  # a strip on the right as well
    assert content_boxes(x).tolist() == [[4, H, 0, W], [0, H, 3, W - 2], [0, H, 0, W]]
    assert content_boxes(torch.zeros(1, 1, 8, 8)).tolist() == [[0, 8, 0, 8]]  # nothing to trim


@pytest.mark.parametrize("method", ["fine-grained", "spectral-residual"])
def test_exclude_takes_the_peak_of_the_unpadded_view(method):
    gen = torch.Generator().manual_seed(1)
    base = (torch.rand(6, 3, H, W, generator=gen) * 0.5 + 0.25)
    views = torch.cat([_padded(base[:3], 4, 0), _padded(base[3:], 2, 3)])
    rows, cols = locate(views, "saliency", method, pad="exclude")
    # independent: the map of the content region itself, cut by hand, peak moved back by the offset
    r1, c1 = peak(saliency_maps(views[:3, :, 4:, :], method))
    r2, c2 = peak(saliency_maps(views[3:, :, 2:, 3:], method))
    assert rows.tolist() == (r1 + 4).tolist() + (r2 + 2).tolist()
    assert cols.tolist() == c1.tolist() + (c2 + 3).tolist()
    inc_rows, inc_cols = locate(views, "saliency", method)
    assert (inc_rows != rows).any() or (inc_cols != cols).any()  # the strip moved the peak


def test_smcl_passes_the_padding_rule_to_the_locator():
    entry = get_method("smcl")
    gen = torch.Generator().manual_seed(2)
    views = _padded(torch.rand(4, 3, H, W, generator=gen) * 0.5 + 0.25, 4, 4)
    got = {}
    for pad in ("include", "exclude"):
        spec = build_spec("smcl", "shapes", 10, 0, "paper", {"saliency_pad": pad})
        method = entry.cls(entry.cls.Hparams(**spec.hparams), FakeServices(image=(H, W)))
        got[pad] = [t.tolist() for t in method.box_centres(views)]
        assert got[pad] == [t.tolist() for t in locate(views, "saliency", pad=pad)]
    assert got["include"] != got["exclude"]


def test_defaults_keep_run_ids_and_no_op_combinations_normalise():
    base = build_spec("smcl", "shapes", 10, 0, "paper", {})
    same = build_spec("smcl", "shapes", 10, 0, "paper", {"box_clip": "clip", "saliency_pad": "include"})
    assert same.run_id == base.run_id and "box_clip" not in base.canonical_json()
    assert build_spec("smcl", "shapes", 10, 0, "paper", {"box_clip": "shift"}).run_id != base.run_id
    assert build_spec("smcl", "shapes", 10, 0, "paper", {"saliency_pad": "exclude"}).run_id != base.run_id
    scl = build_spec("scl", "shapes", 10, 0, "paper", {})
    assert build_spec("scl", "shapes", 10, 0, "paper", {"box_clip": "shift"}).run_id == scl.run_id
    rnd = {"mask_locator": "random"}
    assert build_spec("smcl", "shapes", 10, 0, "paper", {**rnd, "saliency_pad": "exclude"}).run_id == \
        build_spec("smcl", "shapes", 10, 0, "paper", rnd).run_id
