"""Shared helpers for the BCL-family tests (tests/test_bcl.py, tests/test_concutmix.py, tests/test_model_saliency.py).

`BclServices` is a trainer stand-in whose `forward` runs a real model (set `model` after building the method,
as `make_bcl` does) on the raw views, without normalisation. Like tests/fakes.py's `FakeServices` it is
structurally a `ltbench.method.TrainerServices` (no base class, so a member the protocol gains and this fake
lacks fails tests/test_bcl.py instead of inheriting a stub); it neither augments nor draws (BCL's step does
neither; subclasses that need them override `augment` and `draw`). `literal_bal_scl` is BCL's balanced
contrastive loss written out literally (the trainer-level helpers are in tests/resume.py).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from ltbench.methods.bcl import BCL

from ltbench.data import build_bundle
from ltbench.errors import LtbenchError
from ltbench.models import build_model

# ----- literal formulas (loops over anchors, written from the papers) ------------------------------

def literal_bal_scl(feats, labels, protos, temperature):
    """BCL's BalSCL by the formula: anchors = the 2B views; contrast = other views + prototypes."""
    b, v, _ = feats.shape
    vecs = [feats[i, j] for j in range(v) for i in range(b)]
    labs = [int(labels[i]) for j in range(v) for i in range(b)]
    cvecs = vecs + ([protos[c] for c in range(protos.shape[0])] if protos is not None else [])
    clabs = labs + (list(range(protos.shape[0])) if protos is not None else [])
    total = 0.0
    for a, (fa, ya) in enumerate(zip(vecs, labs, strict=True)):
        members: dict[int, list[int]] = {}
        for q, yq in enumerate(clabs):
            if q != a:
                members.setdefault(yq, []).append(q)
        denom = sum(sum(math.exp(float((fa @ cvecs[q]).detach()) / temperature) for q in qs) / len(qs)
                    for qs in members.values())
        pos = members.get(ya, [])
        total += -sum(float((fa @ cvecs[p]).detach()) / temperature - math.log(denom) for p in pos) / len(pos)
    return total / len(vecs)


# ----- a trainer stand-in that runs a real model ----------------------------------------------------

class BclServices:
    """Just enough of the trainer for BCL's step: the class counts, the random streams and `forward`."""

    def __init__(self, counts, model=None, seed=0):
        self.num_classes = len(counts)
        self.class_counts = list(counts)
        self.epochs = 4
        self.device = torch.device("cpu")
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.image_size = (16, 16)
        self.mean, self.std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
        self.model = model

    def forward(self, views):
        sizes = [v.shape[0] for v in views]
        logits, feats = self.model(torch.cat(views))
        return list(zip(logits.split(sizes), feats.split(sizes), strict=True))

    def augment(self, pipeline: str, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("BclServices does not augment; override augment in a subclass")

    def draw(self, kind: str, n: int, **params: float) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError("BclServices does not draw; override draw in a subclass")


def make_bcl(cls=BCL, counts=(6, 3, 1), **hp):
    torch.manual_seed(0)
    sv = BclServices(counts)
    method = cls(cls.Hparams(**hp), sv)
    sv.model = build_model("resnet8", sv.num_classes, 3, method.model_options())
    method.setup_model(sv.model)
    method.on_epoch_start(0)
    return method, sv




@functools.cache
def have_fashion_mnist() -> bool:
    """Whether Debian's dataset-fashion-mnist is installed (the check tests/test_fashion_mnist.py makes)."""
    try:
        build_bundle("fashion-mnist", 100)
    except LtbenchError:
        return False
    return True


class FixedRng:
    """Host draws of one mixed batch: mix (0.0 < p), lambda 0.75, box centre (8, 8)."""

    def random(self):
        return 0.0

    def beta(self, a, b):
        return 0.75

    def integers(self, n):
        return 8
