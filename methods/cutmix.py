"""CutMix (DRW+CutMix in SMCL Table 1; spec §4.6 [I]).

CMO's loop with the patch taken from the same batch under a random permutation (instance-uniform)
instead of the minority-weighted batch: one lambda ~ Beta(1, 1) and one uniformly placed box per
batch, lambda recomputed from the clipped box, loss = lam * CE(y_base) + (1 - lam) * CE(y_partner).
"""

from __future__ import annotations

from ltbench.method import Batch, StepOutput
from ltbench.mixing import MixingMethod
from ltbench.registry import register_method


@register_method("drw+cutmix", "CutMix in CMO's loop with deferred re-weighting (SMCL Table 1)", drw=True)
@register_method("cutmix", "CutMix with a batch permutation, p=0.5 per batch, CMO's mixing window")
class CutMix(MixingMethod):
    description = "CutMix"

    def training_step(self, batch: Batch) -> StepOutput:
        (x,) = batch.views
        y = batch.labels
        if not self.mix_now():
            ((logits, _),) = self.sv.forward([x])
            return StepOutput(self.ce(logits, y))
        top, left, bottom, right, lam = self.random_box(self.draw_lambda())
        perm = self.partner_permutation(x.shape[0])
        mixed = x.clone()
        mixed[:, :, top:bottom, left:right] = x[perm][:, :, top:bottom, left:right]
        ((logits, _),) = self.sv.forward([mixed])
        return StepOutput(self.mixed_ce(logits, y, y[perm], lam))
