"""Batch mixing shared by Mixup, CutMix and CMO: the window, the per-batch draw, the loss.

Recipe and sources: docs/methods.md §Mixup, CutMix and CMO.

The reference (CMO cifar_train.py) decides per batch: mix only if r ~ U(0, 1) < mix_prob and the
epoch lies in the window 3 < e < E - 3; one lambda ~ Beta(alpha, alpha) and one box per batch.
`MixingMethod.training_step` is that loop once; a subclass writes only `mix()`, which builds the mixed
batch, its partner labels and lambda.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ltbench.augment import cutmix_box
from ltbench.bounds import bounded
from ltbench.method import BaseHparams, Batch, Method, StepBranch, StepOutput, two_branches

if TYPE_CHECKING:
    import torch
else:  # torch on first use (ltbench/lazy.py)
    from ltbench.lazy import torch


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


def mixing_branches(hparams: dict[str, Any], epochs: int) -> list[StepBranch]:
    """Step branches of a method that mixes a batch with probability `mix_prob` (inside its mixing window
    when it has `mix_start_epoch` / `mix_end_epoch`: ConCutMix has none and mixes in every epoch)."""
    prob = hparams.get("mix_prob", 0.0)
    if not prob > 0:
        return Method.step_branches(hparams, epochs)
    forced = {"mix_prob": 1.0, "mix_start_epoch": 0, "mix_end_epoch": epochs}
    force = {k: v for k, v in forced.items() if k in hparams}  # only the keys the method has
    start = hparams.get("mix_start_epoch", 0) or 0
    end = hparams.get("mix_end_epoch", epochs) or epochs
    return two_branches("mixed", prob, force, {"mix_prob": 0.0}, start, end, epochs)


MH = TypeVar("MH", bound=MixHparams)


class MixingMethod(Method[MH]):
    """Base for methods that mix each (selected) batch with partner images and area/weight labels."""

    Hparams = MixHparams

    @classmethod
    def step_branches(cls, hparams: dict[str, Any], epochs: int) -> list[StepBranch]:
        return mixing_branches(hparams, epochs)

    def training_step(self, batch: Batch) -> StepOutput:
        """CMO's loop: a plain CE step unless this batch mixes; then CE on the mix, weighted by lambda."""
        (x,) = batch.views
        y = batch.labels
        if not self.mix_now():
            ((logits, _),) = self.sv.forward([x])
            return StepOutput(self.ce(logits, y))
        mixed, y_partner, lam = self.mix(x, y)
        ((logits, _),) = self.sv.forward([mixed])
        return StepOutput(self.mixed_ce(logits, y, y_partner, lam))

    def mix(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(mixed batch, partner labels, lambda): the loss is lam * CE(y) + (1 - lam) * CE(partner labels)."""
        raise NotImplementedError

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
        start, end = hp.mix_start_epoch, hp.mix_end_epoch
        assert start is not None and end is not None, "resolve_hparams fills the window"
        return start <= self.epoch < end and r < hp.mix_prob

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
