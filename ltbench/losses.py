"""Loss functions and class re-weighting rules (sources per function; summary in docs/methods.md).

Every function here is pure torch and device-agnostic: tensors stay on the device of the logits or
features they are given. Loss math runs in float32 (inputs are cast with ``.float()``), so the functions
are safe to call from inside an autocast region.

Per-class quantities that depend only on the class counts (CB weights, LDAM margins) are computed in
float64 on the CPU and then cast to float32, because they are computed once per run and some devices
have no float64 support.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, overload

import numpy as np

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
else:  # torch on first use: the methods that import this module are read without it (ltbench/lazy.py)
    from ltbench.lazy import F, torch

__all__ = [
    "class_balanced_weights",
    "inverse_frequency_weights",
    "ldam_margins",
    "ldam_loss",
    "focal_loss",
    "sigmoid_focal_cb_loss",
    "balanced_softmax_loss",
    "supcon_loss",
]

ClassCounts: TypeAlias = "Sequence[int] | np.ndarray | torch.Tensor"


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _counts_float64(
    class_counts: ClassCounts, *, name: str = "class_counts"
) -> tuple[torch.Tensor, torch.device]:
    """Return (counts as a CPU float64 1-D tensor, device to return results on); all counts must be > 0."""
    if isinstance(class_counts, torch.Tensor):
        device = class_counts.device
        counts = class_counts.detach().to(device="cpu", dtype=torch.float64)
    else:
        device = torch.device("cpu")
        counts = torch.as_tensor(np.asarray(class_counts, dtype=np.float64), dtype=torch.float64)
    if counts.ndim != 1 or counts.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of per-class counts, got shape {tuple(counts.shape)}"
        )
    if not bool(torch.all(counts > 0)):
        raise ValueError(f"{name} must all be positive (a class with no training image has no weight/margin)")
    return counts, device


def _check_logits_targets(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape [B, C], got {tuple(logits.shape)}")
    if targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(
            f"targets must have shape [B] matching logits [B, C]; got targets {tuple(targets.shape)}, "
            f"logits {tuple(logits.shape)}"
        )


@overload
def _per_class(vec: torch.Tensor, num_classes: int, like: torch.Tensor, name: str) -> torch.Tensor: ...
@overload
def _per_class(vec: None, num_classes: int, like: torch.Tensor, name: str) -> None: ...
@overload
def _per_class(vec: torch.Tensor | None, num_classes: int, like: torch.Tensor, name: str) -> torch.Tensor | None: ...
def _per_class(
    vec: torch.Tensor | None, num_classes: int, like: torch.Tensor, name: str
) -> torch.Tensor | None:
    """Move an optional per-class vector to ``like``'s device as float32 and check its length."""
    if vec is None:
        return None
    vec = torch.as_tensor(vec).to(device=like.device, dtype=torch.float32)
    if vec.shape != (num_classes,):
        raise ValueError(f"{name} must have shape [{num_classes}], got {tuple(vec.shape)}")
    return vec


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Disable autocast for ``device`` so matmuls inside a loss run in float32."""
    is_available = getattr(torch.amp, "is_autocast_available", None)
    if is_available is not None and is_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


# --------------------------------------------------------------------------------------------------
# per-class weights and margins
# --------------------------------------------------------------------------------------------------


def class_balanced_weights(class_counts: ClassCounts, beta: float) -> torch.Tensor:
    """Effective-number ("class-balanced") weights (Cui et al. CVPR 2019, arXiv 1901.05555; LDAM DRW rule).

    w_k = (1 - beta) / (1 - beta**n_k) = 1 / E_k, rescaled so that sum_k w_k = C.
    ``beta = 0`` gives all ones. Computed in float64, returned as float32 on the device of a tensor input
    (CPU otherwise). Computed for CIFAR-100-LT r=100, beta=0.9999: head 0.0449, tail 4.378 (docs/methods.md).
    """
    beta = float(beta)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    counts, device = _counts_float64(class_counts)
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    w = w / w.sum() * counts.numel()
    return w.to(device=device, dtype=torch.float32)


def inverse_frequency_weights(class_counts: ClassCounts) -> torch.Tensor:
    """Inverse-frequency weights w_k ∝ 1/n_k rescaled to sum C (docs/methods.md §ERM and DRW)."""
    counts, device = _counts_float64(class_counts)
    w = 1.0 / counts
    w = w / w.sum() * counts.numel()
    return w.to(device=device, dtype=torch.float32)


def ldam_margins(class_counts: ClassCounts, max_m: float = 0.5) -> torch.Tensor:
    """LDAM per-class margins m_k = K / n_k**(1/4), K chosen so that max_k m_k = max_m (LDAM, Section 3.1).

    Computed for r=100: head 0.158, tail 0.500 (docs/methods.md §LDAM).
    """
    counts, device = _counts_float64(class_counts)
    m = counts.pow(-0.25)
    m = m * (float(max_m) / m.max())
    return m.to(device=device, dtype=torch.float32)


# --------------------------------------------------------------------------------------------------
# classification losses
# --------------------------------------------------------------------------------------------------


def ldam_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_counts: ClassCounts | None,
    max_m: float = 0.5,
    s: float = 30.0,
    weight: torch.Tensor | None = None,
    *,
    margins: torch.Tensor | None = None,
) -> torch.Tensor:
    """LDAM loss (LDAM-DRW ``losses.py`` ``LDAMLoss``): CE(s * (z - m_y * onehot(y)), y), optional class ``weight``.

    Only the true-class logit loses its margin; all logits are then scaled by ``s``. The reduction is
    PyTorch's weighted mean, sum_b w_{y_b} l_b / sum_b w_{y_b} (docs/methods.md §ERM and DRW).
    Pass ``margins`` (from :func:`ldam_margins`) to skip recomputing them every step; ``class_counts`` and
    ``max_m`` are then ignored.
    """
    _check_logits_targets(logits, targets)
    z = logits.float()
    num_classes = z.shape[1]
    if margins is None:
        if class_counts is None:
            raise ValueError("ldam_loss needs class_counts or precomputed margins")
        margins = ldam_margins(class_counts, max_m)
    margins = _per_class(margins, num_classes, z, "margins")
    weight = _per_class(weight, num_classes, z, "weight")
    m_y = margins[targets]
    z = z - F.one_hot(targets, num_classes).to(z.dtype) * m_y.unsqueeze(1)
    return F.cross_entropy(float(s) * z, targets, weight=weight)


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Softmax focal loss, LDAM-DRW code convention (kaidic/LDAM-DRW ``losses.py`` ``FocalLoss``).

    ce_b = w_{y_b} * CE(z_b, y_b) (per sample, no reduction); p_b = exp(-ce_b);
    loss = mean_b (1 - p_b)**gamma * ce_b. With a weight, p_b is *not* the true-class probability, and
    the mean is a plain batch mean (not PyTorch's weighted mean). ``gamma = 0`` gives mean(ce_b).
    """
    _check_logits_targets(logits, targets)
    z = logits.float()
    weight = _per_class(weight, z.shape[1], z, "weight")
    ce = F.cross_entropy(z, targets, weight=weight, reduction="none")
    p = torch.exp(-ce)
    return ((1.0 - p) ** float(gamma) * ce).mean()


def sigmoid_focal_cb_loss(
    logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None, gamma: float
) -> torch.Tensor:
    """Class-balanced sigmoid focal loss of Cui et al. (richardaecn/class-balanced-loss ``src/cifar_main.py``).

    With one-hot labels y in {0, 1} and logits z (per class), p = sigmoid(z) and p_t = p if y = 1 else 1 - p:

        loss = sum_{b,k} alpha_b * (1 - p_t)**gamma * BCE(z_bk, y_bk) / B,   alpha_b = weight[y_b].

    Stable modulator. If y = 1: 1 - p_t = sigmoid(-z) = exp(-z) / (1 + exp(-z)); if y = 0:
    1 - p_t = sigmoid(z) = 1 / (1 + exp(-z)). Both cases are exp(-y*z - log(1 + exp(-z))), so

        (1 - p_t)**gamma = exp(-gamma*y*z - gamma*log(1 + exp(-z))),

    where log(1 + exp(-z)) is evaluated as softplus(-z), which does not overflow for large |z|.
    ``weight = None`` means alpha = 1. The sum is divided by the batch size (= number of positives).
    """
    _check_logits_targets(logits, targets)
    z = logits.float()
    batch, num_classes = z.shape
    weight = _per_class(weight, num_classes, z, "weight")
    y = F.one_hot(targets, num_classes).to(z.dtype)
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    gamma = float(gamma)
    modulator = torch.exp(-gamma * y * z - gamma * F.softplus(-z))
    loss = modulator * bce
    if weight is not None:
        loss = loss * weight[targets].unsqueeze(1)
    return loss.sum() / batch


def balanced_softmax_loss(
    logits: torch.Tensor, targets: torch.Tensor, class_counts: ClassCounts, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Balanced Softmax (Ren et al. NeurIPS 2020, arXiv 2007.10740): CE(z + log prior, y) with prior_k = n_k / sum n.

    A class with n_k = 0 gets a logit of -inf (it is never predicted; it must never be a target).
    ``weight`` is passed to ``F.cross_entropy`` (weighted-mean reduction).
    """
    _check_logits_targets(logits, targets)
    z = logits.float()
    counts = torch.as_tensor(
        class_counts if isinstance(class_counts, torch.Tensor) else np.asarray(class_counts, dtype=np.float64)
    ).to(device=z.device, dtype=torch.float32)
    if counts.shape != (z.shape[1],):
        raise ValueError(f"class_counts must have shape [{z.shape[1]}], got {tuple(counts.shape)}")
    log_prior = torch.log(counts) - torch.log(counts.sum())
    weight = _per_class(weight, z.shape[1], z, "weight")
    return F.cross_entropy(z + log_prior, targets, weight=weight)


# --------------------------------------------------------------------------------------------------
# supervised contrastive loss
# --------------------------------------------------------------------------------------------------


def supcon_loss(
    features: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 0.07,
    base_temperature: float = 0.07,
    contrast_mode: str = "all",
    reduction: str = "mean",
) -> torch.Tensor:
    """Supervised contrastive loss L^sup_out with the SupContrast conventions (HobbitLong/SupContrast ``losses.py``).

    ``features``: [B, V, d], assumed already L2-normalised (not renormalised here). The N = B*V vectors
    are flattened view-major (view 0 of every sample, then view 1, ...). ``labels``: [B], or None for the
    SimCLR case where the only positives of an anchor are the other views of its own sample.

    For anchor a, with P(a) = same-label vectors other than a and A(a) = all vectors other than a:

        l_a = -(temperature / base_temperature) / max(|P(a)|, 1)
              * sum_{p in P(a)} log( exp(f_a.f_p / T) / sum_{q in A(a)} exp(f_a.f_q / T) )

    so an anchor without positives contributes 0 but still counts in the mean. ``contrast_mode="all"``
    uses all N vectors as anchors; ``"one"`` only the B view-0 vectors (contrasted against all N).
    ``reduction="mean"`` returns the mean over anchors; ``"none"`` the per-anchor vector in the flattened
    anchor order (index v*B + b).
    """
    if features.ndim != 3:
        raise ValueError(f"features must have shape [B, V, d], got {tuple(features.shape)}")
    if contrast_mode not in ("all", "one"):
        raise ValueError(f"contrast_mode must be 'all' or 'one', got {contrast_mode!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    batch, views, _ = features.shape
    if batch * views < 2:
        raise ValueError(f"supcon_loss needs at least 2 feature vectors in total, got B={batch}, V={views}")
    device = features.device
    if labels is None:
        sample_labels = torch.arange(batch, device=device)
    else:
        if labels.ndim != 1 or labels.shape[0] != batch:
            raise ValueError(
                f"labels must have shape [B] = [{batch}] to match features {tuple(features.shape)}, "
                f"got {tuple(labels.shape)}"
            )
        sample_labels = labels.to(device)

    with _autocast_off(device):
        f = features.float()
        contrast = f.transpose(0, 1).reshape(views * batch, -1)  # row v*B + b = sample b, view v
        contrast_labels = sample_labels.repeat(views)
        if contrast_mode == "all":
            anchor, anchor_labels = contrast, contrast_labels
        else:
            anchor, anchor_labels = f[:, 0], sample_labels
        num_anchors, num_contrast = anchor.shape[0], contrast.shape[0]

        logits = anchor @ contrast.T / float(temperature)
        # the row max (self included) is a constant shift; log-softmax below is invariant to it
        logits = logits - logits.max(dim=1, keepdim=True).values.detach()

        # in both modes anchor i is contrast vector i, so "self" is the diagonal of [A, N]
        not_self = ~torch.eye(num_anchors, num_contrast, dtype=torch.bool, device=device)
        positive = (anchor_labels.unsqueeze(1) == contrast_labels.unsqueeze(0)) & not_self

        denominator = (torch.exp(logits) * not_self).sum(dim=1, keepdim=True)
        log_prob = logits - torch.log(denominator)
        num_pos = positive.sum(dim=1).clamp(min=1)
        mean_log_prob_pos = (log_prob * positive).sum(dim=1) / num_pos
        loss = -(float(temperature) / float(base_temperature)) * mean_log_prob_pos

    return loss.mean() if reduction == "mean" else loss
