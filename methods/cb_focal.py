"""Class-balanced focal loss (Cui et al. CVPR 2019; richardaecn/class-balanced-loss [C]).

Default `variant=sigmoid`, the original: per-class sigmoid focal loss over one-hot targets, alpha_t =
the class-balanced weight of the example's class (beta 0.9999, sum = C) from the first epoch, summed
and divided by the batch size; last-layer bias initialised to -log(C - 1) and excluded from weight
decay. `variant=softmax` is the LDAM-DRW code's FocalLoss (weighted CE, p = exp(-CE), (1-p)^gamma).
The paper tuned (beta, gamma) per data set; those values are not public [U], so gamma = 1 (script
default) is a hyperparameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ltbench.bounds import bounded
from ltbench.losses import class_balanced_weights, focal_loss, sigmoid_focal_cb_loss
from ltbench.method import BaseHparams, Batch, Method, StepOutput, TrainerServices
from ltbench.registry import register_method

if TYPE_CHECKING:
    import torch
else:  # torch on first use (ltbench/lazy.py)
    from ltbench.lazy import torch


@dataclass
class CBFocalHparams(BaseHparams):
    variant: Literal["sigmoid", "softmax"] = "sigmoid"
    cb_beta: float = field(default=0.9999, metadata=bounded(ge=0, lt=1))
    gamma: float = field(default=1.0, metadata=bounded(ge=0))


def _linear_head(model: torch.nn.Module) -> torch.nn.Linear:
    """The model's classifier: always the plain linear head, since this method keeps the default
    ModelOptions (ltbench/models/heads.py, make_classifier("linear", ...))."""
    head = model.classifier
    assert isinstance(head, torch.nn.Linear)
    return head


@register_method("cb-focal", "class-balanced focal loss (sigmoid, Cui et al.; beta 0.9999, gamma 1)",
                 paper_label="CB Focal")
class CBFocal(Method[CBFocalHparams]):
    Hparams = CBFocalHparams
    description = "CB Focal"

    @classmethod
    def resolve_hparams(cls, values: dict[str, Any], epochs: int) -> dict[str, Any]:
        out = super().resolve_hparams(values, epochs)
        if out["drw"] and out["drw_weighting"] == "cb" and out["drw_beta"] == out["cb_beta"]:
            # DRW would switch on the very weights that are already on: the same computation as no DRW
            out["drw"] = False
            out = super().resolve_hparams(out, epochs)
        return out

    def __init__(self, hp: CBFocalHparams, services: TrainerServices) -> None:
        super().__init__(hp, services)
        self.cb = class_balanced_weights(services.class_counts, hp.cb_beta).to(services.device)

    def setup_model(self, model: torch.nn.Module) -> None:
        if self.hp.variant == "sigmoid" and self.sv.num_classes > 1:
            # prior-probability init of the sigmoid head: every class starts at p = 1/C (Cui et al.)
            torch.nn.init.constant_(_linear_head(model).bias, -math.log(self.sv.num_classes - 1))

    def param_groups(self, model: torch.nn.Module) -> list[dict[str, Any]] | None:
        if self.hp.variant != "sigmoid":
            return None
        bias = _linear_head(model).bias
        rest = [p for p in model.parameters() if p is not bias]
        return [{"params": rest}, {"params": [bias], "weight_decay": 0.0}]

    def training_step(self, batch: Batch) -> StepOutput:
        ((logits, _),) = self.sv.forward(batch.views)
        # DRW, if asked for on top, replaces the always-on CB weights from its start epoch
        weight = self.class_weights if self.class_weights is not None else self.cb
        if self.hp.variant == "sigmoid":
            return StepOutput(sigmoid_focal_cb_loss(logits, batch.labels, weight, self.hp.gamma))
        return StepOutput(focal_loss(logits, batch.labels, self.hp.gamma, weight=weight))
