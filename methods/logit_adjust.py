"""Logit adjustment: the logit-adjusted softmax cross-entropy (Menon et al., "Long-tail learning via logit
adjustment", ICLR 2021, arXiv 2007.07314, Section 4, the logit adjusted loss).

    loss = CE(z + tau * log pi, y)

z: the model's logits; pi: the training class prior (each class's share of the long-tailed training set);
tau: the adjustment strength (1 in the paper's experiments). Adding tau * log pi in the loss only asks for
a larger margin on rare classes; the model is evaluated on its plain logits z (the trainer's evaluation),
which is what makes the trained model balanced. The same adjustment applied after training instead is
`ltbench analyze`'s post-hoc curve (ltbench/analysis/logit_adjust.py).

The adjustment itself is `ltbench.losses_balanced.logit_adjusted` (BCL uses it too); DRW (`drw=true`) applies
its class weights to this cross-entropy as to every method's. docs/architecture.md uses this file as the
worked example of adding a method: this file plus its test, and one import line in methods/__init__.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ltbench.bounds import bounded
from ltbench.errors import LtbenchError
from ltbench.losses_balanced import log_prior, logit_adjusted
from ltbench.method import BaseHparams, Batch, Method, StepOutput, TrainerServices
from ltbench.registry import register_method


@dataclass
class LogitAdjustHparams(BaseHparams):
    tau: float = field(default=1.0, metadata=bounded(ge=0))  # 0: plain cross-entropy


@register_method("logit-adjust", "logit-adjusted cross-entropy (Menon et al. 2021): CE on logits + tau * log prior")
class LogitAdjust(Method[LogitAdjustHparams]):
    Hparams = LogitAdjustHparams
    description = "logit-adjusted cross-entropy"

    def __init__(self, hp: LogitAdjustHparams, services: TrainerServices) -> None:
        super().__init__(hp, services)
        if min(services.class_counts) < 1:  # log pi is undefined for a class without training images
            raise LtbenchError(f"logit-adjust needs at least one training image per class; this subset has counts "
                               f"{list(services.class_counts)} (raise max_per_class or lower the ratio)")
        self.log_prior = log_prior(services.class_counts, services.device)

    def training_step(self, batch: Batch) -> StepOutput:
        ((logits, _),) = self.sv.forward(batch.views)
        return StepOutput(self.ce(logit_adjusted(logits, self.log_prior, self.hp.tau), batch.labels))
