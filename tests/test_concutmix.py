"""ConCutMix: the label rectification (top-k, w, omega, final label) against literal computations; the
method's mixed step against a recomputation from its model; per-setting constants; training and resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from ltbench.methods.concutmix import ConCutMix

from ltbench.config import build_spec
from ltbench.losses_balanced import rectified_labels, semantic_labels, soft_cross_entropy, volume_weight
from ltbench.method import Batch
from ltbench.train import train
from tests.bcl_helpers import (
    BclServices,
    FixedRng,
    have_fashion_mnist,
    literal_bal_scl,
    make_bcl,
)
from tests.resume import check_exact_resume, runtime

# f = (0, 0); centres at distances 1, 2, 4 -> similarities 1, 0.5, 0.25
FEATS = torch.tensor([[0.0, 0.0]])
CENTRES = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, -4.0]])
COUNTS = torch.tensor([100.0, 10.0, 1.0])  # sum_k log n_k = log 1000
AREA = torch.tensor([[0.5, 0.0, 0.5]])  # sum_k n_k ytilde_k = 50.5


def test_semantic_label_keeps_the_top_k_inverse_distances_l1_normalised():
    assert semantic_labels(FEATS, CENTRES, 2).flatten().tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert semantic_labels(FEATS, CENTRES, 3).flatten().tolist() == pytest.approx([1 / 1.75, 0.5 / 1.75, 0.25 / 1.75])
    assert semantic_labels(FEATS, CENTRES, 1).flatten().tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_volume_weight_is_log_of_the_mixed_count_over_the_sum_of_log_counts():
    assert float(volume_weight(AREA, COUNTS)) == pytest.approx(math.log(50.5) / math.log(1000.0), rel=1e-6)
    one_hot_tail = torch.tensor([[0.0, 0.0, 1.0]])
    assert float(volume_weight(one_hot_tail, COUNTS)) == pytest.approx(0.0, abs=1e-7)  # log 1 = 0


@pytest.mark.parametrize(("k", "omega"), [(2, 0.5), (3, 0.5), (2, 2.0)])
def test_final_label_is_w_omega_s_plus_the_rest_of_the_area_label(k, omega):
    sims = [1.0, 0.5, 0.25][:k] + [0.0] * (3 - k)
    s = [v / sum(sims) for v in sims]
    wo = math.log(50.5) / math.log(1000.0) * omega
    expected = [wo * s[i] + (1 - wo) * AREA[0, i].item() for i in range(3)]
    got = rectified_labels(AREA, FEATS, CENTRES, COUNTS, k, omega)
    assert got.flatten().tolist() == pytest.approx(expected, rel=1e-6)
    assert float(got.sum()) == pytest.approx(1.0, rel=1e-6)


def test_soft_cross_entropy_by_hand_and_with_class_weights():
    z = torch.tensor([[0.0, math.log(3.0)]])  # softmax (0.25, 0.75)
    t = torch.tensor([[0.5, 0.5]])
    assert float(soft_cross_entropy(z, t)) == pytest.approx(-(0.5 * math.log(0.25) + 0.5 * math.log(0.75)))
    # one-hot targets with class weights = PyTorch's weighted-mean cross-entropy (DRW)
    z2 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]])
    y2 = torch.tensor([0, 1, 1])
    w = torch.tensor([0.2, 3.0])
    assert float(soft_cross_entropy(z2, F.one_hot(y2, 2).float(), w)) == pytest.approx(
        float(F.cross_entropy(z2, y2, weight=w)), rel=1e-6)


# ----- the mixed step through the method -------------------------------------------------------------

class MixServices(BclServices):
    def __init__(self, counts, fg_view, fg_labels):
        super().__init__(counts)
        self.rng = FixedRng()
        self.fg_view, self.fg_labels = fg_view, fg_labels

    def draw(self, kind, n, **params):
        assert kind == "uniform" and n == self.fg_labels.shape[0]  # class-uniform foregrounds
        return torch.zeros(n, 3, 16, 16, dtype=torch.uint8), self.fg_labels

    def augment(self, pipeline, images):
        return self.fg_view


def _mixed_setup(epoch, **hp):
    method, sv = make_bcl(ConCutMix, **hp)
    g = torch.Generator().manual_seed(3)
    fg_view = torch.rand(4, 3, 16, 16, generator=g)
    ms = MixServices(sv.class_counts, fg_view, torch.tensor([2, 2, 1, 0]))
    ms.model = sv.model
    method.sv = ms
    method.on_epoch_start(epoch)
    views = [torch.rand(4, 3, 16, 16, generator=g) for _ in range(3)]
    return method, ms, views


def expected_mixed_loss(method, ms, views, y, perm, rectify):
    hp = method.hp
    fg, y_fg = ms.fg_view[perm], ms.fg_labels[perm]
    mixed = views[0].clone()
    mixed[:, :, 4:12, 4:12] = fg[:, :, 4:12, 4:12]  # side int(16 * sqrt(1 - 0.75)) = 8 around (8, 8)
    lam = 1 - 64 / 256
    model = ms.model
    logits, raw = model(torch.cat([mixed, views[1], views[2]]))
    b = y.shape[0]
    z, g = logits[:b], raw[:b]
    centres = model.centres_head(model.classifier.weight.T)
    area = lam * F.one_hot(y, 3).double() + (1 - lam) * F.one_hot(y_fg, 3).double()
    target = area
    if rectify:
        counts = [float(c) for c in ms.class_counts]
        rows = []
        for i in range(b):
            d = [(g[i] - centres[c]).norm().item() for c in range(3)]
            sims = sorted(((1 / di, c) for c, di in enumerate(d)), reverse=True)[:method.topk]
            s = [0.0] * 3
            for v, c in sims:
                s[c] = v / sum(v2 for v2, _ in sims)
            w = math.log(sum(counts[c] * float(area[i, c]) for c in range(3))) / sum(map(math.log, counts))
            wo = w * method.omega
            rows.append([wo * s[c] + (1 - wo) * float(area[i, c]) for c in range(3)])
        target = torch.tensor(rows, dtype=torch.float64)
    prior = torch.tensor(counts if rectify else [float(c) for c in ms.class_counts], dtype=torch.float64)
    adj = hp.s * z.double() + method.tau * torch.log(prior / prior.sum())
    ce = (-(target * F.log_softmax(adj, dim=1)).sum(dim=1).mean()).item()
    f1, f2 = (F.normalize(raw[b:2 * b], dim=1), F.normalize(raw[2 * b:], dim=1))
    sc = literal_bal_scl(torch.stack([f1, f2], dim=1).detach().double(), y,
                         F.normalize(centres, dim=1).detach().double(), hp.temperature)
    return hp.w_ce * ce + hp.w_bcl * sc


@pytest.mark.parametrize(("epoch", "hp"), [(0, {}), (3, {}), (3, {"topk": 1, "omega": 3.0, "la_tau": 0.3})])
def test_mixed_step_equals_the_literal_recipe(epoch, hp):
    method, ms, views = _mixed_setup(epoch, l_d_warm=2, **hp)
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(0))  # the method's generator, same seed
    y = torch.tensor([0, 1, 2, 0])
    out = method.training_step(Batch(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), y, views))
    assert float(out.logs["mixed"]) == 1.0
    expected = expected_mixed_loss(method, ms, views, y, perm, rectify=epoch >= 2)
    assert out.loss.item() == pytest.approx(expected, rel=1e-4)


def test_rectification_changes_the_loss_after_l_d_warm():
    y = torch.tensor([0, 1, 2, 0])
    losses = []
    for warm in (2, 4):  # epoch 3: rectified when l_d_warm = 2, area labels when 4
        method, ms, views = _mixed_setup(3, l_d_warm=warm, omega=5.0)
        losses.append(method.training_step(Batch(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), y,
                                                  views)).loss.item())
    assert losses[0] != pytest.approx(losses[1], rel=1e-4)


def test_per_setting_constants():
    def built(counts, **hp):
        return ConCutMix(ConCutMix.Hparams(**hp), BclServices(counts))

    ten_r100 = [500, 299, 179, 107, 64, 38, 23, 13, 8, 5]
    m = built(ten_r100)
    assert (m.topk, m.omega, m.tau) == (3, pytest.approx(2 / 255), 0.85)
    hundred_r50 = [100] + [10] * 98 + [2]
    m = built(hundred_r50)
    assert (m.topk, m.omega, m.tau) == (30, pytest.approx(20 / 255), 0.75)
    assert built([60, 30, 6], la_tau=0.4, topk=2, omega=0.1).tau == 0.4
    assert built([60, 30, 6]).tau == 1.0  # no CCM value for this setting: BCL's tau


def test_epoch_defaults_scale_with_epochs():
    assert build_spec("concutmix", "cifar100", 100, 0, "paper", {}).hparams["l_d_warm"] == 100
    assert build_spec("concutmix", "cifar100", 100, 0, "paper", {"epochs": 20}).hparams["l_d_warm"] == 10
    spec = build_spec("concutmix", "imagenet-lt", 256, 0, "paper", {})
    assert spec.hparams["l_d_warm"] == 70 and spec.hparams["la_tau"] == 0.99
    assert spec.hparams["omega"] == pytest.approx(200 / 255)


# ----- through the trainer -----------------------------------------------------------------------------

def test_concutmix_trains_and_resumes_bit_identically_on_shapes(tmp_path, tiny):
    spec = build_spec("concutmix", "shapes", 10, 0, "paper", {**tiny, "max_per_class": 30, "epochs": 2,
                                                              "l_d_warm": 1, "mix_prob": 0.7})
    check_exact_resume(spec, tmp_path)


def test_concutmix_one_epoch_on_fashion_mnist(tmp_path):
    if not have_fashion_mnist():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    spec = build_spec("concutmix", "fashion-mnist", 10, 0, "quick", {"epochs": 1, "max_per_class": 50,
                                                                     "l_d_warm": 0})
    final = train(spec, runtime(tmp_path))
    assert 0.0 <= final["top1"] <= 100.0


def test_extended_table1_keeps_smcls_rows_and_adds_bcl_and_concutmix(tmp_path):
    from pathlib import Path

    from ltbench.grid import load_grid
    from ltbench.report import build_table, collect

    root = Path(__file__).resolve().parents[1]
    frame = collect(tmp_path, warn=lambda _msg: None)
    smcl = build_table(frame, load_grid(root / "experiments/table1.yaml"), warn=lambda _msg: None)
    ext = build_table(frame, load_grid(root / "experiments/table1-extended.yaml"), warn=lambda _msg: None)
    smcl_rows = [r.label for r in smcl.rows]
    ext_rows = [r.label for r in ext.rows]
    assert ext_rows[:len(smcl_rows)] == smcl_rows and ext_rows[len(smcl_rows):] == ["BCL", "ConCutMix"]
    assert "BCL" not in smcl_rows and "ConCutMix" not in smcl_rows
    assert ext.cells[("ConCutMix", "cifar10_r100")].paper == 86.07
    assert ext.cells[("BCL", "cifar100_r100")].paper == 51.9
    assert "best test epoch" in ext.caption
