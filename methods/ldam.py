"""LDAM (-DRW): label-distribution-aware margins on a cosine classifier (Cao et al. 2019; kaidic/LDAM-DRW [C]).

NormedLinear logits; subtract m_y = K / n_y^(1/4) (max 0.5) from the true-class logit, scale all
logits by s = 30, cross-entropy; `ldam-drw` adds the class-balanced DRW weights from 80 % of training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ltbench.bounds import bounded
from ltbench.losses import ldam_loss, ldam_margins
from ltbench.method import BaseHparams, Batch, Method, StepOutput, TrainerServices
from ltbench.models import ModelOptions
from ltbench.registry import register_method


@dataclass
class LDAMHparams(BaseHparams):
    max_m: float = field(default=0.5, metadata=bounded(ge=0))
    s: float = field(default=30.0, metadata=bounded(gt=0))


@register_method("ldam-drw", "LDAM margins + cosine classifier, deferred re-weighting (LDAM-DRW)",
                 paper_label="LDAM-DRW", drw=True)
@register_method("ldam", "LDAM margins + cosine classifier, no re-weighting")
class LDAM(Method[LDAMHparams]):
    Hparams = LDAMHparams
    description = "LDAM"

    def __init__(self, hp: LDAMHparams, services: TrainerServices) -> None:
        super().__init__(hp, services)
        self.margins = ldam_margins(services.class_counts, hp.max_m).to(services.device)

    def model_options(self) -> ModelOptions:
        return ModelOptions(classifier="normed")

    def training_step(self, batch: Batch) -> StepOutput:
        ((logits, _),) = self.sv.forward(batch.views)
        loss = ldam_loss(logits, batch.labels, None, s=self.hp.s, weight=self.class_weights, margins=self.margins)
        return StepOutput(loss)
