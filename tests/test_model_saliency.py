"""Model-derived saliency for SMCL: the CAM against a literal computation, `mask_locator=model-saliency`
boxes at the map's peak, and `supcon_weighting=saliency` weights the masked view by the mass it keeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ltbench.methods import smcl as smcl_module
from ltbench.methods.smcl import SMCL, SMCLHparams

from ltbench.config import build_spec
from ltbench.losses import supcon_loss
from ltbench.method import Batch
from ltbench.model_saliency import box_mass_share, class_activation_maps
from ltbench.models import build_model
from ltbench.train import train
from tests.bcl_helpers import BclServices
from tests.resume import runtime


def test_cam_equals_the_literal_weighted_sum_of_the_last_stage_and_leaves_bn_alone():
    torch.manual_seed(0)
    model = build_model("resnet8", 4, 3, smcl_module.ModelOptions(projection=True))
    model.train()
    x = torch.randn(3, 3, 16, 16)
    y = torch.tensor([2, 0, 3])
    running = model.backbone.bn1.running_mean.clone()
    maps = class_activation_maps(model, x, y)
    assert model.training and torch.equal(model.backbone.bn1.running_mean, running)
    model.eval()
    with torch.no_grad():
        b = model.backbone
        a = b.layers(F.relu(b.bn1(b.conv1(x))))  # [3, 64, 4, 4]
    for i in range(3):
        cam = sum(model.classifier.weight[y[i], k] * a[i, k] for k in range(a.shape[1]))
        up = F.interpolate(cam[None, None], size=(16, 16), mode="bilinear", align_corners=False)[0, 0]
        expected = (up - up.min()) / (up.max() - up.min())
        assert torch.allclose(maps[i], expected, atol=1e-5)
    assert maps.shape == (3, 16, 16) and float(maps.min()) == 0.0 and float(maps.max()) == 1.0


def test_box_mass_share_by_hand():
    maps = torch.zeros(2, 4, 4)
    maps[0] = 1.0  # uniform: a 2 x 2 box holds 4 / 16
    maps[1, 0, 0] = 3.0
    maps[1, 3, 3] = 1.0  # the box holds the 3 of 4
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, :2, :2] = True
    assert box_mass_share(maps, mask).tolist() == pytest.approx([0.25, 0.75])


# ----- through SMCL's masked step ---------------------------------------------------------------------

class SMCLServices(BclServices):
    def draw(self, kind, n, **params):
        g = torch.Generator().manual_seed(7)
        return torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8), torch.tensor([2, 1, 0, 1])[:n]

    def augment(self, pipeline, images):
        return images.float() / 255.0


def make_smcl(**hp):
    torch.manual_seed(0)
    sv = SMCLServices((6, 3, 1))
    hparams = SMCLHparams(mask_prob=1.0, mask_start_epoch=0, base_temperature=0.1, **hp)
    method = SMCL(hparams, sv)
    sv.model = build_model("resnet8", 3, 3, method.model_options())
    method.setup_model(sv.model)
    method.on_epoch_start(0)
    return method, sv


def _views():
    g = torch.Generator().manual_seed(1)
    return [torch.rand(4, 3, 16, 16, generator=g) for _ in range(2)]


def peaked_maps(rows, cols):
    """A fake model map: all mass at one pixel per image."""
    def fake(model, x, labels):
        maps = torch.zeros(x.shape[0], *x.shape[-2:])
        maps[torch.arange(x.shape[0]), torch.tensor(rows), torch.tensor(cols)] = 1.0
        return maps
    return fake


def test_model_saliency_centres_the_box_on_the_model_maps_peak(monkeypatch):
    monkeypatch.setattr(smcl_module, "class_activation_maps", peaked_maps([3, 12, 8, 5], [4, 10, 2, 13]))
    method, _ = make_smcl(mask_locator="model-saliency")
    x1, _ = _views()
    maps = method.model_maps(x1, torch.tensor([0, 1, 2, 0]))
    rows, cols = method.box_centres(x1, maps)
    assert rows.tolist() == [3, 12, 8, 5] and cols.tolist() == [4, 10, 2, 13]
    assert method.nograd_images == 4  # the extra forward ltbench bench counts


def test_model_saliency_step_masks_where_the_real_cam_peaks():
    method, sv = make_smcl(mask_locator="model-saliency")
    x1, x2 = _views()
    y = torch.tensor([0, 1, 2, 0])
    cam = class_activation_maps(sv.model, (x1 - 0.5) / 0.25, y)  # the fake's mean / std
    flat = cam.reshape(4, -1).argmax(dim=1)
    rows, cols = (flat // 16).tolist(), (flat % 16).tolist()
    seen = {}
    original = method.mask_batch

    def spy(a, b, maps=None):
        xm, mask, lam_b = original(a, b, maps)
        seen["mask"] = mask
        return xm, mask, lam_b

    method.mask_batch = spy
    method.training_step(Batch(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), y, [x1, x2]))
    mask = seen["mask"][:, 0]
    for i in range(4):
        if mask[i].any():  # a box of positive size contains its centre (clipped boxes too)
            assert bool(mask[i, rows[i], cols[i]]), i
    assert bool(mask.any())


@pytest.mark.parametrize("inside", [True, False])
def test_supcon_weighting_weights_the_masked_view_by_the_mass_it_keeps(monkeypatch, inside):
    # every map's mass sits at the box centre (inside the box: the masked view keeps none of it) or, for
    # the `inside=False` case, the model map peaks elsewhere than the (centre) box: the view keeps all of it
    peak = (8, 8) if inside else (0, 0)
    monkeypatch.setattr(smcl_module, "class_activation_maps", peaked_maps([peak[0]] * 4, [peak[1]] * 4))
    y = torch.tensor([0, 1, 2, 0])
    method, sv = make_smcl(mask_locator="center", supcon_weighting="saliency", mask_beta=1.0)
    x1, x2 = _views()
    rng_state = method.sv.rng.bit_generator.state
    out = method.training_step(Batch(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), y, [x1, x2]))

    # recompute: same host draws (mask decision, lambda), the forward of the five views, SupCon per anchor
    method2, sv2 = make_smcl(mask_locator="center")
    method2.sv.rng.bit_generator.state = rng_state
    captured = {}
    forward = sv2.forward

    def capture(views):
        outs = forward(views)
        captured["feats"] = torch.cat([f for _, f in outs]).unsqueeze(1)
        return outs

    sv2.forward = capture
    masked2 = {}
    original = method2.mask_batch

    def spy(a, b, maps=None):
        xm, mask, lam_b = original(a, b, maps)
        masked2["lam"] = lam_b.mean()
        return xm, mask, lam_b

    method2.mask_batch = spy
    out_plain = method2.training_step(Batch(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), y, [x1, x2]))
    feats, lam = captured["feats"].detach(), float(masked2["lam"])
    yt = sv2.draw("x", 4)[1]
    y_src, y_tgt = torch.cat([y, y, yt, yt, y]), torch.cat([y, y, yt, yt, yt])
    keep = 0.0 if inside else 1.0
    w = np.array([1.0] * 16 + [keep] * 4)

    def weighted(labels):
        per = supcon_loss(feats, labels, 0.1, 0.1, reduction="none").numpy()
        return float((w * per).sum() / w.sum())

    expected = (1 - lam) * weighted(y_src) + lam * weighted(y_tgt)
    assert float(out.logs["supcon"]) == pytest.approx(expected, rel=1e-5)
    if inside:  # dropping the masked view's terms changes the loss; keeping them all gives the plain one
        assert float(out.logs["supcon"]) != pytest.approx(float(out_plain.logs["supcon"]), rel=1e-4)
    else:
        assert float(out.logs["supcon"]) == pytest.approx(float(out_plain.logs["supcon"]), rel=1e-5)


def test_model_saliency_and_weighting_train_on_shapes(tmp_path, tiny):
    spec = build_spec("drw+smcl", "shapes", 10, 0, "paper",
                      {**tiny, "max_per_class": 30, "epochs": 1, "mask_start_epoch": 0, "mask_prob": 1.0,
                       "mask_locator": "model-saliency", "supcon_weighting": "saliency"})
    assert spec.hparams["mask_locator"] == "model-saliency" and spec.hparams["supcon_weighting"] == "saliency"
    final = train(spec, runtime(tmp_path))
    assert 0.0 <= final["top1"] <= 100.0


def test_bench_counts_the_extra_forward_and_times_the_model_map():
    from ltbench.bench import BenchOptions, run_bench

    result = run_bench(BenchOptions(method="smcl", ratio=10, steps=1, rounds=1, batch_size=16, device="cpu", workers=(),
                                    cheap_reps=1, overrides={"backbone": "resnet8", "max_per_class": 60,
                                                             "mask_locator": "model-saliency"}))
    masked = result["steps"]["smcl:masked"]
    assert masked["images_per_step"] == 80 and masked["nograd_images_per_step"] == 16
    assert masked["predicted_step_vs_erm"] == pytest.approx((80 + 16 / 3) / 16, abs=1e-4)
    assert result["steps"]["smcl:plain"]["nograd_images_per_step"] == 0
    assert result["saliency_ms"]["model-cam"] > 0
