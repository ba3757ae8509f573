"""No hidden device->host syncs in the training step of any registered method.

On a GPU every `.item()`, `.tolist()`, `.cpu()`, `bool(t)` / `float(t)` / `int(t)` and `nonzero` inside
the step stalls the CPU until the queued kernels finish, so the step can no longer run ahead of the
device. This test runs one step (batch gather, the method's views, `Trainer.train_step`) of every
registered method on the CPU, with those calls patched to be counted, and asserts the count is 0 or
the documented number below. Methods registered later are picked up automatically; per-batch
branches are covered by a second variant with every `*_prob` hyperparameter at 1 and every
`*_start_epoch` at 0 (SMCL's masked step, the mixing methods' mixed step, DRW active).

Documented exceptions (the reason each is unavoidable):
- fine-grained saliency (SMCL's default box locator): one `.cpu()` of the whole batch per masked
  step, because OpenCV's StaticSaliencyFineGrained runs on host memory (ltbench/saliency.py).

- a class sampler's probability vector (`Trainer.draw`): copied to the device once, the first time a
  branch draws from that sampler, then cached.
- not exercised here (resident `shapes` data): file-backed data (ImageNet-LT, `ltbench.sources.FileSource`)
  reads the epoch order to the host once per epoch and a second batch's indices once per step
  (`fetch`: the files are decoded on the host, so the indices must be there).

Also counted: `torch.tensor` / `torch.as_tensor` of host data with a `device=` inside the step. On CUDA
that is a blocking host->device copy (it waits for the stream); constants belong in tensors built once.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections import Counter
from pathlib import Path

import pytest
import torch

from ltbench.config import build_spec
from ltbench.data.datasets import build_bundle
from ltbench.registry import get_method, list_methods
from ltbench.train import RuntimeOptions, Trainer
from tests.fakes import has_contrib_saliency

EPOCHS = 2
TINY = {"backbone": "resnet8", "max_per_class": 40, "batch_size": 32, "epochs": EPOCHS}
# (file, function) of a documented sync -> syncs per call of that function
DOCUMENTED = {("saliency.py", "_fine_grained"): 1}
# lazily filled caches: at most one copy per trainer, the first time a branch needs it
ONE_TIME = {("trainer.py", "draw"): "a class sampler's probability vector, copied to the device once and cached"}
# known syncs in modules still being written elsewhere: the case is marked xfail (not hidden) until fixed
PENDING = {("autoaugment.py", "_tables"): "policy tables rebuilt from Python lists on every call; "
           "build them once per device (ltbench.device_constants.device_constant)"}
PATCHED_METHODS = ("item", "tolist", "cpu", "__bool__", "__float__", "__int__", "nonzero")


def _forcing_overrides(method: str) -> dict:
    """Every per-batch probability at 1 and every start epoch at 0: the step's rarer branches."""
    hp = get_method(method).cls.Hparams
    out = {}
    for f in dataclasses.fields(hp):
        if f.name.endswith("_prob"):
            out[f.name] = 1.0
        elif f.name.endswith("_start_epoch"):
            out[f.name] = 0
        elif f.name == "saliency" and not has_contrib_saliency():  # plain OpenCV (GPU images): device map
            out[f.name] = "spectral-residual"
    return out


CASES = [(entry.name, variant) for entry in list_methods() for variant in ("default", "forced")
         if variant == "default" or _forcing_overrides(entry.name)]


class SyncCounter:
    """Counts patched calls, each with the innermost ltbench frame that made it."""

    def __init__(self):
        self.sites: Counter = Counter()
        self.active = False

    def record(self, what: str) -> None:
        if not self.active:
            return
        self.active = False  # the stack walk itself must not count
        try:
            frames = [f for f in traceback.extract_stack()[:-2] if "ltbench" in f.filename
                      or "/methods/" in f.filename]
            site = frames[-1] if frames else None
            key = (Path(site.filename).name, site.name) if site else ("?", "?")
            self.sites[(*key, what)] += 1
        finally:
            self.active = True

    def total(self) -> int:
        return sum(self.sites.values())


@pytest.fixture
def counter(monkeypatch):
    c = SyncCounter()
    for name in PATCHED_METHODS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, __original=original, __name=name, **kwargs):
            c.record(f"Tensor.{__name}")
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    original_nonzero = torch.nonzero

    def nonzero(*args, **kwargs):
        c.record("torch.nonzero")
        return original_nonzero(*args, **kwargs)

    monkeypatch.setattr(torch, "nonzero", nonzero)
    # Host data (lists, numbers, numpy) turned into a tensor on the training device: on CUDA a blocking
    # host->device copy, which waits for the stream (torch copy_ with non_blocking=False). Counted when
    # a `device=` is given, since on this CPU run every device is the host.
    for factory in ("tensor", "as_tensor"):
        original_factory = getattr(torch, factory)

        def make(*args, __original=original_factory, __name=factory, **kwargs):
            if kwargs.get("device") is not None and not (args and isinstance(args[0], torch.Tensor)):
                c.record(f"torch.{__name}(host data, device=)")
            return __original(*args, **kwargs)

        monkeypatch.setattr(torch, factory, make)
    return c


@pytest.fixture(scope="module")
def bundle():
    return build_bundle("shapes", 10, max_per_class=TINY["max_per_class"])


def _one_step(tr: Trainer, counter: SyncCounter | None) -> dict:
    """A step exactly as `Trainer.train_epoch` runs it, counted when a counter is given."""
    perm = torch.randperm(len(tr.train), generator=tr.order_generator, device=tr.device)
    sums: dict = {}
    if counter is not None:
        counter.active = True
    try:
        images, labels = next(tr.train.batches(perm, tr.spec.train.batch_size))
        views = [tr.augment(p, images) for p in tr.method.views()]
        tr.train_step(images, labels, views, sums)
    finally:
        if counter is not None:
            counter.active = False
    return sums


def _expected(counter: SyncCounter) -> int:
    """What the documented sites account for: DOCUMENTED syncs per call of each documented function."""
    calls = Counter()
    for (file, func, _what), n in counter.sites.items():
        if (file, func) in DOCUMENTED:
            calls[(file, func)] += n
    return sum(calls.values())


@pytest.mark.parametrize(("method", "variant"), CASES)
def test_training_step_has_no_hidden_host_sync(method, variant, bundle, counter):
    extra = _forcing_overrides(method) if variant == "forced" else {}
    spec = build_spec(method, "shapes", 10, 0, "paper", {**TINY, **extra})
    tr = Trainer(spec, bundle, torch.device("cpu"), RuntimeOptions(device="cpu", argv=["test"]))
    tr.method.on_epoch_start(EPOCHS - 1)
    tr.model.train()
    _one_step(tr, None)  # warm-up: one-time lazy set-up (sampler tables) is not a per-step cost
    sums = _one_step(tr, counter)
    once = {k: v for k, v in counter.sites.items() if (k[0], k[1]) in ONE_TIME}
    assert all(v == 1 for v in once.values()), once
    undocumented = {k: v for k, v in counter.sites.items() if (k[0], k[1]) not in {**DOCUMENTED, **ONE_TIME}}
    if undocumented and all((k[0], k[1]) in PENDING for k in undocumented):
        pytest.xfail("; ".join(f"{k[0]}:{k[1]}: {PENDING[(k[0], k[1])]}" for k in undocumented))
    assert not undocumented, f"{method} ({variant}): host syncs inside the step: {dict(undocumented)}"
    for k in once:
        counter.sites.pop(k)
    hp = spec.hparams
    fine_grained = (variant == "forced" and hp.get("mask_prob", 0) > 0 and hp.get("mask_locator") == "saliency"
                    and hp.get("saliency") == "fine-grained")
    assert counter.total() == _expected(counter) == (1 if fine_grained else 0), dict(counter.sites)
    if "masked" in sums:  # SMCL-like methods log which branch ran: the forced variant must be the masked one
        assert float(sums["masked"]) == (1.0 if variant == "forced" and hp.get("mask_prob", 0) > 0 else 0.0)


def test_the_counter_sees_each_patched_call(counter):
    """The patching itself: each kind of sync is counted once, and only while active."""
    t = torch.tensor([1.0, 0.0])
    t.item  # noqa: B018  (attribute access is not a call)
    counter.active = True
    t[0].item()
    t.tolist()
    t.cpu()
    bool(t[0])
    float(t[0])
    int(t[0])
    t.nonzero()
    torch.nonzero(t)
    counter.active = False
    t.tolist()
    whats = Counter(what for (_f, _fn, what), n in counter.sites.items() for _ in range(n))
    assert whats == Counter({"Tensor.item": 1, "Tensor.tolist": 1, "Tensor.cpu": 1, "Tensor.__bool__": 1,
                             "Tensor.__float__": 1, "Tensor.__int__": 1, "Tensor.nonzero": 1, "torch.nonzero": 1})
