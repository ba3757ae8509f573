"""The classic input path the batched pipelines are compared with: PIL + torchvision transforms per
sample, batched by a `DataLoader` (how the reference codebases of the LT lineage feed their models, e.g.
kaidic/LDAM-DRW cifar_train.py). One transform per registered pipeline name (ltbench.pipelines)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ltbench.bench.timing import Variant
from ltbench.errors import LtbenchError
from ltbench.pipelines import PIPELINES


class _Cutout:
    """CutOut(1 x length) on a [C, H, W] tensor before Normalize (the LT lineage), a hole clipped at borders."""

    def __init__(self, length: int = 16):
        self.length = length

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        y, x = np.random.randint(h), np.random.randint(w)
        half = self.length // 2
        img = img.clone()
        img[:, max(0, y - half):min(h, y + half), max(0, x - half):min(w, x + half)] = 0
        return img


def _crop_flip(size: int) -> list[Callable[..., Any]]:
    from torchvision import transforms as T

    return [T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()]


def _standard(size: int, mean: Sequence[float], std: Sequence[float]) -> list[Callable[..., Any]]:
    from torchvision import transforms as T

    return [*_crop_flip(size), T.ToTensor(), T.Normalize(mean, std)]


def _cutout(size: int, mean: Sequence[float], std: Sequence[float]) -> list[Callable[..., Any]]:
    from torchvision import transforms as T

    return [*_crop_flip(size), T.ToTensor(), _Cutout(16), T.Normalize(mean, std)]


def _sim(size: int, mean: Sequence[float], std: Sequence[float]) -> list[Callable[..., Any]]:
    from torchvision import transforms as T

    return [T.RandomResizedCrop(size, scale=(0.2, 1.0)), T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
            T.ToTensor(), T.Normalize(mean, std)]


def _autoaug(size: int, mean: Sequence[float], std: Sequence[float]) -> list[Callable[..., Any]]:
    from torchvision import transforms as T

    policy = T.AutoAugment(T.AutoAugmentPolicy.CIFAR10, fill=128)  # BCL / ConCutMix CIFAR classification view
    return [*_crop_flip(size), policy, T.ToTensor(), T.Normalize(mean, std)]


def _none(size: int, mean: Sequence[float], std: Sequence[float]) -> list[Callable[..., Any]]:
    from torchvision import transforms as T

    return [T.ToTensor(), T.Normalize(mean, std)]


# pipeline name (ltbench.pipelines.PIPELINES) -> the per-sample transforms that do what it does on 32-px
# images; the bench's data are resident 32-px sets, so the imagenet-only `randaug` has none
CLASSIC: dict[str, Callable[[int, Sequence[float], Sequence[float]], list[Callable[..., Any]]]] = {
    "standard": _standard, "cutout": _cutout, "sim": _sim, "autoaug": _autoaug, "none": _none,
}
assert set(CLASSIC) <= set(PIPELINES), "every classic transform is of a registered pipeline"


def classic_transform(pipeline: str, size: int, mean: Sequence[float], std: Sequence[float]) -> Callable[..., Any]:
    """The per-sample torchvision (PIL) transform that does what the named batched pipeline does."""
    from torchvision import transforms as T

    if pipeline not in PIPELINES:
        raise LtbenchError(f"unknown augmentation pipeline {pipeline!r}; choose from {', '.join(PIPELINES)}")
    if pipeline not in CLASSIC:
        raise LtbenchError(f"no classic equivalent of pipeline {pipeline!r}")
    return T.Compose(CLASSIC[pipeline](size, mean, std))


class ClassicDataset(torch.utils.data.Dataset[tuple[Any, ...]]):
    """uint8 HWC numpy images -> PIL -> one transformed tensor per view, and the label."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, transforms: Sequence[Callable[..., Any]]):
        self.images, self.labels, self.transforms = images_hwc, labels, list(transforms)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        from PIL import Image

        arr = self.images[i]
        img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        return (*[t(img) for t in self.transforms], int(self.labels[i]))


def classic_variant(name: str, dataset: ClassicDataset, batch_size: int, workers: int, reps: int,
                    device: torch.device) -> Variant:
    """`reps` batches of the classic path per round; the workers start (and stop) outside the clock."""
    from torch.utils.data import DataLoader, RandomSampler

    total = batch_size * (reps + 1)  # shuffle=True over as many epochs as a round needs, no restart
    state: dict[str, Any] = {}

    def before() -> None:
        sampler = RandomSampler(dataset, replacement=False, num_samples=total)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                            drop_last=True, pin_memory=device.type == "cuda")
        state["it"] = iter(loader)
        next(state["it"])  # worker start-up and the first batch stay outside the clock

    def step() -> None:
        *views, labels = next(state["it"])
        x = torch.cat(views)
        if device.type != "cpu":
            x, labels = x.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    def after() -> None:
        state.pop("it", None)  # shuts the workers down

    return Variant(name, step, reps, before, after)
