"""Batch mixing shared by Mixup, CutMix and CMO (spec §4.5-§4.7): the window, the per-batch draw, the loss.

The reference (CMO cifar_train.py) decides per batch: mix only if r ~ U(0, 1) < mix_prob and the
epoch lies in the window 3 < e < E - 3; one lambda ~ Beta(alpha, alpha) and one box per batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from ltbench.augment import cutmix_box
from ltbench.bounds import bounded
from ltbench.method import BaseHparams, Method


@dataclass
class MixHparams(BaseHparams):
    mix_prob: float = field(default=0.5, metadata=bounded(ge=0, le=1))  # per batch (CMO --mixup_prob)
    mix_alpha: float = field(default=1.0, metadata=bounded(gt=0))  # lambda ~ Beta(alpha, alpha) (CMO --beta)
    # first mixing epoch; None: the reference's 4 of 200
    mix_start_epoch: int | None = field(default=None, metadata=bounded(ge=0))
    # first epoch without mixing; None: E - 3
    mix_end_epoch: int | None = field(default=None, metadata=bounded(ge=0))


def _fill_window(out: dict[str, Any], epochs: int) -> None:
    """CMO's start/end_data_aug = 3 (absolute, for 100- and 200-epoch recipes); scaled for short runs."""
    margin = 3 if epochs >= 100 else round(3 * epochs / 200)
    if out.get("mix_start_epoch") is None:
        out["mix_start_epoch"] = margin + 1 if margin else 0
    if out.get("mix_end_epoch") is None:
        out["mix_end_epoch"] = epochs - margin


class MixingMethod(Method):
    """Base for methods that mix each (selected) batch with partner images and area/weight labels."""

    Hparams = MixHparams

    @classmethod
    def resolve_hparams(cls, values: dict[str, Any], epochs: int) -> dict[str, Any]:
        out = super().resolve_hparams(values, epochs)
        _fill_window(out, epochs)
        if out["mix_prob"] == 0:  # no batch is mixed: the mixing settings change nothing (one run id)
            base = {f.name for f in dataclasses.fields(BaseHparams)} | {"mix_prob"}
            for f in dataclasses.fields(cls.Hparams):
                if f.name not in base:
                    out[f.name] = f.default
            _fill_window(out, epochs)
        return out

    def mix_now(self) -> bool:
        """Per-batch decision; the uniform draw is made for every batch, as the reference does."""
        r = self.sv.rng.random()
        hp = self.hp
        return hp.mix_start_epoch <= self.epoch < hp.mix_end_epoch and r < hp.mix_prob

    def draw_lambda(self) -> float:
        return float(self.sv.rng.beta(self.hp.mix_alpha, self.hp.mix_alpha))

    def random_box(self, lam: float) -> tuple[int, int, int, int, float]:
        """CutMix/CMO rand_bbox: uniform centre (row first, then column), clipped, lambda recomputed."""
        height, width = self.sv.image_size
        row = int(self.sv.rng.integers(height))
        col = int(self.sv.rng.integers(width))
        return cutmix_box(height, width, lam, row, col)

    def mixed_ce(self, logits: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float) -> torch.Tensor:
        """lam * CE(y_a) + (1 - lam) * CE(y_b), each with the DRW weights when active."""
        return lam * self.ce(logits, y_a) + (1.0 - lam) * self.ce(logits, y_b)

    def partner_permutation(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self.sv.generator, device=self.sv.device)
