"""Saliency derived from the model being trained (the idea of Chen et al. AAAI 2023, used as an SMCL operator).

Chen et al., "Saliency-guided contrastive learning on scene images" (AAAI 2023, arXiv 2302.11461) take
saliency from the model's own output during training, to pick crops and to weight the contrastive
terms of the crops by the saliency they keep. They do it self-supervised; SMCL is supervised, so here the
map is a class activation map (CAM; Zhou et al., CVPR 2016, arXiv 1512.04150) of each image's *label*:

    CAM_y(i, j) = sum_c w_{y,c} A_c(i, j)

with A the last convolutional stage's output (before global average pooling) and w_y the classifier's
row for class y (the unit-normalised row for a cosine classifier, whose logit is then proportional to the
pooled CAM). It is upsampled bilinearly to the image size and min-max normalised per image to [0, 1].

Why CAM and not the feature-norm map ||A(i, j)||: SMCL masks the region that carries the class so the
rest (background) is contrasted under the target's label; CAM localises the evidence for the labelled
class, whereas the feature norm is class-agnostic and also peaks on strong background texture, the very
features SMCL wants left visible. The labels are at hand in every SMCL step.

Cost: one extra forward of x1 without gradients, in eval mode (batch norm uses and keeps its running
statistics: training-mode statistics would be updated twice per step otherwise). `ltbench bench` times it
as `saliency:model-cam` and counts it in the step prediction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ltbench.lazy import no_grad

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
    from torch import nn
else:  # torch on first use: the methods that import this module are read without it (ltbench/lazy.py)
    from ltbench.lazy import F, torch

__all__ = ["box_mass_share", "class_activation_maps", "last_stage"]


def last_stage(model: nn.Module) -> nn.Module:
    """The backbone's last spatial stage: ResNetCifar `layers`, torchvision ResNet `layer4`."""
    backbone = model.backbone
    for name in ("layers", "layer4"):
        if hasattr(backbone, name):
            return getattr(backbone, name)
    raise ValueError(f"no last convolutional stage known for backbone {type(backbone).__name__}")


@no_grad
def class_activation_maps(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-image CAM of `labels` on normalised inputs x [N, C, H, W] -> float32 [N, H, W] in [0, 1]."""
    captured: list[torch.Tensor] = []
    hook = last_stage(model).register_forward_hook(lambda _m, _i, out: captured.append(out))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        hook.remove()
        model.train(was_training)
    feats = captured[0].float()  # [N, K, h, w]
    classifier = model.classifier
    from ltbench.models.heads import NormedLinear  # (torch-backed: imported on use, as torch)

    if isinstance(classifier, NormedLinear):
        rows = F.normalize(classifier.weight, dim=0).T  # [C, K]
    else:
        weight = classifier.weight if isinstance(classifier, torch.nn.Module) else None
        assert isinstance(weight, torch.Tensor)  # a Linear head's [C, K] weight
        rows = weight
    cam = torch.einsum("nkhw,nk->nhw", feats, rows[labels].float())
    cam = F.interpolate(cam.unsqueeze(1), size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    lo = cam.amin(dim=(1, 2), keepdim=True)
    hi = cam.amax(dim=(1, 2), keepdim=True)
    return (cam - lo) / (hi - lo).clamp_min(torch.finfo(torch.float32).tiny)


def box_mass_share(maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share of each map's mass inside its box: sum(map * mask) / sum(map), [N] (0 for an all-zero map).

    maps [N, H, W] non-negative; mask bool [N, 1, H, W] or [N, H, W]."""
    inside = (maps * mask.reshape(maps.shape).to(maps.dtype)).sum(dim=(1, 2))
    return inside / maps.sum(dim=(1, 2)).clamp_min(torch.finfo(torch.float32).tiny)
