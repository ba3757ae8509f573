"""Balanced Softmax (Ren et al. 2020): cross-entropy on logits + log class prior (CMO's "BS" variant)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ltbench.losses import balanced_softmax_loss
from ltbench.method import BaseHparams, Batch, Method, StepOutput, TrainerServices
from ltbench.registry import register_method

if TYPE_CHECKING:
    import torch
else:  # torch on first use (ltbench/lazy.py)
    from ltbench.lazy import torch


@register_method("balanced-softmax", "Balanced Softmax: CE on logits + log prior (no re-weighting)",
                 paper_label="Balanced Softmax")
class BalancedSoftmax(Method[BaseHparams]):
    description = "Balanced Softmax"

    def __init__(self, hp: BaseHparams, services: TrainerServices) -> None:
        super().__init__(hp, services)
        self.counts = torch.as_tensor(services.class_counts, dtype=torch.float32, device=services.device)

    def training_step(self, batch: Batch) -> StepOutput:
        ((logits, _),) = self.sv.forward(batch.views)
        return StepOutput(balanced_softmax_loss(logits, batch.labels, self.counts, weight=self.class_weights))
