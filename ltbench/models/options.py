"""What a method asks of the model, and the backbone names: read without importing torch (spec resolution)."""

from __future__ import annotations

from dataclasses import dataclass

BACKBONES = ("resnet32", "resnet20", "resnet8", "resnet50")


@dataclass(frozen=True)
class ModelOptions:
    """What a method asks of the model: classifier kind and an optional projection head."""

    classifier: str = "linear"
    projection: bool = False
    head_hidden: int = 512
    feat_dim: int = 128
    # BCL/ConCutMix: a second MLP (`head_fc`) maps the classifier's class weights to class centres in the
    # projection space (BCL models/resnext.py), and the projection is returned un-normalised
    centres_head: bool = False
    normalize_features: bool = True
