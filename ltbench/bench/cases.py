"""Bench cases: one real `Trainer` per kind of training step, and the full and bare steps timed on it.

A *case* is one kind of training step: ERM (always, the reference), and each step branch the method
declares (`Method.step_branches`: one for most methods; e.g. SMCL's masked and plain steps), built
with the branch's `force` overrides so that every step takes it. Each trainer is put in the method's
late phase (the last epoch: DRW and masking active).

- the *full* step is what `Trainer.train_epoch` does per step: gather the batch, build the method's
  views, then the trainer's own `Trainer.train_step` (so the timed step cannot drift from training);
- the *bare* step is forward + backward + optimiser step of the same model on pre-staged,
  pre-normalised tensors of exactly the shapes the method forwarded (recorded on a warm-up step).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ltbench.bench.options import BenchOptions
from ltbench.errors import LtbenchError


@dataclass
class Case:
    name: str  # "erm", the method's name, or "<method>:<branch>"
    spec: Any  # RunSpec
    trainer: Any  # ltbench.trainer.Trainer
    late_share: float | None = None  # share of a late epoch's steps of this kind (None: the ERM reference)
    indices: list[torch.Tensor] = field(default_factory=list)
    cursor: int = 0
    staged: list[torch.Tensor] = field(default_factory=list)  # pre-normalised inputs, one per forward call
    staged_labels: list[torch.Tensor] = field(default_factory=list)
    images_per_step: int = 0
    nograd_images: int = 0  # images of extra no-grad forwards per step (SMCL mask_locator=model-saliency)
    sums: dict[str, torch.Tensor] = field(default_factory=dict)

    def next_indices(self) -> torch.Tensor:
        idx = self.indices[self.cursor % len(self.indices)]
        self.cursor += 1
        return idx


def index_batches(trainer: Any, batch_size: int, count: int) -> list[torch.Tensor]:
    """`count` full index batches from consecutive epoch permutations (prepared outside the clock)."""
    n = len(trainer.train)
    if batch_size > n:
        raise LtbenchError(f"batch size {batch_size} is larger than the training set ({n} images)")
    perms, have = [], 0
    while have < count * batch_size:
        perms.append(torch.randperm(n, generator=trainer.generator, device=trainer.device))
        have += n
    order = torch.cat(perms)
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(count)]


def build_cases(opts: BenchOptions, device: torch.device, bundle: Any) -> tuple[Any, list[Case]]:
    """(the method's spec, [the ERM case, then one case per step branch of the method])."""
    from ltbench.config import SPEC_KEYS, TrainSettings, build_spec
    from ltbench.registry import get_method
    from ltbench.trainer import RuntimeOptions, Trainer

    overrides = dict(opts.overrides)
    if opts.batch_size is not None:
        overrides["batch_size"] = opts.batch_size
    if opts.precision is not None:
        overrides["precision"] = opts.precision
    spec = build_spec(opts.method, opts.dataset, opts.ratio, opts.seed, opts.preset, overrides)
    train_keys = {f.name for f in dataclasses.fields(TrainSettings)}
    erm_overrides = {k: v for k, v in overrides.items() if k in train_keys or k in SPEC_KEYS}
    if opts.method == "erm":  # the reference is the method itself, hyperparameters included
        erm_overrides = dict(overrides)
    erm_overrides["batch_size"] = spec.train.batch_size
    erm_overrides["precision"] = spec.train.precision
    runtime = RuntimeOptions(device=str(device), channels_last=opts.channels_last, argv=["bench"])

    def make(name: str, method: str, extra: dict[str, Any], base: dict[str, Any],
             late_share: float | None) -> Case:
        s = build_spec(method, opts.dataset, opts.ratio, opts.seed, opts.preset, {**base, **extra})
        tr = Trainer(s, bundle, device, runtime)
        tr.method.on_epoch_start(s.train.epochs - 1)  # the late phase: DRW and masking are active
        tr.model.train()
        return Case(name, s, tr, late_share)

    cases = [make("erm", "erm", {}, erm_overrides, None)]
    if opts.method != "erm":
        branches = get_method(opts.method).cls.step_branches(spec.hparams, spec.train.epochs)
        for b in branches:  # a single branch is the method's step itself, named after the method
            label = opts.method if len(branches) == 1 else f"{opts.method}:{b.name}"
            cases.append(make(label, opts.method, dict(b.force), overrides, b.late_share))
    return spec, cases


def full_step(case: Case) -> None:
    """One step as `Trainer.train_epoch` runs it; the batch comes from a prepared index list."""
    tr = case.trainer
    images, labels = tr.train.fetch(case.next_indices())
    views = [tr.augment(p, images) for p in tr.method.views()]
    tr.train_step(images, labels, views, case.sums)


def record_forwards(case: Case) -> None:
    """Run one (untimed) full step that records what the method forwards: shapes and pre-normalised copies."""
    tr = case.trainer
    staged: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    original = tr.forward

    def recording(views: list[torch.Tensor]) -> Any:
        x = tr.normalize(torch.cat(views))
        staged.append(x.detach().clone(memory_format=torch.preserve_format))
        labels.append(torch.randint(0, tr.num_classes, (x.shape[0],), generator=tr.generator, device=tr.device))
        return original(views)

    tr.forward = recording  # an instance attribute shadows the method for this one step
    try:
        full_step(case)
    finally:
        del tr.forward
    if not staged:
        raise LtbenchError(f"method {case.spec.method} forwarded nothing in a training step")
    case.staged, case.staged_labels = staged, labels
    case.images_per_step = sum(x.shape[0] for x in staged)
    case.nograd_images = tr.method.nograd_images


def model_of(trainer: Any) -> Callable[[torch.Tensor], Any]:
    """The callable the trainer forwards through (compiled / wrapped when it is), else its model."""
    return getattr(trainer, "_forward", trainer.model)


def bare_step_fn(model_fn: Callable[[torch.Tensor], Any], optimizer: torch.optim.Optimizer,
                 inputs: Sequence[torch.Tensor], labels: Sequence[torch.Tensor],
                 autocast: Callable[[], AbstractContextManager[Any]]) -> Callable[[], None]:
    """Forward + backward + optimiser step on pre-staged tensors: the limit a trainer step can reach."""

    def step() -> None:
        loss = None
        for x, y in zip(inputs, labels, strict=True):
            with autocast():
                logits, feats = model_fn(x)
            part = F.cross_entropy(logits.float(), y)
            if feats is not None:  # keep the projection head in the backward pass
                part = part + feats.float().square().mean()
            loss = part if loss is None else loss + part
        assert loss is not None  # a recorded step forwards at least once (record_forwards)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def autocast_for(device: torch.device, precision: str) -> Callable[[], AbstractContextManager[Any]]:
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext


def sgd_like(model: torch.nn.Module, spec: Any) -> torch.optim.Optimizer:
    """A fresh optimiser with the spec's settings, for a copied model."""
    t = spec.train
    return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
