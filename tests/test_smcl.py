"""SMCL's masking: the box, lambda, the two fills, the locators, and masked batches in a real run."""

from __future__ import annotations

import pytest
import torch

from ltbench.config import build_spec
from ltbench.files import read_jsonl
from ltbench.method import Batch
from ltbench.registry import get_method
from ltbench.train import RuntimeOptions, run_directory, train

from .fakes import FakeServices


def _smcl(name="smcl", **overrides):
    spec = build_spec(name, "shapes", 10, overrides={"epochs": 4, "mask_start_epoch": 0, "mask_prob": 1.0,
                                                     **overrides})
    entry = get_method(name)
    sv = FakeServices(image=(16, 16))
    method = entry.cls(entry.cls.Hparams(**spec.hparams), sv)
    method.on_epoch_start(0)
    return method, sv


@pytest.mark.parametrize("fill", ["erase", "paste-target"])
@pytest.mark.parametrize("locator", ["saliency", "random", "center"])
def test_masked_image_differs_from_its_source_only_inside_the_box(fill, locator):
    method, sv = _smcl(mask_fill=fill, mask_locator=locator)
    x1 = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    xt1 = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    xm, mask, lam_b = method.mask_batch(x1, xt1)
    outside = ~mask.expand_as(x1)
    assert torch.equal(xm[outside], x1[outside])
    inside = mask.expand_as(x1)
    expected = xt1 if fill == "paste-target" else torch.tensor(sv.mean).view(1, 3, 1, 1).expand_as(x1)
    assert torch.equal(xm[inside], expected[inside])
    share = mask.flatten(1).float().mean(dim=1)
    assert torch.allclose(lam_b, share)  # lambda = the box's share of the image
    assert mask.any()


def test_center_locator_centres_the_box():
    method, _ = _smcl(mask_locator="center")
    _, mask, _ = method.mask_batch(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))
    rows = mask[0, 0].any(dim=1).nonzero().flatten()
    cols = mask[0, 0].any(dim=0).nonzero().flatten()
    assert rows.min() + rows.max() in (15, 16) and cols.min() + cols.max() in (15, 16)


def test_box_per_batch_uses_one_box():
    method, _ = _smcl(box_per="batch", mask_locator="random")
    _, mask, _ = method.mask_batch(torch.rand(5, 3, 16, 16), torch.rand(5, 3, 16, 16))
    assert torch.equal(mask, mask[:1].expand_as(mask))


def test_masked_step_forwards_five_views_with_target_labels():
    method, sv = _smcl()
    x = torch.rand(4, 3, 16, 16)
    out = method.training_step(Batch((x * 255).byte(), torch.tensor([0, 1, 0, 1]), [x, x]))
    assert len(sv.seen) == 5 and out.logs["masked"].item() == 1.0
    assert 0 < out.logs["mask_share"].item() < 1
    method.hp.mask_prob = 0.0
    out = method.training_step(Batch((x * 255).byte(), torch.tensor([0, 1, 0, 1]), [x, x]))
    assert len(sv.seen) == 2 and out.logs["masked"].item() == 0.0


@pytest.mark.parametrize("method", ["scl", "smcl", "drw+smcl"])
def test_two_epochs_with_masking_forced_on(method, tmp_path, tiny):
    forced = {} if method == "scl" else {"mask_start_epoch": 0, "mask_prob": 1.0}
    spec = build_spec(method, "shapes", 10, 0, "paper", {**tiny, "epochs": 2, **forced})
    train(spec, RuntimeOptions(results_dir=tmp_path, device="cpu", argv=["test"]))
    rows = read_jsonl(run_directory(spec, tmp_path) / "metrics.jsonl")
    assert len(rows) == 2
    assert all(r["masked"] == (0.0 if method == "scl" else 1.0) for r in rows)
    assert all(r["supcon"] > 0 for r in rows)
