"""Augmentation pipelines by name: the one list that the trainer, the methods' view fields and the bench read.

A method names the pipelines of its views (`Method.views()`, fields typed `PipelineName`); the trainer
turns a uint8 batch into float [0, 1] pixels with `apply` (normalisation is the trainer's, after it);
`ltbench bench` builds the reference codebases' per-sample PIL transform of each name. Adding a pipeline:
its name in `PipelineName`, an entry in `PIPELINES`, its branch in `apply` (and a classic transform in
ltbench/bench/classic.py to time it). Importing this module does not import torch (spec resolution
reads the names).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ltbench.errors import LtbenchError

if TYPE_CHECKING:
    import torch

__all__ = ["PIPELINES", "Pipeline", "PipelineName", "apply", "names"]

# the type of a method's view field: config.py validates a `--set view1=...` against these values
PipelineName = Literal["standard", "cutout", "sim", "autoaug", "randaug", "none"]


@dataclass(frozen=True)
class Pipeline:
    name: str
    families: tuple[str, ...]  # data-set families it is defined for
    description: str  # what it does and where it comes from


PIPELINES: dict[str, Pipeline] = {p.name: p for p in (
    Pipeline("standard", ("cifar", "imagenet"),
             "CIFAR: RandomCrop(32, padding=4) + flip (kaidic/LDAM-DRW cifar_train.py; CMO the same); "
             "ImageNet: RandomResizedCrop + flip + colour jitter (ltbench.augment_imagenet)"),
    Pipeline("cutout", ("cifar",), "crop + flip + CutOut(1 hole, 16 px) before normalisation (DeVries & Taylor 2017)"),
    Pipeline("sim", ("cifar", "imagenet"),
             "SimAugment of SupCon (HobbitLong/SupContrast main_supcon.py; ImageNet: ltbench.augment_imagenet)"),
    Pipeline("autoaug", ("cifar",), "crop + flip + AutoAugment CIFAR10Policy (BCL/ConCutMix classification view)"),
    Pipeline("randaug", ("imagenet",), "crop + flip + jitter + RandAugment (ltbench.augment_imagenet)"),
    Pipeline("none", ("cifar", "imagenet"), "no augmentation (ImageNet: the centre crop)"),
)}
assert tuple(PIPELINES) == typing.get_args(PipelineName), "PipelineName and PIPELINES list the same names"


def names(family: str | None = None) -> tuple[str, ...]:
    """The pipeline names, or those defined for a data-set family."""
    return tuple(n for n, p in PIPELINES.items() if family is None or family in p.families)


def apply(name: str, images: torch.Tensor, generator: torch.Generator, family: str = "cifar",
          size: int | None = None) -> torch.Tensor:
    """Augment a uint8 [N, C, H, W] batch with the named pipeline, batched on its device -> float [0, 1].

    The imagenet family's pipelines (ltbench.augment_imagenet) make `size`-pixel views of the stored squares.
    """
    from ltbench import augment as aug
    from ltbench import augment_imagenet
    from ltbench.autoaugment import cifar10_policy

    if family == "imagenet":
        try:
            return augment_imagenet.pipeline(name, images, generator, size or images.shape[-1])
        except ValueError as exc:
            raise LtbenchError(str(exc)) from None
    if name == "randaug":
        raise LtbenchError("the randaug pipeline is defined for the imagenet family (imagenet-lt) only")
    if name == "standard":
        return aug.random_crop_flip(images, padding=4, generator=generator)
    if name == "cutout":
        return aug.cutout(aug.random_crop_flip(images, padding=4, generator=generator), length=16,
                          generator=generator)
    if name == "sim":
        return aug.sim_augment(images, generator=generator)
    if name == "autoaug":
        return cifar10_policy(aug.random_crop_flip(images, padding=4, generator=generator), generator)
    if name == "none":
        return images.float() / 255.0
    raise LtbenchError(f"unknown augmentation pipeline {name!r}; choose standard, cutout, sim, autoaug "
                       "or none")
