"""SMCL edge cases the equation tests do not reach: the no-op normalisation rules at their boundaries, the
Table 4 ablation rows, the head sizes, the model-saliency input normalisation, the saliency statistics for
grayscale and normalised RGB input, one box per batch (model-saliency and the masked step's CE), the random
locator's generator, the masking draw at its boundary, and device placement of the constants each step
builds (checked on the `meta` device, which, like CUDA, refuses to mix with CPU tensors)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from ltbench.methods import smcl as smcl_module
from ltbench.methods.smcl import SMCL, SMCLHparams

from ltbench.models import ModelOptions
from ltbench.registry import PaperAblation, get_method
from ltbench.saliency import locate

from .fakes import FakeServices, has_contrib_saliency
from .reference import TOL, batch_for, logits_of, make, step, weighted_ce

needs_contrib = pytest.mark.skipif(not has_contrib_saliency(), reason="needs OpenCV's contrib saliency module")


def _method(sv: FakeServices | None = None, **hp) -> tuple[SMCL, FakeServices]:
    """SMCL built straight from its dataclass (no resolve_hparams: no setting is normalised away)."""
    sv = sv if sv is not None else FakeServices(image=(16, 16))
    hparams = SMCLHparams(mask_prob=1.0, mask_start_epoch=0, base_temperature=0.1, **hp)
    method = SMCL(hparams, sv)
    method.on_epoch_start(0)
    return method, sv


def _resolved(epochs: int = 10, **overrides) -> dict:
    values = {**{f.name: f.default for f in dataclasses.fields(SMCLHparams)}, **overrides}
    return SMCL.resolve_hparams(values, epochs)


# ----- registration and hyperparameter resolution ---------------------------------------------------

def test_contrastive_rows_are_w_sc_zero_and_point_three():
    rows = smcl_module._contrastive_rows("X")
    assert rows == PaperAblation("w_sc", ((0.0, "cross-entropy only (X)"), (0.3, "with contrastive (X)")))
    assert rows.variant({"w_sc": 0}) == "cross-entropy only (X)"
    assert rows.variant({"w_sc": "0.3"}) == "with contrastive (X)"
    assert rows.variant({"w_sc": 1.0}) is None
    assert get_method("drw+smcl").paper_ablations["contrastive"] == smcl_module._contrastive_rows("DRW+SMCL")


def test_an_explicit_base_temperature_is_kept_and_none_becomes_the_temperature():
    assert _resolved(temperature=0.2, base_temperature=0.15)["base_temperature"] == 0.15
    assert _resolved(temperature=0.2, base_temperature=None)["base_temperature"] == 0.2


def test_masking_that_starts_at_the_last_epoch_never_starts():
    # epochs 0 .. 9 run: a start epoch of 10 is SCL (mask_prob 0, masking settings back to defaults) ...
    out = _resolved(epochs=10, mask_start_epoch=10, mask_prob=0.5, mask_fill="paste-target")
    assert out["mask_prob"] == 0.0 and out["mask_fill"] == "erase" and out["mask_start_epoch"] == 8
    # ... and one epoch earlier it still masks
    out = _resolved(epochs=10, mask_start_epoch=9, mask_prob=0.5, mask_fill="paste-target")
    assert out["mask_prob"] == 0.5 and out["mask_fill"] == "paste-target" and out["mask_start_epoch"] == 9


def test_centre_boxes_reset_box_clip_and_lambda_per_sample_only_where_they_are_no_ops():
    centre = _resolved(mask_locator="center", box_clip="shift", box_per="batch", lambda_per_sample=True)
    assert centre["box_clip"] == "clip" and centre["box_per"] == "sample" and centre["lambda_per_sample"] is False
    # per-sample boxes at the saliency peak: clipping makes the lam_b differ, so both settings matter
    peaks = _resolved(mask_locator="saliency", box_clip="shift", lambda_per_sample=True)
    assert peaks["box_clip"] == "shift" and peaks["lambda_per_sample"] is True
    assert _resolved(mask_locator="random", box_per="batch", lambda_per_sample=True)["lambda_per_sample"] is False


def test_model_options_carry_the_head_sizes():
    method, _ = _method(head_hidden=64, feat_dim=24)
    assert method.model_options() == ModelOptions(projection=True, head_hidden=64, feat_dim=24)


# ----- model saliency ---------------------------------------------------------------------------------

def _capture_cam(monkeypatch) -> dict:
    seen: dict = {}

    def fake(model, x, labels):
        seen["x"] = x
        return torch.zeros(x.shape[0], *x.shape[-2:], device=x.device)

    monkeypatch.setattr(smcl_module, "class_activation_maps", fake)
    return seen


def test_model_maps_normalise_each_channel_by_its_own_mean_and_std(monkeypatch):
    seen = _capture_cam(monkeypatch)
    method, sv = _method(mask_locator="model-saliency")
    method.setup_model(sv.model)
    x1 = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    method.model_maps(x1, torch.tensor([0, 1]))
    expected = torch.empty_like(x1)
    for c in range(3):  # fake statistics: mean (0.5, 0.4, 0.3), std (0.25, 0.2, 0.3)
        expected[:, c] = (x1[:, c] - sv.mean[c]) / sv.std[c]
    assert seen["x"].dtype == x1.dtype
    assert torch.allclose(seen["x"], expected, rtol=1e-6, atol=1e-6)


def test_model_maps_build_the_statistics_on_the_images_device(monkeypatch):
    seen = _capture_cam(monkeypatch)
    method, sv = _method(mask_locator="model-saliency")
    method.setup_model(sv.model)
    method.model_maps(torch.empty(2, 3, 8, 8, device="meta"), torch.tensor([0, 1], device="meta"))
    assert seen["x"].device.type == "meta"


def test_model_saliency_with_one_box_per_batch_uses_the_first_maps_peak():
    method, _ = _method(mask_locator="model-saliency", box_per="batch")
    maps = torch.zeros(4, 16, 16)
    for i, (r, c) in enumerate([(3, 4), (12, 10), (8, 2), (5, 13)]):
        maps[i, r, c] = 1.0
    rows, cols = method.box_centres(torch.rand(4, 3, 16, 16), maps)
    assert rows.tolist() == [3] * 4 and cols.tolist() == [4] * 4


# ----- the saliency locator's statistics and the random locator's generator -----------------------

@needs_contrib
def test_grayscale_normalised_saliency_uses_the_data_sets_statistics():
    sv = FakeServices(image=(16, 16))
    sv.mean, sv.std = (0.3,), (0.2,)  # one channel: SaliencyMix's CIFAR constants do not apply
    method, _ = _method(sv, saliency_input="normalized")
    x1 = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    rows, cols = method.box_centres(x1)
    r, c = locate(x1, "saliency", "fine-grained", "normalized", mean=(0.3,), std=(0.2,))
    assert rows.tolist() == r.tolist() and cols.tolist() == c.tolist()


@needs_contrib
def test_rgb_normalised_saliency_uses_saliencymix_statistics_not_ours():
    method, sv = _method(saliency_input="normalized")
    x1 = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    rows, cols = method.box_centres(x1)
    r, c = locate(x1, "saliency", "fine-grained", "normalized")  # SaliencyMix's CIFAR constants
    assert rows.tolist() == r.tolist() and cols.tolist() == c.tolist()
    ours = locate(x1, "saliency", "fine-grained", "normalized", mean=sv.mean, std=sv.std)
    assert ours[0].tolist() != r.tolist()  # the two statistics give other peaks here, so the check bites


def test_random_boxes_come_from_the_trainers_generator():
    method, sv = _method(mask_locator="random")
    replay = torch.Generator().set_state(sv.generator.get_state())
    with torch.random.fork_rng():
        torch.manual_seed(12345)  # the global stream is not the one to use
        rows, cols = method.box_centres(torch.rand(5, 3, 16, 12))
    assert rows.tolist() == torch.randint(0, 16, (5,), generator=replay).tolist()
    assert cols.tolist() == torch.randint(0, 12, (5,), generator=replay).tolist()


# ----- one box per batch through the masked step --------------------------------------------------

def test_one_box_per_batch_gives_every_sample_its_lambda_and_the_ce_its_masked_rows():
    method, sv = make("smcl", mask_prob=1.0, mask_start_epoch=0, mask_locator="random", box_per="batch",
                      target_in_ce=False)
    assert method.hp.box_per == "batch" and not method.hp.target_in_ce
    _, mask, lam_b = method.mask_batch(torch.rand(6, 3, 16, 16), torch.rand(6, 3, 16, 16))
    assert mask.shape == (6, 1, 16, 16) and lam_b.shape == (6,)
    batch = batch_for(method, sv)
    out, _, _ = step(method, sv, 1, batch)
    y, b = batch.labels, len(batch.labels)
    x1, xm = sv.seen[0], sv.seen[4]
    changed = xm[:, 0] != x1[:, 0]  # the erase fill 0.5 is no k / 255 pixel: exactly the box
    assert torch.equal(changed, changed[:1].expand_as(changed)) and changed.any()
    lam = float(changed.float().mean())
    assert out.logs["mask_share"].item() == pytest.approx(lam, **TOL)
    z, _ = logits_of(sv, sv.seen)
    yt = sv.drawn[-1][1]
    rows = torch.cat([torch.arange(2 * b), torch.arange(4 * b, 5 * b)])  # x1, x2, xm (target views left out)
    ys, yt5 = torch.cat([y, y, yt, yt, y])[rows], torch.cat([y, y, yt, yt, yt])[rows]
    ce = (1 - lam) * weighted_ce(z[rows], ys) + lam * weighted_ce(z[rows], yt5)
    assert out.logs["ce"].item() == pytest.approx(ce, **TOL)


# ----- the masking draw -----------------------------------------------------------------------------

class _Draw:
    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(("prob", "draw", "masked"), [(0.5, 0.5, False), (0.5, 0.4999, True), (0.0, 0.0, False),
                                                      (1.0, 0.9999, True)])
def test_a_batch_is_masked_when_the_draw_is_below_mask_prob(prob, draw, masked):
    method, sv = _method(mask_locator="random")
    method.hp.mask_prob = prob
    sv.rng = _Draw(draw)
    assert method.masking_now() is masked


# ----- device placement (meta stands in for CUDA: neither mixes with CPU tensors) ------------------

def test_the_erase_fill_is_built_on_the_images_device():
    method, sv = _method(mask_locator="center")
    x1 = torch.empty(3, 3, 16, 16, device="meta")
    xm, mask, lam_b = method.mask_batch(x1, x1)
    assert xm.device.type == "meta" and mask.device.type == "meta"


def test_mixed_ce_without_target_views_indexes_on_the_logits_device():
    method, _ = _method(mask_locator="random", target_in_ce=False)
    b = 2
    logits = torch.empty(5 * b, 4, device="meta")
    y = torch.zeros(5 * b, dtype=torch.int64, device="meta")
    lam_b = torch.empty(b, device="meta")
    assert method.mixed_ce(logits, y, y, lam_b.mean(), lam_b).device.type == "meta"


def test_saliency_weights_are_built_on_the_maps_device(monkeypatch):
    monkeypatch.setattr(smcl_module, "class_activation_maps",
                        lambda model, x, labels: torch.ones(x.shape[0], *x.shape[-2:]))
    real_share = smcl_module.box_mass_share
    monkeypatch.setattr(smcl_module, "box_mass_share", lambda maps, mask: real_share(maps, mask).to("meta"))
    method, sv = _method(mask_locator="center", supcon_weighting="saliency")
    method.setup_model(sv.model)
    got = []

    def supcon(feats, labels, weights=None):
        got.append(weights)
        return torch.zeros(())

    method.supcon = supcon
    method.training_step(batch_for(method, sv, labels=torch.tensor([0, 1, 2, 3])))
    assert len(got) == 2 and all(w is not None and w.device.type == "meta" and w.shape == (20,) for w in got)
