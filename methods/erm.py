"""ERM: plain softmax cross-entropy on instance-uniform batches (LDAM-DRW `--loss_type CE --train_rule None`).

`drw` is ERM with deferred re-weighting: class-balanced weights (beta 0.9999, sum = C) on the CE
from 80 % of training (epoch 160 of 200, LDAM-DRW `cifar_train.py`), PyTorch's weighted-mean reduction
(docs/methods.md §ERM and DRW).
"""

from __future__ import annotations

from ltbench.method import BaseHparams, Batch, Method, StepOutput
from ltbench.registry import register_method


@register_method("drw", "ERM with deferred class-balanced re-weighting (beta 0.9999) from 80% of training",
                 paper_label="DRW", drw=True)
@register_method("erm", "plain cross-entropy, instance-uniform sampling", paper_label="ERM")
class ERM(Method[BaseHparams]):
    description = "plain cross-entropy, instance-uniform sampling"

    def training_step(self, batch: Batch) -> StepOutput:
        ((logits, _),) = self.sv.forward(batch.views)
        return StepOutput(self.ce(logits, batch.labels))
