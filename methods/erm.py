"""ERM: plain softmax cross-entropy on instance-uniform batches (spec §4.1).

`drw` is ERM with deferred re-weighting: class-balanced weights (beta 0.9999, sum = C) on the CE
from 80 % of training (epoch 160 of 200, spec §4.2), PyTorch's weighted-mean reduction.
"""

from __future__ import annotations

from ltbench.method import Batch, Method, StepOutput
from ltbench.registry import register_method


@register_method("drw", "ERM with deferred class-balanced re-weighting (beta 0.9999) from 80% of training",
                 drw=True)
@register_method("erm", "plain cross-entropy, instance-uniform sampling")
class ERM(Method):
    description = "plain cross-entropy, instance-uniform sampling"

    def training_step(self, batch: Batch) -> StepOutput:
        ((logits, _),) = self.sv.forward(batch.views)
        return StepOutput(self.ce(logits, batch.labels))
