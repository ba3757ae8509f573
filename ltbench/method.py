"""The method contract: what a method declares, and the hooks the one trainer calls.

A method is a named recipe. It declares its hyperparameters (a dataclass with the paper's defaults),
the model it needs (classifier kind, projection head), the augmented views it wants of each source
image, and any training-setting defaults (batch size, schedule) that differ from the data set's
preset. The trainer calls `on_epoch_start(epoch)` and `training_step(batch)`; everything else
(optimiser, schedule, precision, evaluation, checkpoints) is the trainer's.

Deferred re-weighting (DRW) is an option every method has (`drw=true`), not a separate copy of
each method: `self.class_weights` is None until `drw_start_epoch`, then the per-class weights that
`self.ce` applies to every cross-entropy term.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar, runtime_checkable

from ltbench.bounds import bounded
from ltbench.models.options import ModelOptions

if TYPE_CHECKING:
    import numpy as np
    import torch
    import torch.nn.functional as F
else:  # torch on first use: reading a method's hyperparameters does not import it (ltbench/lazy.py)
    from ltbench.lazy import F, torch


def epoch_fraction(fraction: float) -> dict[str, float]:
    """Field metadata: when left as None, resolve to round(fraction * epochs) (scales with --epochs)."""
    return {"epoch_fraction": fraction}


@dataclass(frozen=True)
class EpochFraction:
    """A `family_defaults` value for an epoch field: resolves to round(fraction * epochs) like the field's own
    `epoch_fraction`, so a family whose recipe starts a phase at another share of training (ConCutMix's
    ImageNet-LT `l_d_warm`, 70 of 100 epochs) still scales with --epochs and `budget`."""

    fraction: float


def reset_to_default(hparams: type, values: dict[str, Any], epochs: int, *names: str) -> None:
    """Set `names` back to their dataclass defaults (epoch fractions resolved against `epochs`).

    Used by `resolve_hparams` for settings that cannot change the computation in the current
    combination (e.g. `drw_beta` without DRW): one computation, one canonical spec, one run id.
    """
    fields = {f.name: f for f in dataclasses.fields(hparams)}
    for name in names:
        f = fields[name]
        frac = f.metadata.get("epoch_fraction")
        values[name] = round(frac * epochs) if frac is not None else f.default


@dataclass
class BaseHparams:
    """Hyperparameters every method has: deferred re-weighting (docs/methods.md §ERM and DRW)."""

    drw: bool = False
    drw_weighting: Literal["cb", "inverse"] = "cb"
    # (1 - beta) / (1 - beta^n): beta = 1 divides by zero (Cui et al. 2019, arXiv:1901.05555)
    drw_beta: float = field(default=0.9999, metadata=bounded(ge=0, lt=1))
    drw_start_epoch: int | None = field(default=None, metadata={**epoch_fraction(0.8), **bounded(ge=0)})


@dataclass
class Batch:
    """One training step's source batch: raw uint8 images, labels and the method's augmented views."""

    images: torch.Tensor
    labels: torch.Tensor
    views: list[torch.Tensor]


@dataclass
class StepOutput:
    """The loss to minimise and named scalars (device tensors; the trainer averages them per epoch)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


@runtime_checkable
class TrainerServices(Protocol):
    """What the trainer offers a method (ltbench.train.Trainer implements it; tests/fakes.py fakes it).

    A structural type: a class provides it by having these members (tests/test_step_branches.py checks
    the trainer and the fake against it)."""

    num_classes: int
    class_counts: list[int]
    epochs: int
    device: torch.device
    generator: torch.Generator  # device-side randomness (per-sample parameters, sampling)
    rng: np.random.Generator  # host-side per-batch scalars (lambda, Bernoulli decisions)
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def forward(self, views: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Run the model once on the concatenated views; (logits, features) per view."""
        ...

    def augment(self, pipeline: str, images: torch.Tensor) -> torch.Tensor:
        """Augment a uint8 batch with a named pipeline (ltbench.pipelines); float [0, 1] pixels, not normalised."""
        ...

    def draw(self, kind: str, n: int, **params: float) -> tuple[torch.Tensor, torch.Tensor]:
        """n training images and labels from a class sampler (`class_sampling_probabilities` kinds)."""
        ...


@dataclass(frozen=True)
class StepBranch:
    """One kind of training step a method takes; `ltbench bench` times each, `estimate` weights them.

    A method whose step is sometimes costlier (SMCL's masked batches, Mixup's mixed ones) declares each
    kind with the hyperparameter overrides that make every step take it, so the bench can time a kind
    alone, and the kinds' shares of the steps, so the estimate and the bench can weight the timings.
    """

    name: str  # "step" for single-kind methods; e.g. "masked"/"plain", "mixed"/"plain"
    force: dict[str, Any]  # hyperparameter overrides that make every step take this branch
    run_share: float  # share of the whole run's optimiser steps that take it (the shares sum to 1)
    # share of the steps of an epoch in the method's active phase (SMCL from mask_start_epoch on, a mixing
    # method inside its window; the bench times that phase) that take it (the shares sum to 1)
    late_share: float


def two_branches(costly: str, prob: float, force: dict[str, Any], plain: dict[str, Any], start: int, end: int,
                 epochs: int) -> list[StepBranch]:
    """A method that takes its `costly` branch with probability `prob` per step in epochs [start, end).

    run share = prob * (active epochs) / epochs; a step in the active phase takes it with probability prob.
    """
    active = max(0, min(end, epochs) - max(0, start))
    share = float(prob) * active / max(1, epochs)
    return [StepBranch(costly, force, share, prob), StepBranch("plain", plain, 1 - share, 1 - prob)]


H = TypeVar("H", bound=BaseHparams)


class Method(Generic[H]):
    """Base class. Subclasses set `Hparams`, `description`, and override the hooks they need.

    Generic over the hyperparameter dataclass, so `self.hp.mask_prob` type-checks in a subclass declared
    `class SMCL(Method[SMCLHparams])` (`Hparams` must be that same class: a ClassVar cannot name H).
    """

    Hparams: ClassVar[type[BaseHparams]] = BaseHparams
    description: ClassVar[str] = ""
    # data-set family -> hyperparameter defaults that differ from the dataclass defaults (an epoch field's
    # default that is another share of the epochs: EpochFraction)
    family_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    # data-set family -> training-setting defaults (batch_size, schedule, ...) that differ from the preset
    train_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, hp: H, services: TrainerServices):
        self.hp: H = hp
        self.sv = services
        self.epoch = 0
        self.class_weights: torch.Tensor | None = None
        # images that went through an extra no-grad forward of the model in the latest training step (a
        # map computed by the model, say); `ltbench bench` reports them beside the trained images
        self.nograd_images = 0

    # ----- declarations -------------------------------------------------------------------
    def model_options(self) -> ModelOptions:
        return ModelOptions()

    def setup_model(self, model: torch.nn.Module) -> None:
        """Adjust the freshly built model (e.g. a bias initialisation); called once, before training."""

    def param_groups(self, model: torch.nn.Module) -> list[dict[str, Any]] | None:
        """Optimiser parameter groups when some parameters need other settings (None: all alike)."""
        return None

    def views(self) -> tuple[str, ...]:
        """Augmentation pipelines applied to each source image, one view each."""
        return ("standard",)

    @classmethod
    def resolve_hparams(cls, values: dict[str, Any], epochs: int) -> dict[str, Any]:
        """Fill epoch-derived defaults left as None (metadata `epoch_fraction`); reset no-op settings.

        Subclasses extend this with their own no-op combinations (tests/test_hparams_matter.py walks
        every field of every registered method and fails on a setting that changes nothing).
        """
        out = dict(values)
        for f in dataclasses.fields(cls.Hparams):
            frac = f.metadata.get("epoch_fraction")
            if isinstance(out.get(f.name), EpochFraction):  # a family default (see EpochFraction)
                out[f.name] = round(out[f.name].fraction * epochs)
            elif frac is not None and out.get(f.name) is None:
                out[f.name] = round(frac * epochs)
        if not out.get("drw", False):  # DRW off: its settings change nothing, so they leave the run id
            reset_to_default(cls.Hparams, out, epochs, "drw_weighting", "drw_beta", "drw_start_epoch")
        elif out.get("drw_weighting") == "inverse":  # inverse-frequency weights have no beta
            reset_to_default(cls.Hparams, out, epochs, "drw_beta")
        return out

    @classmethod
    def step_branches(cls, hparams: dict[str, Any], epochs: int) -> list[StepBranch]:
        """The kinds of step this method takes under resolved `hparams` (a spec's), with their shares.

        Default: one kind, every step alike. A method whose steps differ overrides this.
        """
        return [StepBranch("step", {}, 1.0, 1.0)]

    # ----- hooks --------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch
        self.class_weights = self._drw_weights(epoch)

    def training_step(self, batch: Batch) -> StepOutput:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Method state that must survive a resume (most methods have none)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    # ----- shared pieces ------------------------------------------------------------------
    def _drw_weights(self, epoch: int) -> torch.Tensor | None:
        hp = self.hp
        if not hp.drw or epoch < (hp.drw_start_epoch or 0):
            return None
        from ltbench.losses import class_balanced_weights, inverse_frequency_weights

        counts = self.sv.class_counts
        w = class_balanced_weights(counts, hp.drw_beta) if hp.drw_weighting == "cb" else \
            inverse_frequency_weights(counts)
        return w.to(self.sv.device)

    def ce(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy with the DRW weights when active (PyTorch's weighted-mean reduction)."""
        return F.cross_entropy(logits.float(), targets, weight=self.class_weights)
