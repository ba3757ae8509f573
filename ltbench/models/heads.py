"""Classifier and projection heads (docs/methods.md §Backbones and heads)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NormedLinear(nn.Module):
    """Cosine logits in [-1, 1] (LDAM's NormedLinear; the scale s is applied in the loss)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        weight = torch.empty(in_features, out_features).uniform_(-1, 1)
        # column-wise renormalisation to unit norm, as the reference initialises it
        self.weight = nn.Parameter(weight.renorm(2, 1, 1e-5).mul(1e5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)


class ProjectionHead(nn.Module):
    """Linear -> BN -> ReLU -> Linear, L2-normalised output (PanHaulin/ConCutMix ``models/resnet32.py`` CIFAR head)."""

    def __init__(self, in_dim: int, hidden: int = 512, out_dim: int = 128, normalize: bool = True):
        super().__init__()
        self.normalize = normalize
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x).float()
        return F.normalize(out, dim=1) if self.normalize else out


def make_classifier(kind: str, in_dim: int, num_classes: int) -> nn.Module:
    if kind == "linear":
        layer = nn.Linear(in_dim, num_classes)
        nn.init.kaiming_normal_(layer.weight)  # the reference's init of every Linear
        return layer
    if kind == "normed":
        return NormedLinear(in_dim, num_classes)
    raise ValueError(f"unknown classifier {kind!r}; choose linear or normed")
