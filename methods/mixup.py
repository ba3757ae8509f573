"""Mixup (DRW+Mixup in SMCL Table 1; spec §4.5 [I]).

SMCL ran Mixup "following the same setup from CMO": CMO's loop (schedule, batch 128, mixing
probability 0.5 per batch, window 3 < e < E-3, DRW from 160) with the mixing operation swapped.
Partner = the same batch under a random permutation (instance-uniform); lambda ~ Beta(1, 1);
x = lam * x_a + (1 - lam) * x_b (mixing before normalisation equals mixing after it: the
normalisation is affine); loss = lam * CE(y_a) + (1 - lam) * CE(y_b).
"""

from __future__ import annotations

from ltbench.method import Batch, StepOutput
from ltbench.mixing import MixingMethod
from ltbench.registry import register_method


@register_method("drw+mixup", "Mixup in CMO's loop with deferred re-weighting (SMCL Table 1)", drw=True)
@register_method("mixup", "Mixup with a batch permutation, p=0.5 per batch, CMO's mixing window")
class Mixup(MixingMethod):
    description = "Mixup"

    def training_step(self, batch: Batch) -> StepOutput:
        (x,) = batch.views
        y = batch.labels
        if not self.mix_now():
            ((logits, _),) = self.sv.forward([x])
            return StepOutput(self.ce(logits, y))
        lam = self.draw_lambda()
        perm = self.partner_permutation(x.shape[0])
        ((logits, _),) = self.sv.forward([lam * x + (1.0 - lam) * x[perm]])
        return StepOutput(self.mixed_ce(logits, y, y[perm], lam))
