"""The one trainer: how a run's epochs are trained and evaluated, and what its checkpoint holds.

The training set lives on the device as uint8; each step gathers an index batch from a per-epoch
permutation, augments it there in batched calls with per-sample random parameters, and hands the
views to the method, which returns a loss. The trainer owns the optimiser, the LR schedule,
precision and evaluation, and never branches on a method's name. What is recorded on disk, and when
(lock, claim, resume, failure, final.json), is the run lifecycle's job: ltbench.train.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltbench import distributed as ltdist
from ltbench import faults, pipelines
from ltbench.background import background_metrics
from ltbench.config import RunSpec
from ltbench.data.bundle import DataBundle
from ltbench.data.sampling import class_index_table, class_sampling_probabilities, sample_indices
from ltbench.errors import LtbenchError
from ltbench.method import Batch, Method, TrainerServices
from ltbench.metrics import confusion_matrix, subset_accuracy, summarize
from ltbench.models import build_model
from ltbench.registry import get_method
from ltbench.rundir import CHECKPOINT
from ltbench.schedules import lr_at
from ltbench.sources import FileSource, ResidentSource, base_size

EVAL_BATCH = 1024


@dataclass
class RuntimeOptions:
    """Choices that do not change a run's numbers (on a given device) and so are not in the spec."""

    results_dir: Path = Path("results/runs")
    data_dir: Path | None = None
    download: bool = False
    device: str = "auto"
    force: bool = False
    progress: bool = False
    channels_last: bool | None = None  # None: on for CUDA
    compile: bool = False
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    stop_after_epochs: int | None = None  # end this session early (tests; time-sliced jobs)
    split_dir: Path | None = None  # file-backed data sets' split lists (None: the data set's default place)
    workers: int | None = None  # DataLoader decode workers per process for file-backed data (None: auto)
    image_cache: Path | None = None  # folder of pre-resized uint8 copies (`ltbench data cache`); None: decode
    tracker: str | None = None  # "tensorboard": metrics rows also as TensorBoard scalars (ltbench.tracking)


class RunDiverged(LtbenchError):
    pass


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LtbenchError("--device cuda was asked for, but torch sees no CUDA device")
    if name != "cpu" and not name.startswith("cuda"):
        raise LtbenchError(f"unknown device {name!r}; choose auto, cpu or cuda[:N]")
    return torch.device(name)


def _workers(runtime: RuntimeOptions) -> int:
    if runtime.workers is not None:
        return runtime.workers
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(8, (os.cpu_count() or 1) // per_node))


# what a trainer reads images from: resident tensors or an image list (ltbench/sources.py)
Source = FileSource | ResidentSource


def make_sources(bundle: DataBundle, device: torch.device, image_size: int | None = None, workers: int = 0,
                 cache_dir: Path | None = None) -> tuple[Source, Source]:
    """Train and test sources for a bundle (resident tensors for CIFAR-sized data, files for ImageNet-LT).

    File-backed train images arrive as base_size(image_size) squares (views are cropped on the device);
    test images as Resize(base) + CenterCrop(image_size), the reference's test transform.
    """
    if bundle.files is not None:
        crop = image_size or bundle.info.size
        base = base_size(crop)
        return (FileSource(bundle.files["train"], device, base, base, workers, cache_dir),
                FileSource(bundle.files["test"], device, base, crop, workers, cache_dir))
    return (ResidentSource(bundle.train_images, bundle.train_labels, device),
            ResidentSource(bundle.test_images, bundle.test_labels, device))


class Trainer(TrainerServices):
    """Holds the run's state; implements the services a method may call."""

    def __init__(self, spec: RunSpec, bundle: DataBundle, device: torch.device, runtime: RuntimeOptions,
                 dist: ltdist.Dist | None = None):
        self.spec, self.bundle, self.device, self.runtime = spec, bundle, device, runtime
        self.dist = dist or ltdist.Dist()
        if spec.train.batch_size % self.dist.world:
            raise LtbenchError(f"batch_size {spec.train.batch_size} is not divisible by the {self.dist.world} "
                               "processes; each takes batch_size / processes images per step")
        info = bundle.info
        self.num_classes = info.num_classes
        self.class_counts = list(bundle.class_counts)
        self.epochs = spec.train.epochs
        self.mean, self.std = info.mean, info.std
        torch.manual_seed(spec.seed)
        self.generator = torch.Generator(device=device).manual_seed(spec.seed)
        self.order_generator = self.generator  # the epoch permutation (shared by all ranks)
        if self.dist.active:  # per-rank augmentation and class-sampler streams, one shared epoch order
            self.order_generator = torch.Generator(device=device).manual_seed(spec.seed)
            self.generator = torch.Generator(device=device).manual_seed(
                spec.seed * 1_000_003 + 7_919 * (self.dist.rank + 1))
        self.rng = np.random.default_rng(spec.seed)
        workers = _workers(runtime)
        self.train, self.test = make_sources(bundle, device, spec.train.image_size, workers, runtime.image_cache)
        self.image_size = self.train.image_size
        self.family = info.family
        self.val: Source | None = None
        if bundle.files is not None:
            crop = spec.train.image_size or info.size
            self.image_size = (crop, crop)  # views are crops of the stored base-size squares
            if spec.train.val_select:
                self.val = FileSource(bundle.files["val"], device, base_size(crop), crop, workers,
                                      runtime.image_cache)
        elif bundle.val_labels is not None:  # the val half of a resident test set (ltbench.data.val_split)
            assert bundle.val_images is not None  # val_split sets the images and labels together
            self.val = ResidentSource(bundle.val_images, bundle.val_labels, device)
        self._norm = (torch.tensor(info.mean, device=device).view(1, -1, 1, 1),
                      torch.tensor(info.std, device=device).view(1, -1, 1, 1))
        self._class_table = class_index_table(self.train.labels, self.num_classes)
        self._probs: dict[tuple[Any, ...], torch.Tensor] = {}
        self.last_logits: dict[int, torch.Tensor] = {}  # id(source) -> float16 logits of its latest evaluation

        entry = get_method(spec.method)
        self.method: Method[Any] = entry.cls(entry.cls.Hparams(**spec.hparams), self)
        self.model = build_model(spec.train.backbone, self.num_classes, info.channels,
                                 self.method.model_options()).to(device)
        self.method.setup_model(self.model)
        self.channels_last = runtime.channels_last if runtime.channels_last is not None else device.type == "cuda"
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._forward = torch.compile(self.model) if runtime.compile else self.model
        self._eval_forward = self._forward
        if self.dist.active:  # gradients all-reduced; BN statistics stay per rank (as DataParallel)
            from torch.nn.parallel import DistributedDataParallel

            self._forward = DistributedDataParallel(self._forward,
                                                    device_ids=[device.index] if device.type == "cuda" else None)
        t = spec.train
        params = self.method.param_groups(self.model) or self.model.parameters()
        self.optimizer = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum,
                                         weight_decay=t.weight_decay)

    # ----- services -------------------------------------------------------------------------
    def autocast(self) -> AbstractContextManager[Any]:
        if self.spec.train.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self._norm[0]) / self._norm[1]
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, views: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        sizes = [v.shape[0] for v in views]
        with self.autocast():
            logits, feats = self._forward(self.normalize(torch.cat(views)))
        logits = logits.float().split(sizes)
        feats = feats.float().split(sizes) if feats is not None else [None] * len(sizes)
        return list(zip(logits, feats, strict=True))

    def augment(self, pipeline: str, images: torch.Tensor) -> torch.Tensor:
        return pipelines.apply(pipeline, images, self.generator, self.family, self.image_size[0])

    def draw(self, kind: str, n: int, **params: float) -> tuple[torch.Tensor, torch.Tensor]:
        key = (kind, tuple(sorted(params.items())))
        if key not in self._probs:
            probs = class_sampling_probabilities(self.class_counts, kind, **params)
            self._probs[key] = torch.as_tensor(probs, dtype=torch.float32, device=self.device)
        idx = sample_indices(self._probs[key], *self._class_table, n, self.generator)
        return self.train.fetch(idx)

    # ----- loop -----------------------------------------------------------------------------
    def train_epoch(self, epoch: int, on_step: Callable[[], object] | None = None) -> dict[str, float]:
        t = self.spec.train
        # the config fills both from the schedule when the spec is resolved (ltbench.config, resolve_schedule)
        assert t.warmup_epochs is not None and t.lr_milestones is not None
        lr = lr_at(epoch, t.lr, t.schedule, t.epochs, t.warmup_epochs, t.lr_milestones)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.method.on_epoch_start(epoch)
        self.model.train()
        perm = torch.randperm(len(self.train), generator=self.order_generator, device=self.device)
        perm = self.dist.shard(perm)  # this rank's share (all of it in a single-process run)
        sums: dict[str, torch.Tensor] = {}
        steps, data_time = 0, 0.0
        batches = self.train.batches(perm, t.batch_size // self.dist.world)  # drop_last=False, as the references
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            images, labels = batch
            views = [self.augment(p, images) for p in self.method.views()]
            data_time += time.perf_counter() - t0
            self.train_step(images, labels, views, sums)
            steps += 1
            faults.reached("step")  # tests: a kill in the middle of an epoch
            if on_step is not None:
                on_step()
        if self.dist.active:  # the mean over ranks (one all-reduce per epoch)
            keys = sorted(sums)
            sums = dict(zip(keys, self.dist.all_reduce_mean(torch.stack([sums[k] for k in keys])), strict=True))
        logs = {k: float(v) / steps for k, v in sums.items()}  # one sync per epoch
        if not math.isfinite(logs["loss"]):
            raise RunDiverged(f"non-finite training loss at epoch {epoch}")
        return {"lr": lr, **logs, "data_time_s": data_time}

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, views: list[torch.Tensor],
                   sums: dict[str, torch.Tensor]) -> None:
        """One optimiser step on an augmented batch; the log scalars accumulate in `sums` on the device
        (no host sync inside the step: tests/test_host_sync.py counts them)."""
        out = self.method.training_step(Batch(images, labels, views))
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()
        for key, value in {"loss": out.loss, **out.logs}.items():
            sums[key] = sums.get(key, 0.0) + value.detach().float()

    @torch.inference_mode()
    def predict(self, source: Source | None = None, keep_logits: bool = False) -> torch.Tensor:
        """Top-1 predictions; with keep_logits, `self.last_logits[id(source)]` also holds the float16 logits
        (argmax is taken before the cast, so predictions are the same either way)."""
        source = self.test if source is None else source
        self.model.eval()
        preds, kept = [], []
        order = self.dist.eval_shard(len(source), self.device)  # all of it in a single-process run
        for images, _ in source.batches(order, EVAL_BATCH):
            x = images.float() / 255.0
            with self.autocast():
                logits, _ = self._eval_forward(self.normalize(x))
            preds.append(logits.argmax(dim=1))
            if keep_logits:
                kept.append(logits.to(torch.float16))
        if keep_logits:  # saved as predictions.npz at the end (ltbench.predictions)
            self.last_logits[id(source)] = self.dist.gather_predictions(torch.cat(kept), len(source)).cpu()
        return self.dist.gather_predictions(torch.cat(preds), len(source)).cpu()

    def evaluate_val(self) -> float:
        """Top-1 on the val list (selection only; never reported as the test number)."""
        preds = self.predict(self.val, keep_logits=True)
        assert self.val is not None  # called only where the run has a val list
        return float(100.0 * (preds == self.val.labels.cpu()).double().mean())

    def evaluate(self) -> dict[str, Any]:
        preds = self.predict(keep_logits=True)
        labels = self.bundle.test_labels
        rule = self.spec.train.shot_rule
        out = summarize(confusion_matrix(preds, labels, self.num_classes), self.class_counts, rule)
        for name, mask in self.bundle.test_meta.items():
            if mask.dtype == torch.bool:  # e.g. shapes: was this (class, background) pair seen in training?
                seen = subset_accuracy(preds, labels, mask, self.class_counts, rule)
                unseen = subset_accuracy(preds, labels, ~mask, self.class_counts, rule)
                out[f"{name}_split"] = {"seen": seen, "unseen": unseen,
                                        "gap": {k: (None if seen[k] is None or unseen[k] is None
                                                    else seen[k] - unseen[k]) for k in seen}}
            if name == "seen":  # the same classes on seen vs unseen backgrounds (ltbench.background)
                out.update(background_metrics(preds, labels, mask, self.num_classes))
        return out

    # ----- checkpoints ----------------------------------------------------------------------
    def state(self, next_epoch: int, best: dict[str, Any], elapsed: float) -> dict[str, Any]:
        return {
            "spec_hash": self.spec.hash, "next_epoch": next_epoch, "best": best, "elapsed": elapsed,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "method": self.method.state_dict(), "generator": self.generator.get_state(),
            "rng": self.rng.bit_generator.state, "torch_cpu_rng": torch.get_rng_state(),
            **self._dist_state(),
        }

    def _dist_state(self) -> dict[str, Any]:
        """Per-rank random streams of a multi-process run (a collective: every rank calls it)."""
        if not self.dist.active:
            return {}
        return {"world_size": self.dist.world, "order_generator": self.order_generator.get_state(),
                "rank_generators": self.dist.gather_objects(self.generator.get_state())}

    def load_state(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.method.load_state_dict(ckpt["method"])
        self.generator.set_state(ckpt["generator"])
        if ckpt.get("world_size", 1) != self.dist.world:
            raise LtbenchError(f"{CHECKPOINT} was written by a run on {ckpt.get('world_size', 1)} process(es); resume "
                               f"it with the same number (this one has {self.dist.world}) or move it away")
        if self.dist.active:
            self.order_generator.set_state(ckpt["order_generator"])
            self.generator.set_state(ckpt["rank_generators"][self.dist.rank])
        self.rng.bit_generator.state = ckpt["rng"]
        torch.set_rng_state(ckpt["torch_cpu_rng"])
