"""Mixup (DRW+Mixup in SMCL Table 1; docs/methods.md §Mixup, CutMix and CMO [I]).

SMCL ran Mixup "following the same setup from CMO": CMO's loop (schedule, batch 128, mixing
probability 0.5 per batch, window 3 < e < E-3, DRW from 160) with the mixing operation swapped.
Partner = the same batch under a random permutation (instance-uniform); lambda ~ Beta(1, 1);
x = lam * x_a + (1 - lam) * x_b (mixing before normalisation equals mixing after it: the
normalisation is affine); loss = lam * CE(y_a) + (1 - lam) * CE(y_b).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ltbench.mixing import MixHparams, MixingMethod
from ltbench.registry import register_method

if TYPE_CHECKING:
    import torch


@register_method("drw+mixup", "Mixup in CMO's loop with deferred re-weighting (SMCL Table 1)",
                 paper_label="DRW+Mixup", drw=True)
@register_method("mixup", "Mixup with a batch permutation, p=0.5 per batch, CMO's mixing window", paper_label="Mixup")
class Mixup(MixingMethod[MixHparams]):
    description = "Mixup"

    def mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        lam = self.draw_lambda()
        perm = self.partner_permutation(x.shape[0])
        return lam * x + (1.0 - lam) * x[perm], y[perm], lam
