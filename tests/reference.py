"""Literal reference formulas and one-step helpers shared by the method tests.

tests/test_method_reference.py, tests/test_scl_logs.py and tests/test_smcl_edges.py check training steps
against these. The formulas are written out literally (float64, loops where that is clearer) from their
sources, not by calling the library: cross-entropy with PyTorch's weighted-mean reduction (sum w_y l / sum w_y;
torch.nn.functional.cross_entropy docs), class-balanced weights (Cui et al., arXiv 1901.05555) and SupCon
(Khosla et al., arXiv 2004.11362; HobbitLong/SupContrast losses.py). `make` builds a method on the fake
trainer of tests/fakes.py, `batch_for` a batch of its views, `step` one training step.
"""

from __future__ import annotations

import copy
import math

import torch

from ltbench.config import build_spec
from ltbench.method import Batch
from ltbench.registry import get_method

from .fakes import FakeServices, pattern_images

TOL = dict(rel=1e-5, abs=1e-6)


# ----- the formulas, written out ---------------------------------------------------------------------

def ce_rows(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-log softmax(z)_y per row, float64."""
    z = z.detach().double()
    return torch.logsumexp(z, dim=1) - z[torch.arange(len(y)), y]


def weighted_ce(z, y, w=None) -> float:
    """PyTorch's weighted mean: sum_b w[y_b] l_b / sum_b w[y_b] (plain mean without weights)."""
    wy = torch.ones(len(y), dtype=torch.float64) if w is None else w.double()[y]
    return float((wy * ce_rows(z, y)).sum() / wy.sum())


def cb_weights(counts, beta) -> torch.Tensor:
    """w_k = (1 - beta) / (1 - beta^n_k), scaled to sum C."""
    w = [(1 - beta) / (1 - beta ** n) for n in counts]
    return torch.tensor([x * len(counts) / sum(w) for x in w], dtype=torch.float64)


def supcon(feats: torch.Tensor, labels: torch.Tensor, t: float, t_base: float) -> float:
    """L^sup_out over the rows of feats: positives = same label, not self; denominator = all but self."""
    f = feats.detach().double()
    n = len(labels)
    total = 0.0
    for a in range(n):
        others = [q for q in range(n) if q != a]
        log_den = math.log(sum(math.exp(float(f[a] @ f[q]) / t) for q in others))
        pos = [p for p in others if labels[p] == labels[a]]
        if pos:
            total += -(t / t_base) * sum(float(f[a] @ f[p]) / t - log_den for p in pos) / len(pos)
    return total / n


def logits_of(sv: FakeServices, views) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        outs = sv.model_outputs(views)
    return torch.cat([z for z, _ in outs]), torch.cat([f for _, f in outs])


# ----- helpers -----------------------------------------------------------------------------------

LABELS = torch.tensor([0, 0, 1, 2, 3, 1])


def make(name: str, image=(16, 16), epochs: int = 10, **overrides):
    spec = build_spec(name, "shapes", 10, overrides={"epochs": epochs, **overrides})
    entry = get_method(name)
    sv = FakeServices(image=image, epochs=epochs)
    method = entry.cls(entry.cls.Hparams(**spec.hparams), sv)
    return method, sv


def batch_for(method, sv, labels=LABELS, seed=5) -> Batch:
    images = pattern_images(len(labels), sv.image_size, seed=seed)
    views = [sv.augment(p, images) for p in method.views()]
    sv.augmented.clear()
    return Batch(images, labels, views)


def step(method, sv, epoch: int, batch: Batch):
    """One step at `epoch`, with copies of the random streams as they were before it."""
    method.on_epoch_start(epoch)
    rng = copy.deepcopy(sv.rng)
    gen = torch.Generator().set_state(sv.generator.get_state())
    out = method.training_step(batch)
    return out, rng, gen
