"""ConCutMix: CutMix with semantically rectified labels, on BCL (Pan et al., IEEE TIP 2024, arXiv 2407.04911;
code PanHaulin/ConCutMix = CCM).

Per batch (CCM `dataset/cifar.py`, `main.py`):

* background A: the trainer's instance-uniform batch, three views (classification, two SimAugment);
  foreground B: a class-uniform draw (a uniform class, then a uniform image of it: CCM's
  `Foreground_sampler balance`), of which only the classification view is made, since no loss term
  reads B's SimAugment views;
* with probability `mix_prob` (0.5): lambda ~ Beta(mix_alpha, mix_alpha), a uniform CutMix box (lambda
  recomputed from the clipped box), B's classification view, batch-permuted, pasted into A's; area label
  ytilde = lambda onehot(y_A) + (1 - lambda) onehot(y_B);
* from epoch `l_d_warm` (100 of 200 on CIFAR, 70 of 100 on ImageNet-LT; scaled with --epochs) the area
  label is rectified (`ltbench.losses_balanced.rectified_labels`): the mixed image's un-normalised
  projection is compared with the un-normalised class centres (1 / Euclidean distance, top-k kept,
  L1-normalised: s), w = log(sum_k n_k ytilde_k) / sum_k log n_k, final label (w omega) s + (1 - w omega)
  ytilde. The label is a target: no gradient flows through it;
* loss = w_ce * soft-label CE on logit-adjusted logits (tau `la_tau`) + w_bcl * BalSCL on A's two
  SimAugment views with class prototypes (as BCL). Unmixed batches use the hard label.

Per-setting constants left as None resolve from the data when the method is built (CCM's scripts):
`topk` 30 with >= 100 classes, else 3 (CIFAR-100 / CIFAR-10); `omega` 20/255 with >= 100 classes, else
2/255 (ImageNet-LT 200/255, a family default); `la_tau` by (classes, ratio = n_max / n_min): CIFAR-100 r100
0.9, r50 0.75, r10 1.0; 10 classes r100 0.85; 1.0 (BCL's value) elsewhere (ImageNet-LT 0.99, a family
default). `data_seed=10` reproduces CCM's logged subset; the default subset stays LDAM's (0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ltbench.augment import cutmix_box
from ltbench.bounds import bounded
from ltbench.losses_balanced import rectified_labels, soft_cross_entropy
from ltbench.method import Batch, EpochFraction, StepBranch, StepOutput, TrainerServices, epoch_fraction
from ltbench.mixing import mixing_branches
from ltbench.registry import register_method

from .bcl import BCL, BCL_IMAGENET, BCL_TRAIN, BCL_TRAIN_IMAGENET, BCLHparams

if TYPE_CHECKING:
    import torch
else:  # torch on first use (ltbench/lazy.py)
    from ltbench.lazy import torch

# CCM run_files: logit-adjustment tau per (number of classes >= 100, imbalance ratio)
LA_TAU = {(True, 100): 0.9, (True, 50): 0.75, (True, 10): 1.0, (False, 100): 0.85}


@dataclass
class ConCutMixHparams(BCLHparams):
    # None: per setting (module doc); the base BCL field is a plain float, but ConCutMix.__init__ resolves
    # None to a float before anything reads it, so the wider type never reaches BCL's code
    la_tau: float | None = field(default=None, metadata=bounded(ge=0))  # type: ignore[assignment]
    mix_prob: float = field(default=0.5, metadata=bounded(ge=0, le=1))  # per batch
    mix_alpha: float = field(default=1.0, metadata=bounded(gt=0))  # lambda ~ Beta(alpha, alpha)
    l_d_warm: int | None = field(default=None, metadata={**epoch_fraction(0.5), **bounded(ge=0)})
    topk: int | None = field(default=None, metadata=bounded(ge=1))  # None: 30 (>= 100 classes) or 3
    omega: float | None = field(default=None, metadata=bounded(ge=0))  # None: 20/255 (>= 100 classes) or 2/255


@register_method("concutmix", "ConCutMix: BCL + CutMix with labels rectified by contrastive similarity",
                 paper_label="ConCutMix")
class ConCutMix(BCL[ConCutMixHparams]):
    Hparams = ConCutMixHparams
    description = "ConCutMix"
    # l_d_warm: CCM's ImageNet-LT script starts rectifying at 70 of 100 epochs (CIFAR: 100 of 200, the field's 0.5)
    family_defaults = {"imagenet": {**BCL_IMAGENET, "la_tau": 0.99, "omega": 200 / 255,
                                    "l_d_warm": EpochFraction(0.7)}}
    train_defaults = {"cifar": BCL_TRAIN, "imagenet": BCL_TRAIN_IMAGENET}

    @classmethod
    def step_branches(cls, hparams: dict[str, Any], epochs: int) -> list[StepBranch]:
        """Mixed and plain (BCL) batches; ConCutMix mixes in every epoch (no window)."""
        return mixing_branches(hparams, epochs)

    def __init__(self, hp: ConCutMixHparams, services: TrainerServices) -> None:
        super().__init__(hp, services)
        many = services.num_classes >= 100
        counts = services.class_counts
        ratio = round(max(counts) / min(counts))
        self.topk = hp.topk if hp.topk is not None else (30 if many else 3)
        self.omega = hp.omega if hp.omega is not None else (20 / 255 if many else 2 / 255)
        self.tau = hp.la_tau if hp.la_tau is not None else LA_TAU.get((many, ratio), 1.0)
        self.counts = torch.as_tensor(counts, dtype=torch.float32, device=services.device)

    def training_step(self, batch: Batch) -> StepOutput:
        hp = self.hp
        mix = self.sv.rng.random() < hp.mix_prob  # drawn every batch, so the stream is epoch-independent
        if not mix:
            out = super().training_step(batch)
            out.logs["mixed"] = torch.zeros_like(out.loss.detach())
            return out
        xc, xs1, xs2 = batch.views
        y = batch.labels
        fg_images, y_fg = self.sv.draw("uniform", y.shape[0])
        fg = self.sv.augment(hp.view_cls, fg_images)
        perm = torch.randperm(y.shape[0], generator=self.sv.generator, device=y.device)
        fg, y_fg = fg[perm], y_fg[perm]
        lam = float(self.sv.rng.beta(hp.mix_alpha, hp.mix_alpha))
        height, width = xc.shape[-2:]
        row, col = int(self.sv.rng.integers(height)), int(self.sv.rng.integers(width))
        top, left, bottom, right, lam = cutmix_box(height, width, lam, row, col)
        mixed = xc.clone()
        mixed[:, :, top:bottom, left:right] = fg[:, :, top:bottom, left:right]
        (z, g), (_, f1), (_, f2) = self.sv.forward([mixed, xs1, xs2])
        assert g is not None and f1 is not None and f2 is not None  # model_options asks for the projection
        centres = self.class_centres()
        num_classes = self.sv.num_classes
        area = lam * _one_hot(y, num_classes) + (1.0 - lam) * _one_hot(y_fg, num_classes)
        target = area
        assert hp.l_d_warm is not None  # resolved from its epoch_fraction before the method is built
        if self.epoch >= hp.l_d_warm:
            target = rectified_labels(area, g.detach(), centres.detach(), self.counts, self.topk, self.omega)
        ce = soft_cross_entropy(self.adjusted(z), target, self.class_weights)
        sc = self.bcl(f1, f2, y, centres)
        return StepOutput(hp.w_ce * ce + hp.w_bcl * sc,
                          {"ce": ce.detach(), "bcl": sc.detach(), "mixed": torch.ones_like(ce.detach())})


def _one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """float one-hot by scatter (F.one_hot may check the label range against the host)."""
    return torch.zeros(labels.shape[0], num_classes, device=labels.device).scatter_(1, labels.view(-1, 1), 1.0)
