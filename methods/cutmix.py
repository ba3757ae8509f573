"""CutMix (DRW+CutMix in SMCL Table 1; docs/methods.md §Mixup, CutMix and CMO [I]).

CMO's loop with the patch taken from the same batch under a random permutation (instance-uniform)
instead of the minority-weighted batch: one lambda ~ Beta(1, 1) and one uniformly placed box per
batch, lambda recomputed from the clipped box, loss = lam * CE(y_base) + (1 - lam) * CE(y_partner).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ltbench.mixing import MixHparams, MixingMethod
from ltbench.registry import register_method

if TYPE_CHECKING:
    import torch


@register_method("drw+cutmix", "CutMix in CMO's loop with deferred re-weighting (SMCL Table 1)",
                 paper_label="DRW+CutMix", drw=True)
@register_method("cutmix", "CutMix with a batch permutation, p=0.5 per batch, CMO's mixing window",
                 paper_label="CutMix")
class CutMix(MixingMethod[MixHparams]):
    description = "CutMix"

    def mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        top, left, bottom, right, lam = self.random_box(self.draw_lambda())
        perm = self.partner_permutation(x.shape[0])
        mixed = x.clone()
        mixed[:, :, top:bottom, left:right] = x[perm][:, :, top:bottom, left:right]
        return mixed, y[perm], lam
