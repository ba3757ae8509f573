"""Device placement of the losses, the box masks and the per-method constants, checked without a GPU.

PyTorch's `meta` device stands in for CUDA: like CUDA, it refuses to mix with CPU tensors in one op
(a 0-dim CPU tensor excepted), and a result created on the CPU by mistake shows as `device.type == "cpu"`
instead of "meta". So every test feeds meta inputs (plus the CPU vectors and lists the code accepts on
purpose) and checks that the call does not raise and that the result is on the inputs' device.

Meta tensors hold no data, so the count -> weight/margin rules, which copy the counts to the host on
purpose (float64 math on the CPU, losses.py), are given `_DeviceCounts`: a meta tensor that, like a CUDA
tensor, can be copied to the host. The numbers themselves are checked in test_losses.py.
"""

from __future__ import annotations

import pytest
import torch

from ltbench import losses
from ltbench.augment.core import box_masks
from ltbench.config import build_spec
from ltbench.registry import get_method

from .fakes import COUNTS, FakeServices

META = torch.device("meta")


def _meta(*shape, dtype=torch.float32) -> torch.Tensor:
    return torch.empty(*shape, dtype=dtype, device=META)


def _logits_targets(batch: int = 6, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    return _meta(batch, classes), _meta(batch, dtype=torch.int64)


# ----- per-class weights and margins of counts on an accelerator ---------------------------------------

class _DeviceCounts(torch.Tensor):
    """Class counts on an accelerator: the tensor lives on `meta` (no mixing with CPU tensors, no data),
    and, as a CUDA tensor does, it copies to the host on request, where it holds `host`."""

    __torch_function__ = torch._C._disabled_torch_function_impl  # results are plain tensors
    host: torch.Tensor

    @classmethod
    def of(cls, counts) -> _DeviceCounts:
        t = _meta(len(counts), dtype=torch.int64).as_subclass(cls)
        t.host = torch.tensor(counts, dtype=torch.int64)
        return t

    def detach(self) -> _DeviceCounts:
        return self

    def to(self, *args, device=None, dtype=None, **kwargs) -> torch.Tensor:
        assert not args and not kwargs, "the counts are moved with keyword arguments only"
        if device is not None and torch.device(device).type == "cpu":
            return self.host.to(dtype=dtype)
        # staying on the accelerator: a plain meta tensor, which cannot be read (bool(), .item())
        return torch.Tensor.to(self.as_subclass(torch.Tensor), device=device, dtype=dtype)


def test_device_counts_are_read_on_the_host_and_their_device_is_kept():
    counts, device = losses._counts_float64(_DeviceCounts.of(COUNTS))
    assert device == META
    assert counts.device.type == "cpu" and counts.dtype == torch.float64
    assert counts.tolist() == [float(n) for n in COUNTS]


@pytest.mark.parametrize("rule", [
    lambda c: losses.class_balanced_weights(c, 0.99),
    losses.inverse_frequency_weights,
    lambda c: losses.ldam_margins(c, 0.5),
], ids=["class_balanced", "inverse_frequency", "ldam_margins"])
def test_weights_and_margins_come_back_on_the_counts_device(rule):
    out = rule(_DeviceCounts.of(COUNTS))
    assert out.device == META and out.dtype == torch.float32 and out.shape == (len(COUNTS),)


# ----- losses: CPU per-class vectors are moved to the logits' device ------------------------------------

def test_focal_loss_moves_a_cpu_weight_to_the_logits_device():
    z, y = _logits_targets()
    assert losses.focal_loss(z, y, 1.0, weight=torch.ones(4)).device == META


def test_sigmoid_focal_cb_loss_moves_a_cpu_weight_to_the_logits_device():
    z, y = _logits_targets()
    assert losses.sigmoid_focal_cb_loss(z, y, torch.ones(4), 1.0).device == META


def test_ldam_loss_with_list_counts_and_cpu_weight_runs_on_the_logits_device():
    z, y = _logits_targets()
    assert losses.ldam_loss(z, y, COUNTS, weight=torch.ones(4)).device == META


@pytest.mark.parametrize("counts", [COUNTS, torch.tensor(COUNTS)], ids=["list", "cpu_tensor"])
def test_balanced_softmax_moves_host_counts_to_the_logits_device(counts):
    z, y = _logits_targets()
    assert losses.balanced_softmax_loss(z, y, counts, weight=torch.ones(4)).device == META


def test_balanced_softmax_takes_counts_already_on_the_logits_device():
    z, y = _logits_targets()
    assert losses.balanced_softmax_loss(z, y, _meta(4)).device == META


def test_supcon_without_labels_builds_its_labels_and_masks_on_the_features_device():
    feats = _meta(3, 2, 5)
    assert losses.supcon_loss(feats).device == META
    assert losses.supcon_loss(feats, contrast_mode="one", reduction="none").device == META


def test_supcon_moves_cpu_labels_to_the_features_device():
    assert losses.supcon_loss(_meta(3, 2, 5), torch.tensor([0, 1, 0])).device == META


# ----- box masks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("box_clip", ["clip", "shift"])
def test_box_masks_are_built_on_the_centres_device(box_clip):
    rows, cols = _meta(3, dtype=torch.int64), _meta(3, dtype=torch.int64)
    mask, lam_b = box_masks(16, 12, 0.6, rows, cols, box_clip)
    assert mask.device == META and mask.shape == (3, 1, 16, 12) and lam_b.device == META


@pytest.mark.parametrize("box_clip", ["clip", "shift"])
def test_a_cpu_lambda_tensor_is_moved_to_the_centres_device(box_clip):
    rows, cols = _meta(3, dtype=torch.int64), _meta(3, dtype=torch.int64)
    mask, lam_b = box_masks(16, 12, torch.tensor([0.3, 0.6, 0.9]), rows, cols, box_clip)
    assert mask.device == META and lam_b.device == META


# ----- per-method constants are built on the trainer's device ------------------------------------------

def _on_meta(name: str, **overrides):
    """`name` built on a fake trainer whose device is meta (the trainer's generator stays a CPU one)."""
    spec = build_spec(name, "shapes", 10, overrides={"epochs": 10, **overrides})
    entry = get_method(name)
    sv = FakeServices(image=(16, 16), epochs=10)
    sv.device = META
    return entry.cls(entry.cls.Hparams(**spec.hparams), sv)


def test_ldam_margins_and_drw_weights_live_on_the_trainer_device():
    method = _on_meta("ldam-drw")
    assert method.margins.device == META
    method.on_epoch_start(9)  # DRW is on from 80 % of the 10 epochs
    assert method.class_weights is not None and method.class_weights.device == META
    z, y = _logits_targets()
    assert method.ce(z, y).device == META


def test_cb_focal_weights_live_on_the_trainer_device():
    assert _on_meta("cb-focal").cb.device == META


def test_balanced_softmax_counts_live_on_the_trainer_device():
    assert _on_meta("balanced-softmax").counts.device == META


def test_the_partner_permutation_is_drawn_on_the_trainer_device():
    perm = _on_meta("mixup").partner_permutation(5)
    assert perm.device == META and perm.shape == (5,)
