"""BCL: the balanced contrastive loss and the logit adjustment against literal computations; the method's
loss against one recomputed from its model; training and exact resume on shapes and Fashion-MNIST-LT."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from ltbench.methods.bcl import BCLHparams

from ltbench.config import build_spec
from ltbench.errors import LtbenchError
from ltbench.losses_balanced import balanced_contrastive_loss, log_prior, logit_adjusted
from ltbench.method import Batch, TrainerServices
from ltbench.train import train
from tests.bcl_helpers import BclServices, have_fashion_mnist, literal_bal_scl, make_bcl
from tests.resume import check_exact_resume, runtime


def _unit(*xy):
    t = torch.tensor(xy, dtype=torch.float32)
    return t / t.norm()


def test_balanced_contrastive_loss_equals_the_literal_formula():
    # 2 samples (classes 0, 1) x 2 views, 3 classes of prototypes; axis-aligned vectors: dots are 0 / +-1 / 0.6
    feats = torch.stack([torch.stack([_unit(1, 0), _unit(0.6, 0.8)]), torch.stack([_unit(0, 1), _unit(-1, 0)])])
    labels = torch.tensor([0, 1])
    protos = torch.stack([_unit(1, 0), _unit(0, 1), _unit(-0.6, 0.8)])
    for tau in (0.1, 0.5, 1.0):
        got = float(balanced_contrastive_loss(feats, labels, protos, tau))
        assert got == pytest.approx(literal_bal_scl(feats, labels, protos, tau), rel=1e-5), tau
    # without prototypes the same formula over the views alone (an ablation), and a different number
    no_proto = float(balanced_contrastive_loss(feats, labels, None, 0.5))
    assert no_proto == pytest.approx(literal_bal_scl(feats, labels, None, 0.5), rel=1e-5)
    assert no_proto != pytest.approx(literal_bal_scl(feats, labels, protos, 0.5), rel=1e-3)


def test_balanced_contrastive_loss_by_hand():
    # one sample of class 0, two identical views f = (1, 0); prototypes p0 = (1, 0), p1 = (0, 1); T = 1.
    # anchor view 1: positives {view 2, p0} (dots 1, 1); class 0 members besides the anchor: view 2, p0
    # (count 2), class 1: p1 (count 1) -> denominator (e + e) / 2 + e^0 / 1 = e + 1; loss = -(1 - log(e + 1))
    feats = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    got = float(balanced_contrastive_loss(feats, torch.tensor([0]), protos, 1.0))
    assert got == pytest.approx(-(1.0 - math.log(math.e + 1.0)), rel=1e-6)


def test_logit_adjustment_equals_the_literal_formula():
    counts = [30, 10]  # prior (0.75, 0.25)
    prior = log_prior(counts)
    assert prior.tolist() == pytest.approx([math.log(0.75), math.log(0.25)], rel=1e-6)
    z = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    for tau in (1.0, 0.5):
        adj = logit_adjusted(z, prior, tau)
        assert adj.flatten().tolist() == pytest.approx([1 + tau * math.log(0.75), 2 + tau * math.log(0.25),
                                                        tau * math.log(0.75), tau * math.log(0.25)], rel=1e-6)
    # CE on the adjusted logits, row 2 (label 1), tau = 1: -log(0.25 / (0.75 + 0.25)) = log 4
    ce = F.cross_entropy(logit_adjusted(z[1:], prior, 1.0), torch.tensor([1]))
    assert float(ce) == pytest.approx(math.log(4.0), rel=1e-6)


# ----- the method's loss, recomputed from its model ----------------------------------------------------

def test_bcl_services_provide_the_trainer_services():
    """tests/bcl_helpers.py's fake has no base class: it must carry every member of the protocol itself."""
    sv: TrainerServices = BclServices((6, 3, 1))  # the typed assignment is what mypy checks; isinstance at run time
    assert isinstance(sv, TrainerServices)


def expected_bcl_loss(model, views, y, counts, hp: BCLHparams):
    logits, raw = model(torch.cat(views))
    b = y.shape[0]
    z, f1, f2 = logits[:b], F.normalize(raw[b:2 * b], dim=1), F.normalize(raw[2 * b:], dim=1)
    centres = model.centres_head(model.classifier.weight.T)  # NormedLinear stores [d_in, C]
    protos = F.normalize(centres, dim=1)
    prior = torch.tensor(counts, dtype=torch.float64)
    adj = hp.s * z.double() + hp.la_tau * torch.log(prior / prior.sum())
    ce = F.cross_entropy(adj, y)
    sc = literal_bal_scl(torch.stack([f1, f2], dim=1).double(), y, protos.double(), hp.temperature)
    return hp.w_ce * ce.item() + hp.w_bcl * sc


@pytest.mark.parametrize("hp", [{}, {"la_tau": 0.5, "temperature": 0.3, "w_ce": 1.0, "w_bcl": 0.35, "s": 10.0}])
def test_bcl_step_is_the_weighted_sum_of_its_two_literal_losses(hp):
    method, sv = make_bcl(**hp)
    g = torch.Generator().manual_seed(1)
    views = [torch.rand(4, 3, 16, 16, generator=g) for _ in range(3)]
    y = torch.tensor([0, 1, 2, 0])
    loss = method.training_step(Batch(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), y, views)).loss
    expected = expected_bcl_loss(sv.model, views, y, sv.class_counts, method.hp)
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_bcl_prototypes_get_gradients_through_the_centres_head():
    method, sv = make_bcl()
    views = [torch.rand(4, 3, 16, 16) for _ in range(3)]
    method.training_step(Batch(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), torch.tensor([0, 1, 2, 0]),
                               views)).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sv.model.centres_head.parameters())


# ----- through the trainer -----------------------------------------------------------------------------

def test_bcl_trains_and_resumes_bit_identically_on_shapes(tmp_path, tiny):
    spec = build_spec("bcl", "shapes", 10, 0, "paper", {**tiny, "max_per_class": 30, "epochs": 2})
    assert spec.train.lr == 0.15 and spec.train.weight_decay == 5e-4 and spec.train.schedule == "smcl-step"
    check_exact_resume(spec, tmp_path)


def test_bcl_one_epoch_on_fashion_mnist(tmp_path):
    if not have_fashion_mnist():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    spec = build_spec("bcl", "fashion-mnist", 10, 0, "quick", {"epochs": 1, "max_per_class": 50})
    final = train(spec, runtime(tmp_path))
    assert 0.0 <= final["top1"] <= 100.0
    with pytest.raises(LtbenchError):  # a class without training images has no log prior: a clear error
        train(build_spec("bcl", "fashion-mnist", 100, 0, "quick", {"epochs": 1, "max_per_class": 50}),
              runtime(tmp_path))


# ----- the classification view: AutoAugment's CIFAR-10 policy, batched ---------------------------------

def test_autoaugment_policy_is_torchvisions_cifar10_policy():
    from torchvision.transforms import AutoAugment, AutoAugmentPolicy

    from ltbench.autoaugment import CIFAR10_POLICY, op_value

    reference = AutoAugment(AutoAugmentPolicy.CIFAR10)._get_policies(AutoAugmentPolicy.CIFAR10)
    assert len(CIFAR10_POLICY) == len(reference) == 25
    for ours, theirs in zip(CIFAR10_POLICY, reference, strict=True):
        for (op, p, level), (op2, p2, level2) in zip(ours, theirs, strict=True):
            assert (op, p) == (op2, p2)
            assert level2 is None or level == level2
    # magnitude ranges of the PIL implementation (10 levels)
    assert [op_value("Posterize", m) for m in range(10)] == [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]
    assert op_value("Solarize", 0) == 256 and op_value("Solarize", 9) == 0
    assert op_value("ShearX", 9) == pytest.approx(0.3) and op_value("Rotate", 9) == pytest.approx(30.0)
    assert op_value("TranslateY", 9) == pytest.approx(150 / 331) and op_value("Color", 9) == pytest.approx(0.9)


def test_autoaugment_is_per_sample_reproducible_and_in_range():
    from ltbench.autoaugment import cifar10_policy

    x = torch.rand(1, 3, 16, 16).expand(64, 3, 16, 16).contiguous()  # one image, 64 times
    a = cifar10_policy(x, torch.Generator().manual_seed(0))
    b = cifar10_policy(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    distinct = {tuple(v.flatten()[:32].tolist()) for v in a}
    assert len(distinct) > 8  # per-sample sub-policies: copies of one image come out differently
    assert cifar10_policy(torch.rand(4, 1, 12, 12), torch.Generator().manual_seed(0)).shape == (4, 1, 12, 12)
