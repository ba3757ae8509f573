"""The model the trainer builds for a method: backbone + classifier (+ projection and centre heads)."""

from __future__ import annotations

import torch
from torch import nn

from ltbench.models.heads import NormedLinear, ProjectionHead, make_classifier
from ltbench.models.options import BACKBONES, ModelOptions
from ltbench.models.resnet_cifar import ResNetCifar

__all__ = ["LTModel", "build_model"]


class LTModel(nn.Module):
    """Backbone + classifier (+ projection head). forward returns (logits, features or None)."""

    def __init__(self, backbone: nn.Module, feat_in: int, num_classes: int, options: ModelOptions):
        super().__init__()
        self.backbone = backbone
        self.classifier = make_classifier(options.classifier, feat_in, num_classes)
        self.projection = (ProjectionHead(feat_in, options.head_hidden, options.feat_dim, options.normalize_features)
                           if options.projection else None)
        self.centres_head = (ProjectionHead(feat_in, options.head_hidden, options.feat_dim, normalize=False)
                             if options.centres_head else None)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats = self.backbone(x)
        logits = self.classifier(feats)
        proj = self.projection(feats) if self.projection is not None else None
        return logits, proj

    def class_centres(self) -> torch.Tensor:
        """The classifier's class weight vectors [C, d_in] through `centres_head`, un-normalised [C, feat_dim]."""
        if self.centres_head is None:
            raise ValueError("this model has no centres head (ModelOptions.centres_head)")
        weight = self.classifier.weight
        rows = weight.T if isinstance(self.classifier, NormedLinear) else weight  # NormedLinear is [d_in, C]
        return self.centres_head(rows)


def build_model(backbone: str, num_classes: int, in_channels: int, options: ModelOptions) -> LTModel:
    if backbone.startswith("resnet") and backbone[6:].isdigit() and backbone != "resnet50":
        net = ResNetCifar(int(backbone[6:]), in_channels)
        return LTModel(net, net.out_dim, num_classes, options)
    if backbone == "resnet50":  # torchvision ResNet-50 v1.5, random init, fc removed (as CMO imagenet_train.py)
        import torchvision

        net = torchvision.models.resnet50(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        feat_dim = net.fc.in_features  # 2048
        net.fc = nn.Identity()
        model = LTModel(net, feat_dim, num_classes, options)
        if options.classifier == "linear":  # torchvision's fc keeps PyTorch's default Linear init
            classifier = model.classifier
            assert isinstance(classifier, nn.Linear)  # the "linear" head (models/heads.py)
            classifier.reset_parameters()
        return model
    raise ValueError(f"unknown backbone {backbone!r}; choose from {', '.join(BACKBONES)}")

