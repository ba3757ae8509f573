"""BCL and ConCutMix edge cases the recipe tests do not reach: the linear classifier's unscaled logits, the
no-prototype ablation, the head sizes and raw projection asked of the model, the log columns of plain and
mixed steps with their values, explicit topk/omega, DRW weights in the mixed step's soft CE, the pipeline of
the foreground view, rectification from epoch l_d_warm itself, and device placement of the constants and
draws (checked on the `meta` device, which, like CUDA, refuses to mix with CPU tensors)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from ltbench.methods.bcl import BCL
from ltbench.methods.concutmix import ConCutMix, _one_hot

from ltbench.method import Batch

from .bcl_helpers import BclServices, FixedRng, literal_bal_scl, make_bcl

COUNTS = (6, 3, 1)
META = torch.device("meta")


def _log_prior(counts=COUNTS):
    return [math.log(n / sum(counts)) for n in counts]


# ----- BCL pieces ------------------------------------------------------------------------------------

def test_linear_classifier_logits_are_adjusted_without_the_cosine_scale():
    method = BCL(BCL.Hparams(classifier="linear", la_tau=0.5, s=30.0), BclServices(COUNTS))
    z = torch.tensor([[1.0, -2.0, 0.5], [0.25, 0.0, 3.0]])
    expected = [float(z[i, k]) + 0.5 * _log_prior()[k] for i in range(2) for k in range(3)]
    assert method.adjusted(z).flatten().tolist() == pytest.approx(expected, rel=1e-6)


def test_the_no_prototype_ablation_contrasts_the_views_only():
    method, _ = make_bcl(prototypes=False, temperature=0.5)
    g = torch.Generator().manual_seed(1)
    f1, f2 = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    centres = torch.randn(3, 5, generator=g)
    y = torch.tensor([0, 1, 2, 0])
    feats = torch.stack([f1 / f1.norm(dim=1, keepdim=True), f2 / f2.norm(dim=1, keepdim=True)], dim=1).double()
    without = literal_bal_scl(feats, y, None, 0.5)
    with_protos = literal_bal_scl(feats, y, (centres / centres.norm(dim=1, keepdim=True)).double(), 0.5)
    assert without != pytest.approx(with_protos, rel=1e-3)
    assert float(method.bcl(f1, f2, y, centres)) == pytest.approx(without, rel=1e-5)


def test_model_options_carry_the_head_sizes_and_ask_for_the_raw_projection():
    method = BCL(BCL.Hparams(head_hidden=32, feat_dim=24), BclServices(COUNTS))
    options = method.model_options()
    assert (options.head_hidden, options.feat_dim) == (32, 24)
    assert options.normalize_features is False  # ConCutMix's rectification measures raw distances


def _views(seed=3, n=4):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, 3, 16, 16, generator=g) for _ in range(3)]


def _literal_soft_ce(adj, target, weight=None):
    """-sum_k t_bk log softmax(adj_b)_k, averaged over b (weighted by sum_k t_bk w_k when weight is given)."""
    per = [-sum(float(target[b, k]) * float(F.log_softmax(adj[b], dim=0)[k]) for k in range(adj.shape[1]))
           for b in range(adj.shape[0])]
    if weight is None:
        return sum(per) / len(per)
    wb = [sum(float(target[b, k]) * weight[k] for k in range(adj.shape[1])) for b in range(adj.shape[0])]
    return sum(w * p for w, p in zip(wb, per, strict=True)) / sum(wb)


def test_plain_step_logs_exactly_ce_and_bcl_with_the_loss_parts():
    method, sv = make_bcl(la_tau=0.7, w_ce=1.5, w_bcl=0.4)
    views = _views()
    y = torch.tensor([0, 1, 2, 0])
    out = method.training_step(Batch(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), y, views))
    assert set(out.logs) == {"ce", "bcl"}
    with torch.no_grad():
        logits, raw = sv.model(torch.cat(views))
        centres = sv.model.class_centres()
    adj = 30.0 * logits[:4].double() + 0.7 * torch.tensor(_log_prior(), dtype=torch.float64)
    ce = _literal_soft_ce(adj, F.one_hot(y, 3).double())
    f1, f2 = F.normalize(raw[4:8], dim=1), F.normalize(raw[8:], dim=1)
    sc = literal_bal_scl(torch.stack([f1, f2], dim=1).double(), y, F.normalize(centres, dim=1).double(), 0.1)
    assert float(out.logs["ce"]) == pytest.approx(ce, rel=1e-4)
    assert float(out.logs["bcl"]) == pytest.approx(sc, rel=1e-4)
    assert float(out.loss.detach()) == pytest.approx(1.5 * ce + 0.4 * sc, rel=1e-4)


# ----- ConCutMix -------------------------------------------------------------------------------------

def test_explicit_topk_and_omega_are_kept():
    method = ConCutMix(ConCutMix.Hparams(topk=2, omega=0.1, l_d_warm=1), BclServices(COUNTS))
    assert (method.topk, method.omega) == (2, 0.1)  # the defaults for 3 classes are 3 and 2/255


class _MixServices(BclServices):
    """Foregrounds: labels FG_LABELS and a fixed classification view; records the pipelines asked for."""

    def __init__(self, counts, model):
        super().__init__(counts, model=model)
        self.rng = FixedRng()
        self.fg_view = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(7))
        self.fg_labels = torch.tensor([2, 2, 1, 0])
        self.pipelines: list[str] = []

    def draw(self, kind, n, **params):
        return torch.zeros(n, 3, 16, 16, dtype=torch.uint8), self.fg_labels

    def augment(self, pipeline, images):
        self.pipelines.append(pipeline)
        return self.fg_view


def _mixed(epoch, **hp):
    method, sv = make_bcl(ConCutMix, **hp)
    ms = _MixServices(sv.class_counts, sv.model)
    method.sv = ms
    method.on_epoch_start(epoch)
    return method, ms


def _mixed_step(method):
    y = torch.tensor([0, 1, 2, 0])
    views = _views()
    out = method.training_step(Batch(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), y, views))
    return out, y, views


def _mixed_pieces(ms, y, views):
    """Logits, raw projection of the mixed view, centres, and the area label, recomputed from the model."""
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(0))  # the fake trainer's generator
    mixed = views[0].clone()
    mixed[:, :, 4:12, 4:12] = ms.fg_view[perm][:, :, 4:12, 4:12]  # side 8 = 16 * sqrt(1 - 0.75) around (8, 8)
    lam = 1 - 64 / 256
    with torch.no_grad():
        logits, raw = ms.model(torch.cat([mixed, views[1], views[2]]))
        centres = ms.model.class_centres()
    y_fg = ms.fg_labels[perm]
    area = lam * F.one_hot(y, 3).double() + (1 - lam) * F.one_hot(y_fg, 3).double()
    return logits, raw, centres, area


def _adjusted(method, z):
    return method.hp.s * z.double() + method.tau * torch.tensor(_log_prior(), dtype=torch.float64)


def test_mixed_step_logs_ce_bcl_and_mixed_with_the_loss_parts():
    method, ms = _mixed(0, l_d_warm=2, w_ce=1.5, w_bcl=0.4)
    out, y, views = _mixed_step(method)
    assert set(out.logs) == {"ce", "bcl", "mixed"}
    logits, raw, centres, area = _mixed_pieces(ms, y, views)
    ce = _literal_soft_ce(_adjusted(method, logits[:4]), area)
    f1, f2 = F.normalize(raw[4:8], dim=1), F.normalize(raw[8:], dim=1)
    sc = literal_bal_scl(torch.stack([f1, f2], dim=1).double(), y, F.normalize(centres, dim=1).double(), 0.1)
    assert float(out.logs["ce"]) == pytest.approx(ce, rel=1e-4)
    assert float(out.logs["bcl"]) == pytest.approx(sc, rel=1e-4)
    assert float(out.logs["mixed"]) == 1.0
    assert float(out.loss.detach()) == pytest.approx(1.5 * ce + 0.4 * sc, rel=1e-4)


def test_mixed_step_weights_its_soft_ce_with_the_drw_weights():
    method, ms = _mixed(0, l_d_warm=2, drw=True, drw_start_epoch=0, drw_beta=0.9)
    out, y, views = _mixed_step(method)
    logits, _, _, area = _mixed_pieces(ms, y, views)
    raw_w = [(1 - 0.9) / (1 - 0.9 ** n) for n in COUNTS]  # class-balanced weights, rescaled to sum to C
    weights = [w / sum(raw_w) * 3 for w in raw_w]
    adj = _adjusted(method, logits[:4])
    weighted, plain = _literal_soft_ce(adj, area, weights), _literal_soft_ce(adj, area)
    assert weighted != pytest.approx(plain, rel=1e-3)
    assert float(out.logs["ce"]) == pytest.approx(weighted, rel=1e-4)


def test_the_foreground_view_is_made_with_the_classification_pipeline():
    method, ms = _mixed(0, l_d_warm=2, view_cls="randaug")
    _mixed_step(method)
    assert ms.pipelines == ["randaug"]


def test_labels_are_rectified_from_epoch_l_d_warm_itself():
    method, ms = _mixed(3, l_d_warm=3, omega=5.0, topk=2)
    out, y, views = _mixed_step(method)
    logits, raw, centres, area = _mixed_pieces(ms, y, views)
    g = raw[:4]
    log_counts = sum(math.log(n) for n in COUNTS)
    rows = []
    for i in range(4):
        sims = [1 / float((g[i] - centres[c]).norm()) for c in range(3)]
        kept = sorted(range(3), key=lambda c: sims[c], reverse=True)[:2]
        s = [sims[c] / sum(sims[k] for k in kept) if c in kept else 0.0 for c in range(3)]
        wo = math.log(sum(COUNTS[c] * float(area[i, c]) for c in range(3))) / log_counts * 5.0
        rows.append([wo * s[c] + (1 - wo) * float(area[i, c]) for c in range(3)])
    adj = _adjusted(method, logits[:4])
    rectified = _literal_soft_ce(adj, torch.tensor(rows, dtype=torch.float64))
    assert rectified != pytest.approx(_literal_soft_ce(adj, area), rel=1e-3)
    assert float(out.logs["ce"]) == pytest.approx(rectified, rel=1e-4)


# ----- device placement (meta stands in for CUDA) ------------------------------------------------------

def _meta_services():
    sv = BclServices(COUNTS)
    sv.device = META
    return sv


def test_bcl_log_prior_lives_on_the_trainer_device():
    method = BCL(BCL.Hparams(), _meta_services())
    assert method.log_prior.device == META
    assert method.adjusted(torch.zeros(2, 3, device=META)).device == META


def test_concutmix_counts_live_on_the_trainer_device():
    method = ConCutMix(ConCutMix.Hparams(l_d_warm=1), _meta_services())
    assert method.counts.device == META and method.counts.dtype == torch.float32


def test_one_hot_is_built_on_the_labels_device():
    assert _one_hot(torch.tensor([2, 0]), 3).tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    out = _one_hot(torch.zeros(2, dtype=torch.int64, device=META), 3)
    assert out.device == META and out.shape == (2, 3)


def test_the_foreground_permutation_is_drawn_on_the_labels_device(monkeypatch):
    real = torch.randperm
    devices = []

    def spy(n, *, generator=None, device=None):
        devices.append(device)
        return real(n, generator=generator, device=device)

    method, _ = _mixed(0, l_d_warm=2)
    monkeypatch.setattr(torch, "randperm", spy)
    _mixed_step(method)
    assert devices == [torch.device("cpu")]  # the labels' device, where the trainer's generator lives
