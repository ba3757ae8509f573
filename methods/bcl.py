"""BCL: Balanced Contrastive Learning (Zhu et al., CVPR 2022; code FlamieZhu/Balanced-Contrastive-Learning).

One stage, one forward of three views per image: a classification view (crop + flip + AutoAugment's
CIFAR-10 policy on CIFAR, as ConCutMix's `run_files/cifar100_imb100.sh`; RandAugment on ImageNet-LT) and
two SimAugment views. Loss (BCL `main.py`):

    L = w_ce * CE(s * z + tau * log prior, y) + w_bcl * BalSCL({f1, f2}, y; prototypes)

* z: the classifier's logits (cosine logits scaled by s = 30 with the default NormedLinear classifier,
  as BCL's NormedLinear does inside the layer); the logit adjustment is Menon et al. (arXiv 2007.07314).
* BalSCL (`ltbench.losses_balanced.balanced_contrastive_loss`): class-averaged denominators, and one
  "class-complement" prototype per class, the classifier's class weight vectors mapped through a second
  MLP (`head_fc`, `LTModel.class_centres`) and L2-normalised, so every class is in every batch.

Recipes (from ConCutMix's CIFAR scripts, which BCL's ImageNet-only code base was ported into; BCL
`main.py` defaults for ImageNet-LT): CIFAR batch 256, lr 0.15, 5-epoch warm-up, x0.1 at 160 and 180 of
200, wd 5e-4, tau_con 0.1, (w_ce, w_bcl) = (2, 0.6), head 64 -> 512 -> BN -> ReLU -> 128; ImageNet-LT
batch 256, lr 0.1 cosine without warm-up, wd 5e-4, tau_con 0.07, (1, 0.35), head 2048 -> 2048 -> 1024.
BCL trains 90 epochs on ImageNet-LT; here the preset's epochs apply (100 under `paper`), like SMCL's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar, cast

from ltbench.bounds import bounded
from ltbench.errors import LtbenchError
from ltbench.losses_balanced import balanced_contrastive_loss, log_prior, logit_adjusted
from ltbench.method import BaseHparams, Batch, Method, StepOutput, TrainerServices
from ltbench.models import ModelOptions
from ltbench.pipelines import PipelineName
from ltbench.registry import register_method

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F

    from ltbench.models.model import LTModel
else:  # torch on first use (ltbench/lazy.py)
    from ltbench.lazy import F, torch


@dataclass
class BCLHparams(BaseHparams):
    w_ce: float = field(default=2.0, metadata=bounded(ge=0))  # alpha (CCM CIFAR scripts)
    w_bcl: float = field(default=0.6, metadata=bounded(ge=0))  # beta
    temperature: float = field(default=0.1, metadata=bounded(gt=0))  # BalSCL temperature
    la_tau: float = field(default=1.0, metadata=bounded(ge=0))  # logit-adjustment strength (BCL LogitAdjust)
    classifier: Literal["normed", "linear"] = "normed"  # BCL's NormedLinear (cosine x s)
    s: float = field(default=30.0, metadata=bounded(gt=0))  # cosine-logit scale (normed classifier only)
    prototypes: bool = True  # class-complement prototypes in BalSCL (false: an ablation)
    head_hidden: int = field(default=512, metadata=bounded(ge=1))
    feat_dim: int = field(default=128, metadata=bounded(ge=1))
    view_cls: PipelineName = "autoaug"  # the classification view
    view_con: PipelineName = "sim"  # the two contrastive views


BH = TypeVar("BH", bound=BCLHparams)  # BCL[ConCutMixHparams]: ConCutMix extends BCL

BCL_TRAIN = {"batch_size": 256, "lr": 0.15, "weight_decay": 5e-4, "schedule": "smcl-step"}
BCL_TRAIN_IMAGENET = {"batch_size": 256, "lr": 0.1, "weight_decay": 5e-4, "schedule": "cosine"}
BCL_IMAGENET = {"w_ce": 1.0, "w_bcl": 0.35, "temperature": 0.07, "head_hidden": 2048, "feat_dim": 1024,
                "view_cls": "randaug"}


@register_method("bcl", "Balanced Contrastive Learning: logit-adjusted CE + balanced SupCon with class prototypes",
                 paper_label="BCL")
class BCL(Method[BH]):
    Hparams = BCLHparams
    description = "BCL"
    family_defaults = {"imagenet": BCL_IMAGENET}
    train_defaults = {"cifar": BCL_TRAIN, "imagenet": BCL_TRAIN_IMAGENET}

    def __init__(self, hp: BH, services: TrainerServices) -> None:
        super().__init__(hp, services)
        if min(services.class_counts) < 1:  # log prior and ConCutMix's log n_k are undefined for them
            raise LtbenchError(f"{type(self).__name__} needs at least one training image per class; this subset "
                               f"has counts {list(services.class_counts)} (raise max_per_class or lower the ratio)")
        self.log_prior = log_prior(services.class_counts, services.device)
        self.tau = hp.la_tau  # ConCutMix resolves a per-setting value
        self.model: LTModel | None = None

    def model_options(self) -> ModelOptions:
        # the projection comes back un-normalised: ConCutMix needs the raw one; BCL normalises it here
        return ModelOptions(classifier=self.hp.classifier, projection=True, head_hidden=self.hp.head_hidden,
                            feat_dim=self.hp.feat_dim, centres_head=True, normalize_features=False)

    def setup_model(self, model: torch.nn.Module) -> None:
        # the class centres are computed from its classifier weights every step; the trainer always builds
        # an LTModel (ltbench/models/model.py), which the base signature only knows as a Module
        self.model = cast("LTModel", model)

    def views(self) -> tuple[str, ...]:
        return (self.hp.view_cls, self.hp.view_con, self.hp.view_con)

    # ----- pieces -----------------------------------------------------------------------------
    def class_centres(self) -> torch.Tensor:
        """Un-normalised class centres [C, feat_dim] (classifier weights through head_fc)."""
        if self.model is None:
            raise RuntimeError("setup_model was not called: the method has no model to take class centres from")
        return self.model.class_centres()

    def adjusted(self, logits: torch.Tensor) -> torch.Tensor:
        """Logit-adjusted logits: s * cos (normed classifier) or z (linear), + tau * log prior."""
        scale = self.hp.s if self.hp.classifier == "normed" else 1.0
        return logit_adjusted(scale * logits, self.log_prior, self.tau)

    def bcl(self, f1: torch.Tensor, f2: torch.Tensor, y: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        feats = torch.stack([F.normalize(f1, dim=1), F.normalize(f2, dim=1)], dim=1)
        protos = F.normalize(centres.float(), dim=1) if self.hp.prototypes else None
        return balanced_contrastive_loss(feats, y, protos, self.hp.temperature)

    # ----- step -------------------------------------------------------------------------------
    def training_step(self, batch: Batch) -> StepOutput:
        y = batch.labels
        (z, _), (_, f1), (_, f2) = self.sv.forward(batch.views)
        assert f1 is not None and f2 is not None  # model_options asks for the projection head
        ce = self.ce(self.adjusted(z), y)
        sc = self.bcl(f1, f2, y, self.class_centres())
        return StepOutput(self.hp.w_ce * ce + self.hp.w_bcl * sc, {"ce": ce.detach(), "bcl": sc.detach()})
