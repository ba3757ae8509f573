"""SCL and SMCL: joint cross-entropy + supervised contrastive learning, with saliency masking (SMCL).

SMCL (arXiv 2406.02223) has no official code; this follows the reconstruction in docs/methods.md §SMCL
and makes every choice the paper leaves open (that section's rows A-S, cited below by letter; [C]/[I]/[U]
say how sure a value is, docs/methods.md) a hyperparameter with the default explained there.

Per iteration (SMCL Section 3.3 as read in docs/methods.md §SMCL): two views x1 (crop + flip + CutOut)
and x2 (SimAugment) of each source image. A batch is *masked* with probability `mask_prob` from
`mask_start_epoch` on; otherwise it is a plain SCL step: L = w_ce * CE(x1, x2) + w_sc * SupCon({f1, f2}).
In a masked batch:
  1. a target image per source from the `target_sampler` (default class-level p_k ∝ 1/E_k, eq. 3),
     augmented into xt1, xt2 with the same two pipelines;
  2. lam~ ~ Beta(mask_beta, mask_beta) once per batch; a box of side sqrt(1 - lam~) centred on each
     x1's saliency peak (`mask_locator`, `saliency`, `saliency_input`, `box_per`), clipped;
     lam_b = box share of the image ("the proportion of the masked region");
  3. xm = x1 with the box erased to the data-set mean colour (`mask_fill=erase`, reading R1) or
     filled from xt1 (`paste-target`, R2);
  4. the five views go through the model in one forward (shared BN statistics);
  5. L_MCE = (1 - lam) CE(Z, Ys) + lam CE(Z, Yt), L_MSC = (1 - lam) SupCon(F, Ys) + lam SupCon(F, Yt)
     with Ys = (y, y, yt, yt, y), Yt = (y, y, yt, yt, yt) and lam = mean of lam_b (batch scalar, E);
     L = w_ce L_MCE + w_sc L_MSC. DRW weights act on the CE terms only (R).

`scl` / `scl+drw` are this recipe with masking off (mask_prob = 0), the SCL rows of SMCL's tables
(docs/methods.md §SupCon and SCL: one-stage joint CE + SupCon, SMCL's own ablated baseline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ltbench.augment import box_masks
from ltbench.bounds import bounded
from ltbench.device_constants import device_constant
from ltbench.losses import supcon_loss
from ltbench.method import (
    BaseHparams,
    Batch,
    Method,
    StepBranch,
    StepOutput,
    epoch_fraction,
    reset_to_default,
    two_branches,
)
from ltbench.model_saliency import box_mass_share, class_activation_maps
from ltbench.models import ModelOptions
from ltbench.pipelines import PipelineName
from ltbench.registry import PaperAblation, register_method
from ltbench.saliency import locate, peak

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
else:  # torch on first use (ltbench/lazy.py)
    from ltbench.lazy import F, torch


@dataclass
class SMCLHparams(BaseHparams):
    w_ce: float = field(default=1.0, metadata=bounded(ge=0))  # K [U]
    w_sc: float = field(default=0.3, metadata=bounded(ge=0))  # K [U]: mu = 0.3, from a third-party summary
    temperature: float = field(default=0.1, metadata=bounded(gt=0))  # L [U]
    # None: = temperature (no hidden tau/tau_base scale)
    base_temperature: float | None = field(default=None, metadata=bounded(gt=0))
    head_hidden: int = field(default=512, metadata=bounded(ge=1))  # M [U]
    feat_dim: int = field(default=128, metadata=bounded(ge=1))
    view1: PipelineName = "cutout"  # O: crop + flip + CutOut(1x16)
    view2: PipelineName = "sim"  # O: SimAugment (SupCon CIFAR, no blur)
    mask_prob: float = field(default=0.2, metadata=bounded(ge=0, le=1))  # F: per batch
    mask_start_epoch: int | None = field(default=None, metadata={**epoch_fraction(0.8), **bounded(ge=0)})  # 160 of 200
    mask_fill: Literal["erase", "paste-target"] = "erase"  # A
    # Table 3; "model-saliency": the peak of the current model's class activation map (ltbench.model_saliency)
    mask_locator: Literal["saliency", "random", "center", "model-saliency"] = "saliency"
    # "saliency": each view's SupCon terms weighted by the model-saliency mass it keeps (arXiv 2302.11461, adapted)
    supcon_weighting: Literal["none", "saliency"] = "none"
    saliency: Literal["fine-grained", "spectral-residual"] = "fine-grained"  # SaliencyMix's operator
    saliency_input: Literal["uint8", "normalized"] = "uint8"  # C
    box_per: Literal["sample", "batch"] = "sample"  # D ("batch": SaliencyMix's one box from one image)
    # equal-area control: "shift" moves a box that crosses the border inside at its drawn size (augment.box_masks)
    box_clip: Literal["clip", "shift"] = "clip"
    # "exclude": the saliency peak of each view without its crop-padding zero strip (saliency.locate `pad`)
    saliency_pad: Literal["include", "exclude"] = "include"
    mask_beta: float = field(default=1.0, metadata=bounded(gt=0))
    lambda_per_sample: bool = False  # E: per-sample lam_b in the CE only; SupCon keeps the batch mean lam
    target_sampler: Literal["class-level", "effective-number", "cmo", "uniform", "instance"] = "class-level"  # I
    target_beta: float = field(default=0.9999, metadata=bounded(ge=0, lt=1))  # J
    target_in_ce: bool = True  # H


# settings that only act inside a masked batch
MASKING_FIELDS = ("mask_start_epoch", "mask_fill", "mask_locator", "saliency", "saliency_input", "box_per",
                  "mask_beta", "lambda_per_sample", "target_sampler", "target_beta", "target_in_ce",
                  "box_clip", "saliency_pad", "supcon_weighting")


def _drop_masking_noops(out: dict[str, Any], epochs: int) -> None:
    """Reset the SMCL settings that cannot change the computation in this combination to their defaults.

    Each rule names a combination in which the setting is never read (or every reading is identical),
    so two values would give two run ids for one computation.
    """
    def reset(*names: str) -> None:
        reset_to_default(SMCLHparams, out, epochs, *names)

    if out["mask_start_epoch"] >= epochs:  # masking never starts: as mask_prob = 0
        out["mask_prob"] = 0.0
    if out["mask_prob"] == 0:  # SCL: no batch is ever masked
        reset(*MASKING_FIELDS)
        return
    if out["mask_locator"] != "saliency":  # random / center boxes never compute a saliency map
        reset("saliency", "saliency_input", "saliency_pad")
    elif out["saliency"] == "spectral-residual":  # the input representation is read by OpenCV only
        reset("saliency_input")
    if out["mask_locator"] == "center":  # every box is the same: per batch = per sample; and it never
        reset("box_per", "box_clip")  # crosses the border (half side <= H // 2 around H // 2), so shift = clip
    if out["mask_locator"] == "center" or out["box_per"] == "batch":  # one box: every lam_b is equal
        reset("lambda_per_sample")
    if out["target_sampler"] == "cmo":  # per-sample weight n_y^-1 is class-uniform (naver-ai/cmo get_weighted_sampler)
        out["target_sampler"] = "uniform"
    if out["target_sampler"] not in ("class-level", "effective-number"):  # only these two have a beta
        reset("target_beta")


SMCL_TRAIN = {"batch_size": 256, "schedule": "smcl-step"}
# ImageNet-LT (SMCL Section 4.2 [C]): batch 256, SGD wd 5e-4, cosine without warm-up (row Q), 100 epochs
SMCL_TRAIN_IMAGENET = {"batch_size": 256, "weight_decay": 5e-4, "schedule": "cosine"}


def _contrastive_rows(label: str) -> PaperAblation:
    """SMCL Table 4: the contrastive term off (w_sc = 0) or at the CIFAR weight 0.3 (row K), per method row."""
    return PaperAblation("w_sc", ((0.0, f"cross-entropy only ({label})"), (0.3, f"with contrastive ({label})")))


# SMCL Table 3 (where the mask goes) is DRW+SMCL's; Table 4 has an SMCL and a DRW+SMCL row per variant
MASKING_ROWS = PaperAblation("mask_locator", (("random", "random"), ("center", "center"), ("saliency", "saliency")))


@register_method("drw+smcl", "SMCL with deferred re-weighting on the CE terms (SMCL Table 1)",
                 paper_label="DRW+SMCL", drw=True,
                 paper_ablations={"masking": MASKING_ROWS, "contrastive": _contrastive_rows("DRW+SMCL")})
@register_method("smcl", "Saliency Masked Contrastive Learning (reconstructed, docs/methods.md)", paper_label="SMCL",
                 paper_ablations={"contrastive": _contrastive_rows("SMCL")})
@register_method("scl+drw", "SCL with deferred re-weighting (SCL-DRW row)",
                 paper_label="SCL-DRW", drw=True, mask_prob=0.0)
@register_method("scl", "joint CE + supervised contrastive loss, two views (SMCL without masking)", paper_label="SCL",
                 mask_prob=0.0)
class SMCL(Method[SMCLHparams]):
    Hparams = SMCLHparams
    description = "SMCL"
    family_defaults = {"imagenet": {"w_sc": 0.35, "temperature": 0.07, "mask_prob": 0.4,
                                    "head_hidden": 2048, "view1": "randaug", "view2": "sim"}}  # row P
    train_defaults = {"cifar": SMCL_TRAIN, "imagenet": SMCL_TRAIN_IMAGENET}

    @classmethod
    def resolve_hparams(cls, values: dict[str, Any], epochs: int) -> dict[str, Any]:
        out = super().resolve_hparams(values, epochs)
        if out.get("base_temperature") is None:
            out["base_temperature"] = out["temperature"]
        _drop_masking_noops(out, epochs)
        return out

    @classmethod
    def step_branches(cls, hparams: dict[str, Any], epochs: int) -> list[StepBranch]:
        """Masked batches (probability mask_prob from mask_start_epoch on) and plain SCL steps."""
        prob = hparams.get("mask_prob", 0.0)
        if not prob > 0:  # SCL: every step is a plain one
            return super().step_branches(hparams, epochs)
        start = hparams.get("mask_start_epoch", 0) or 0
        return two_branches("masked", prob, {"mask_prob": 1.0, "mask_start_epoch": 0}, {"mask_prob": 0.0},
                            start, epochs, epochs)

    def model_options(self) -> ModelOptions:
        return ModelOptions(projection=True, head_hidden=self.hp.head_hidden, feat_dim=self.hp.feat_dim)

    def setup_model(self, model: torch.nn.Module) -> None:
        self.model = model  # model-saliency maps come from an extra no-grad forward of x1

    def views(self) -> tuple[str, ...]:
        return (self.hp.view1, self.hp.view2)

    def supcon(self, feats: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """SupCon mean over anchors, or the `weights`-weighted mean (one weight per anchor row)."""
        base = self.hp.base_temperature
        assert base is not None  # resolve_hparams sets None to the temperature
        if weights is None:
            return supcon_loss(feats, labels, self.hp.temperature, base)
        per = supcon_loss(feats, labels, self.hp.temperature, base, reduction="none")
        return (weights * per).sum() / weights.sum()

    def model_maps(self, x1: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """CAM of each x1's label from the current model (ltbench.model_saliency), [B, H, W] in [0, 1]."""
        mean = torch.tensor(self.sv.mean, device=x1.device, dtype=x1.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.sv.std, device=x1.device, dtype=x1.dtype).view(1, -1, 1, 1)
        self.nograd_images = x1.shape[0]
        return class_activation_maps(self.model, (x1 - mean) / std, y)

    def masking_now(self) -> bool:
        r = self.sv.rng.random()  # drawn every batch so the stream does not depend on the epoch
        start = self.hp.mask_start_epoch
        assert start is not None  # resolved from its epoch_fraction before the method is built
        return self.epoch >= start and r < self.hp.mask_prob

    def training_step(self, batch: Batch) -> StepOutput:
        if not self.masking_now():
            return self.plain_step(batch)
        return self.masked_step(batch)

    def plain_step(self, batch: Batch) -> StepOutput:
        x1, x2 = batch.views
        y = batch.labels
        (z1, f1), (z2, f2) = self.sv.forward([x1, x2])
        assert f1 is not None and f2 is not None  # model_options asks for the projection head
        ce = self.ce(torch.cat([z1, z2]), torch.cat([y, y]))
        sc = self.supcon(torch.stack([f1, f2], dim=1), y)
        zero = ce.new_zeros(())
        return StepOutput(self.hp.w_ce * ce + self.hp.w_sc * sc,
                          {"ce": ce.detach(), "supcon": sc.detach(), "masked": zero, "mask_share": zero})

    # ----- masking ----------------------------------------------------------------------------
    def box_centres(self, x1: torch.Tensor, maps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        hp = self.hp
        images = x1[:1] if hp.box_per == "batch" else x1
        # SaliencyMix's normalised input uses its own CIFAR statistics; other channel counts use ours
        stats = {} if x1.shape[1] == 3 else {"mean": self.sv.mean, "std": self.sv.std}
        if hp.mask_locator == "model-saliency":
            assert maps is not None  # masked_step computes the maps for this locator
            rows, cols = peak(maps[:1] if hp.box_per == "batch" else maps)
        else:
            rows, cols = locate(images, hp.mask_locator, hp.saliency, hp.saliency_input, self.sv.generator,
                                **stats, pad=hp.saliency_pad)
        if hp.box_per == "batch":  # one box from one image, applied to every image (SaliencyMix code)
            rows, cols = rows.expand(x1.shape[0]), cols.expand(x1.shape[0])
        return rows, cols

    def mask_batch(self, x1: torch.Tensor, xt1: torch.Tensor,
                   maps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The masked view xm, the boolean box masks [B,1,H,W] and the per-sample masked shares lam_b."""
        height, width = x1.shape[-2:]
        lam_tilde = float(self.sv.rng.beta(self.hp.mask_beta, self.hp.mask_beta))
        rows, cols = self.box_centres(x1, maps)
        mask, lam_b = box_masks(height, width, lam_tilde, rows, cols, self.hp.box_clip)
        if self.hp.mask_fill == "erase":  # R1: zero in normalised space = the data-set mean colour
            fill = device_constant(tuple(self.sv.mean), x1.device, x1.dtype).view(1, -1, 1, 1)
        else:  # R2: the target image's pixels at the same place
            fill = xt1
        return torch.where(mask, fill, x1), mask, lam_b

    def masked_step(self, batch: Batch) -> StepOutput:
        hp = self.hp
        x1, x2 = batch.views
        y = batch.labels
        target_images, yt = self.sv.draw(hp.target_sampler, y.shape[0], **self._sampler_params())
        xt1 = self.sv.augment(hp.view1, target_images)
        xt2 = self.sv.augment(hp.view2, target_images)
        need_maps = hp.mask_locator == "model-saliency" or hp.supcon_weighting == "saliency"
        maps = self.model_maps(x1, y) if need_maps else None
        xm, mask, lam_b = self.mask_batch(x1, xt1, maps)
        outs = self.sv.forward([x1, x2, xt1, xt2, xm])
        logits = torch.cat([z for z, _ in outs])
        feats = torch.cat([_projection(f) for _, f in outs]).unsqueeze(1)
        y_src = torch.cat([y, y, yt, yt, y])
        y_tgt = torch.cat([y, y, yt, yt, yt])
        lam = lam_b.mean()
        ce = self.mixed_ce(logits, y_src, y_tgt, lam, lam_b)
        weights = None
        if hp.supcon_weighting == "saliency":  # x1, x2, xt1, xt2 keep all their mass; xm 1 - its share in the box
            assert maps is not None  # need_maps holds for this weighting
            keep = 1.0 - box_mass_share(maps, mask)
            weights = torch.cat([torch.ones(4 * y.shape[0], device=keep.device, dtype=keep.dtype), keep])
        sc = (1 - lam) * self.supcon(feats, y_src, weights) + lam * self.supcon(feats, y_tgt, weights)
        return StepOutput(hp.w_ce * ce + hp.w_sc * sc,
                          {"ce": ce.detach(), "supcon": sc.detach(), "masked": torch.ones_like(lam),
                           "mask_share": lam.detach()})

    def _sampler_params(self) -> dict[str, float]:
        kind = self.hp.target_sampler
        if kind in ("class-level", "effective-number"):
            return {"beta": self.hp.target_beta}
        return {}

    def mixed_ce(self, logits: torch.Tensor, y_src: torch.Tensor, y_tgt: torch.Tensor, lam: torch.Tensor,
                 lam_b: torch.Tensor) -> torch.Tensor:
        """L_MCE (eq. 5) over the five views, or over x1, x2, xm when target_in_ce is off (H)."""
        b = lam_b.shape[0]
        if not self.hp.target_in_ce:
            dev = logits.device  # built on the device: no host->device copy inside the step
            keep = torch.cat([torch.arange(2 * b, device=dev), torch.arange(4 * b, 5 * b, device=dev)])
            logits, y_src, y_tgt = logits[keep], y_src[keep], y_tgt[keep]
        if not self.hp.lambda_per_sample:
            return (1 - lam) * self.ce(logits, y_src) + lam * self.ce(logits, y_tgt)
        # per-sample lambda (row E): row i gets its own lam_i (lam_b on the masked rows, the batch mean on
        # the others, as in the batch form) and each of the two CE terms keeps PyTorch's weighted-mean
        # denominator, so equal lam_b give exactly the batch-scalar form, with or without DRW:
        #   sum_i (1 - lam_i) w[Ys_i] CE_i(Ys) / sum_j w[Ys_j]  +  sum_i lam_i w[Yt_i] CE_i(Yt) / sum_j w[Yt_j]
        per = lam.expand(logits.shape[0]).clone()
        per[-b:] = lam_b
        w = self.class_weights
        ws = w[y_src] if w is not None else torch.ones_like(per)
        wt = w[y_tgt] if w is not None else torch.ones_like(per)
        ls = F.cross_entropy(logits.float(), y_src, reduction="none")
        lt = F.cross_entropy(logits.float(), y_tgt, reduction="none")
        return ((1 - per) * ws * ls).sum() / ws.sum() + (per * wt * lt).sum() / wt.sum()


def _projection(feats: torch.Tensor | None) -> torch.Tensor:
    """One view's projection; never None, since SMCL's model_options asks for the projection head."""
    assert feats is not None
    return feats
