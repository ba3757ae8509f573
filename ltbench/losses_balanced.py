"""BCL's balanced contrastive loss and logit adjustment, and ConCutMix's label rectification.

Sources (facts and formulas; the code here is written from them):

* Balanced Contrastive Learning, Zhu et al., CVPR 2022 ("BCL"; code FlamieZhu/Balanced-Contrastive-Learning,
  `loss/contrastive.py::BalSCL`, `loss/logitadjust.py::LogitAdjust`).
* Logit adjustment, Menon et al., ICLR 2021 (arXiv 2007.07314): logits + tau * log(prior).
* ConCutMix, Pan et al., IEEE TIP 2024 (arXiv 2407.04911; code PanHaulin/ConCutMix,
  `main.py::get_semantically_consistent_label`): area labels rectified by the similarity of a mixed
  image's projected feature to the class centres.

Everything is pure torch, float32, no host synchronisation (safe inside a training step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
else:  # torch on first use: the methods that import this module are read without it (ltbench/lazy.py)
    from ltbench.lazy import F, torch

__all__ = [
    "balanced_contrastive_loss",
    "log_prior",
    "logit_adjusted",
    "rectified_labels",
    "semantic_labels",
    "soft_cross_entropy",
    "volume_weight",
]


def log_prior(class_counts: Sequence[int] | torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """log(n_k / sum n) per class, float32 [C] (computed in float64, cast once)."""
    counts = torch.as_tensor(class_counts, dtype=torch.float64).cpu()
    if counts.ndim != 1 or not bool((counts > 0).all()):
        raise ValueError("class_counts must be a 1-D sequence of positive counts")
    return torch.log(counts / counts.sum()).to(device=device, dtype=torch.float32)


def logit_adjusted(logits: torch.Tensor, prior_log: torch.Tensor, tau: float) -> torch.Tensor:
    """Logit adjustment (Menon et al. 2021; BCL LogitAdjust): z + tau * log p_k."""
    return logits.float() + float(tau) * prior_log.view(1, -1)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """CE against soft labels [B, C]: mean_b of -sum_k t_bk log softmax(z_b)_k.

    With per-class `weight`, each sample is weighted by sum_k t_bk w_k and the mean is normalised by the
    sum of those weights, so one-hot targets give exactly PyTorch's weighted `cross_entropy` (DRW).
    """
    per = -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
    if weight is None:
        return per.mean()
    w = targets @ weight.float()
    return (w * per).sum() / w.sum()


def balanced_contrastive_loss(features: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor | None,
                              temperature: float) -> torch.Tensor:
    """BCL's balanced supervised contrastive loss (BalSCL) with class-complement prototypes.

    features: [B, V, d] L2-normalised views; labels: [B]; prototypes: [C, d] L2-normalised class
    prototypes, one per class with label = its row index (None: no prototypes, an ablation). Anchors are
    the B*V views. For anchor i the contrast set is every other view and every prototype; positives P(i)
    are the same-class ones. The denominator is class-averaged: the exp-similarities to the members of
    class j are summed and divided by the number of class-j members in the contrast batch (views +
    prototype), that count excluding the anchor itself for the anchor's own class:

        l_i = -1/|P(i)| sum_{p in P(i)} [ s_ip/T - log sum_j (1/|M_j \\ {i}|) sum_{q in M_j, q != i} exp(s_iq/T) ]

    The loss is the mean over anchors (no tau/tau_base factor, unlike SupCon).
    """
    b, v, _ = features.shape
    n = b * v
    anchors = features.float().transpose(0, 1).reshape(n, -1)  # row v*B + b (view-major, as SupCon)
    anchor_labels = labels.repeat(v)
    if prototypes is not None:
        contrast = torch.cat([anchors, prototypes.float()])
        contrast_labels = torch.cat([anchor_labels, torch.arange(prototypes.shape[0], device=labels.device)])
    else:
        contrast, contrast_labels = anchors, anchor_labels
    m = contrast.shape[0]
    same = anchor_labels.view(-1, 1) == contrast_labels.view(1, -1)  # [N, M]
    not_self = ~torch.eye(n, m, dtype=torch.bool, device=features.device)
    positive = same & not_self
    # members of each contrast column's class in the contrast batch, minus the anchor for its own class
    # (an [M, M] comparison rather than bincount, which would synchronise with the host on CUDA)
    class_count = (contrast_labels.view(-1, 1) == contrast_labels.view(1, -1)).sum(dim=0).float()
    per_column = class_count.view(1, -1) - positive.float()
    logits = anchors @ contrast.T / float(temperature)
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()  # a constant shift per row
    exp = torch.exp(logits) * not_self
    denominator = (exp / per_column).sum(dim=1, keepdim=True)
    log_prob = logits - torch.log(denominator)
    mean_pos = (positive * log_prob).sum(dim=1) / positive.sum(dim=1).clamp(min=1)
    return -mean_pos.mean()


def semantic_labels(features: torch.Tensor, centres: torch.Tensor, k: int) -> torch.Tensor:
    """ConCutMix's semantic label: 1 / Euclidean distance to each (un-normalised) class centre, the top-k
    kept and the rest zeroed, L1-normalised. features [B, d], centres [C, d] -> [B, C]."""
    sim = 1.0 / torch.cdist(features.float(), centres.float()).clamp(min=1e-12)
    k = min(int(k), sim.shape[1])
    top = sim.topk(k, dim=1)
    kept = torch.zeros_like(sim).scatter(1, top.indices, top.values)
    return kept / kept.sum(dim=1, keepdim=True)


def volume_weight(area_labels: torch.Tensor, class_counts: torch.Tensor) -> torch.Tensor:
    """ConCutMix's per-sample weight w = log(sum_k n_k * ytilde_k) / sum_k log n_k, [B]."""
    counts = class_counts.float()
    return torch.log(area_labels.float() @ counts) / torch.log(counts).sum()


def rectified_labels(area_labels: torch.Tensor, features: torch.Tensor, centres: torch.Tensor,
                     class_counts: torch.Tensor, k: int, omega: float) -> torch.Tensor:
    """ConCutMix's final label: (w * omega) * s + (1 - w * omega) * ytilde (w, s above), [B, C]."""
    s = semantic_labels(features, centres, k)
    wo = (volume_weight(area_labels, class_counts) * float(omega)).view(-1, 1)
    return wo * s + (1.0 - wo) * area_labels.float()
