"""Learning-rate schedules as pure functions of the 0-based epoch (resume-safe; docs/methods.md §Schedules).

Milestones are stored resolved (in epochs) in every run spec; the presets place them at the
reference's fractions of training, so `--epochs 20` keeps the shape of the 200-epoch recipe.
"""

from __future__ import annotations

import math

# name -> (warm-up fraction, milestone fractions, multiplier after each milestone)
SCHEDULES: dict[str, tuple[float, tuple[float, ...], tuple[float, ...]]] = {
    # LDAM-DRW cifar_train.py: 5-epoch linear warm-up; x0.01 from 160, x0.0001 from 180 (of 200)
    "ldam-step": (5 / 200, (160 / 200, 180 / 200), (1e-2, 1e-4)),
    # SMCL text: x0.1 at 160 and again at 180 (of 200); warm-up unstated, LDAM's 5 epochs [U]
    "smcl-step": (5 / 200, (160 / 200, 180 / 200), (1e-1, 1e-2)),
    # CMO imagenet_train.py: 5-epoch warm-up; x0.1 from 60, x0.01 from 80 (of 100)
    "cmo-imagenet-step": (5 / 100, (60 / 100, 80 / 100), (1e-1, 1e-2)),
    # BCL main.py adjust_lr, no warm-up: lr * 0.5 * (1 + cos(pi * (e + 1) / (E + 1)))
    "cosine": (0.0, (), ()),
}


def resolve_schedule(name: str, epochs: int) -> tuple[int, tuple[int, ...]]:
    """Warm-up epochs and milestones (in epochs) of schedule `name` for a run of `epochs`."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
    warm, marks, _ = SCHEDULES[name]
    return round(warm * epochs), tuple(round(m * epochs) for m in marks)


def lr_at(epoch: int, base_lr: float, name: str, epochs: int, warmup_epochs: int,
          milestones: tuple[int, ...]) -> float:
    """The learning rate for 0-based `epoch` (set once per epoch, as the references do)."""
    factors = SCHEDULES[name][2]
    if epoch < warmup_epochs:
        return base_lr * (epoch + 1) / warmup_epochs
    if name == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * (epoch + 1) / (epochs + 1)))
    lr = base_lr
    for mark, factor in zip(milestones, factors, strict=True):
        if epoch >= mark:
            lr = base_lr * factor
    return lr
