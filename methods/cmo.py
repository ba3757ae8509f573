"""CMO: context-rich minority oversampling (Park et al. CVPR 2022, arXiv 2112.00412; naver-ai/cmo `cifar_train.py` [C]).

Background images come from the usual instance-uniform batch; foreground images from a second,
minority-weighted batch that the trainer's sampler service draws (per-sample weight n_y^-alpha,
alpha = 1: class-uniform, as CMO's WeightedRandomSampler) and augments with the same pipeline.
Per batch with probability 0.5 inside the window 3 < e < E-3: lambda ~ Beta(1, 1), one uniformly
placed box for the whole batch, the foreground's pixels pasted into the background inside it,
lambda recomputed from the clipped box; loss = lam * CE(y_bg) + (1 - lam) * CE(y_fg).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ltbench.bounds import bounded
from ltbench.mixing import MixHparams, MixingMethod
from ltbench.registry import register_method

if TYPE_CHECKING:
    import torch


@dataclass
class CMOHparams(MixHparams):
    # per-sample sampler weight n_y^-alpha (CMO --weighted_alpha)
    weighted_alpha: float = field(default=1.0, metadata=bounded(ge=0))


@register_method("drw+cmo", "CMO with deferred re-weighting (CMO README recipe; SMCL Table 1)",
                 paper_label="DRW+CMO", drw=True)
@register_method("cmo", "CMO: paste minority-weighted foregrounds into instance-uniform backgrounds", paper_label="CMO")
class CMO(MixingMethod[CMOHparams]):
    Hparams = CMOHparams
    description = "CMO"

    def mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        fg_images, y_fg = self.sv.draw("cmo", x.shape[0], alpha=self.hp.weighted_alpha)
        fg = self.sv.augment(self.views()[0], fg_images)
        top, left, bottom, right, lam = self.random_box(self.draw_lambda())
        mixed = x.clone()
        mixed[:, :, top:bottom, left:right] = fg[:, :, top:bottom, left:right]
        return mixed, y_fg, lam
