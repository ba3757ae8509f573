"""The one trainer: every method runs through `train(spec, runtime)`.

The training set lives on the device as uint8; each step gathers an index batch from a per-epoch
permutation, augments it there in batched calls with per-sample random parameters, and hands the
views to the method, which returns a loss. The trainer owns the optimiser, the LR schedule,
precision, evaluation, metrics and checkpoints, and never branches on a method's name.
"""

from __future__ import annotations

import io
import math
import os
import platform
import socket
import subprocess
import sys
import time
import traceback
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ltbench import __version__, augment_imagenet, cpu, faults
from ltbench import augment as aug
from ltbench import distributed as ltdist
from ltbench.autoaugment import cifar10_policy
from ltbench.background import background_metrics
from ltbench.config import RunSpec
from ltbench.data.datasets import DataBundle, build_bundle
from ltbench.data.sampling import class_index_table, class_sampling_probabilities, sample_indices
from ltbench.errors import LtbenchError
from ltbench.locks import RunLocked, run_lock
from ltbench.method import Batch, Method, TrainerServices
from ltbench.metrics import confusion_matrix, subset_accuracy, summarize
from ltbench.models import build_model
from ltbench.protocol import protocol_record
from ltbench.registry import get_method
from ltbench.results import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    load_final,
    orphan_temp_files,
    read_json,
    read_jsonl,
    refuse_symlinks,
    warn_stderr,
)
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


# ----- pipelines ---------------------------------------------------------------------------------

def _pipeline(name: str, images: torch.Tensor, gen: torch.Generator, family: str = "cifar",
              size: int | None = None) -> torch.Tensor:
    """Named augmentation pipelines (uint8 in, float [0, 1] out), all batched on the device.

    The imagenet family has its own `standard` / `sim` / `randaug` / `none` (ltbench.augment_imagenet),
    producing `size`-pixel views from the stored squares.
    """
    if family == "imagenet":
        try:
            return augment_imagenet.pipeline(name, images, gen, size or images.shape[-1])
        except ValueError as exc:
            raise LtbenchError(str(exc)) from None
    if name == "randaug":
        raise LtbenchError("the randaug pipeline is defined for the imagenet family (imagenet-lt) only")
    if name == "standard":  # RandomCrop(pad 4) + flip (LDAM-DRW / CMO, spec §3.1)
        return aug.random_crop_flip(images, padding=4, generator=gen)
    if name == "cutout":  # crop + flip + CutOut(1 x 16) before normalisation (spec §5.1)
        return aug.cutout(aug.random_crop_flip(images, padding=4, generator=gen), length=16, generator=gen)
    if name == "sim":  # SupCon CIFAR SimAugment (spec §5.2)
        return aug.sim_augment(images, generator=gen)
    if name == "autoaug":  # crop + flip + AutoAugment CIFAR10Policy (BCL/ConCutMix classification view)
        return cifar10_policy(aug.random_crop_flip(images, padding=4, generator=gen), gen)
    if name == "none":
        return images.float() / 255.0
    raise LtbenchError(f"unknown augmentation pipeline {name!r}; choose standard, cutout, sim, autoaug "
                       "or none")


def _workers(runtime: RuntimeOptions) -> int:
    if runtime.workers is not None:
        return runtime.workers
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(8, (os.cpu_count() or 1) // per_node))


def make_sources(bundle: DataBundle, device: torch.device, image_size: int | None = None, workers: int = 0,
                 cache_dir: Path | None = None):
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
        self.val = None
        if bundle.files is not None:
            crop = spec.train.image_size or info.size
            self.image_size = (crop, crop)  # views are crops of the stored base-size squares
            if spec.train.val_select:
                self.val = FileSource(bundle.files["val"], device, base_size(crop), crop, workers,
                                      runtime.image_cache)
        elif bundle.val_labels is not None:  # the val half of a resident test set (ltbench.data.val_split)
            self.val = ResidentSource(bundle.val_images, bundle.val_labels, device)
        self._norm = (torch.tensor(info.mean, device=device).view(1, -1, 1, 1),
                      torch.tensor(info.std, device=device).view(1, -1, 1, 1))
        self._class_table = class_index_table(self.train.labels, self.num_classes)
        self._probs: dict[tuple, torch.Tensor] = {}
        self.last_logits: dict[int, torch.Tensor] = {}  # id(source) -> float16 logits of its latest evaluation

        entry = get_method(spec.method)
        self.method: Method = entry.cls(entry.cls.Hparams(**spec.hparams), self)
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
    def autocast(self):
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
        return _pipeline(pipeline, images, self.generator, self.family, self.image_size[0])

    def draw(self, kind: str, n: int, **params: float) -> tuple[torch.Tensor, torch.Tensor]:
        key = (kind, tuple(sorted(params.items())))
        if key not in self._probs:
            probs = class_sampling_probabilities(self.class_counts, kind, **params)
            self._probs[key] = torch.as_tensor(probs, dtype=torch.float32, device=self.device)
        idx = sample_indices(self._probs[key], *self._class_table, n, self.generator)
        return self.train.fetch(idx)

    # ----- loop -----------------------------------------------------------------------------
    def train_epoch(self, epoch: int, on_step=None) -> dict[str, float]:
        t = self.spec.train
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
            images, labels = next(batches, (None, None))
            if images is None:
                break
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
    def predict(self, source=None, keep_logits: bool = False) -> torch.Tensor:
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
    def state(self, next_epoch: int, best: dict, elapsed: float) -> dict[str, Any]:
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
            raise LtbenchError(f"last.pt was written by a run on {ckpt.get('world_size', 1)} process(es); resume "
                               f"it with the same number (this one has {self.dist.world}) or move it away")
        if self.dist.active:
            self.order_generator.set_state(ckpt["order_generator"])
            self.generator.set_state(ckpt["rank_generators"][self.dist.rank])
        self.rng.bit_generator.state = ckpt["rng"]
        torch.set_rng_state(ckpt["torch_cpu_rng"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


class DamagedCheckpoint(LtbenchError):
    """last.pt cannot be resumed from; the run is left as it was (not recorded as failed)."""

    def __init__(self, path: Path):
        super().__init__(f"checkpoint {path} is damaged or not ltbench's (move it away or --force)")


# what Trainer.state writes; load_checkpoint refuses anything else before a tensor is touched
_CKPT_KEYS = ("spec_hash", "next_epoch", "best", "elapsed", "model", "optimizer", "method", "generator", "rng",
              "torch_cpu_rng")


def load_checkpoint(path: Path, spec: RunSpec) -> dict[str, Any] | None:
    """last.pt as plain containers and tensors, or None; anything else is DamagedCheckpoint.

    weights_only=True: the restricted unpickler builds only tensors and plain containers, so a crafted
    pickle cannot call code (PyTorch docs, torch.load: "weights_only").
    """
    if not path.is_symlink() and not path.exists():
        return None
    if path.is_symlink() or not path.is_file():
        raise DamagedCheckpoint(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn file cannot occur (atomic rename), but a foreign or crafted one can
        raise DamagedCheckpoint(path) from None
    other = ckpt.get("spec_hash") if isinstance(ckpt, dict) else None
    if isinstance(other, str) and other != spec.hash:
        raise LtbenchError(f"{path} belongs to another spec ({other} != {spec.hash}); "
                           "refusing to resume across specs")
    if not _checkpoint_shape_ok(ckpt, spec.train.epochs):
        raise DamagedCheckpoint(path)
    return ckpt


def _checkpoint_shape_ok(ckpt: Any, epochs: int) -> bool:
    """The keys and types Trainer.state writes, with 1 <= next_epoch <= epochs (a resume never skips ahead)."""
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in _CKPT_KEYS):
        return False
    nxt, best, elapsed = ckpt["next_epoch"], ckpt["best"], ckpt["elapsed"]
    if isinstance(nxt, bool) or not isinstance(nxt, int) or not 1 <= nxt <= epochs:
        return False
    if not isinstance(best, dict) or "epoch" not in best or "top1" not in best:
        return False
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not math.isfinite(elapsed):
        return False
    return (isinstance(ckpt["model"], dict) and isinstance(ckpt["optimizer"], dict)
            and isinstance(ckpt["method"], dict) and isinstance(ckpt["rng"], dict)
            and isinstance(ckpt["generator"], torch.Tensor) and isinstance(ckpt["torch_cpu_rng"], torch.Tensor))


def environment(device: torch.device, runtime: RuntimeOptions, trainer: Trainer | None = None) -> dict[str, Any]:
    src = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *args], cwd=src, capture_output=True, text=True, timeout=10)
            return res.stdout.strip() if res.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None

    import torchvision

    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "ltbench": __version__, "git_sha": git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "numpy": np.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "threads": torch.get_num_threads(), "hostname": socket.gethostname(), "pid": os.getpid(),
        "argv": runtime.argv, "channels_last": trainer.channels_last if trainer else None,
        "compile": runtime.compile, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_env": cpu.process_settings(),
    }


def run_directory(spec: RunSpec, results_dir: Path) -> Path:
    return Path(results_dir) / spec.run_id


def _finished(run_dir: Path, warn: bool = False) -> dict[str, Any] | None:
    try:
        return load_final(run_dir)
    except ValueError as exc:  # damaged or foreign final.json: never shown as this run's result; redone
        if warn:
            print(f"warning: {exc}; the run is trained again", file=sys.stderr, flush=True)
        return None


def train(spec: RunSpec, runtime: RuntimeOptions) -> dict[str, Any]:
    """Train (or resume, or skip) one run; returns its final.json content.

    Raises RunLocked when another live process holds the run directory's lock.
    """
    run_dir = run_directory(spec, runtime.results_dir)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:  # under torchrun, rank 0 decides for all (below)
        done = _finished(run_dir, warn=True)
        if done is not None and not runtime.force:
            return done
    device = resolve_device(runtime.device)
    if device.type == "cpu":
        cpu.keep_buffers_on_heap()  # speed only: big activation buffers are reused, not re-mmapped each step
    dist, device = ltdist.from_env(device)  # torchrun: join the process group (rank 0 writes the directory)
    try:
        return _train(spec, runtime, run_dir, device, dist)
    finally:
        dist.close()


def _train(spec: RunSpec, runtime: RuntimeOptions, run_dir: Path, device: torch.device,
           dist: ltdist.Dist) -> dict[str, Any]:
    bundle = build_bundle(spec.dataset, spec.ratio, spec.profile, spec.data_seed, spec.max_per_class,
                          runtime.data_dir, runtime.download, split_dir=runtime.split_dir,
                          with_val=spec.train.val_select, class_order=spec.class_order)
    # One trainer per run directory (two sweeps on one results folder): rank 0 takes the lock, only once
    # the inputs are known to be good (bad input leaves no directory behind), and tells every rank
    # whether to train, to return the result another process finished meanwhile, or to give up.
    with ExitStack() as held:
        verdict = ("train", "")
        if dist.is_main:
            refuse_symlinks(run_dir)  # before the lock: nothing in a run directory is written through a link
            try:
                held.enter_context(run_lock(run_dir))
                if _finished(run_dir) is not None and not runtime.force:
                    verdict = ("done", "")
            except RunLocked as exc:
                verdict = ("locked", str(exc))
        verdict = dist.gather_objects(verdict)[0]
        if verdict[0] == "locked":
            raise RunLocked(verdict[1])
        if verdict[0] == "done":
            return _finished(run_dir)
        if dist.is_main:
            _claim(run_dir, spec, runtime.force)
        dist.barrier()
        return _train_claimed(spec, runtime, run_dir, device, dist, bundle)


def _train_claimed(spec: RunSpec, runtime: RuntimeOptions, run_dir: Path, device: torch.device,
                   dist: ltdist.Dist, bundle: DataBundle) -> dict[str, Any]:
    """Train a claimed run; any failure is recorded in failed.json while the lock is still held."""
    try:
        return _loop(Trainer(spec, bundle, device, runtime, dist), run_dir, runtime)
    except RunDiverged as exc:
        _record_failure(run_dir, dist, exc, {"reason": str(exc), "kind": "diverged"})
        raise
    except DamagedCheckpoint:
        raise  # the user's to move away; the directory stays as it was (resumable once it is)
    except LtbenchError as exc:  # e.g. a last.pt of another spec: the user's to fix, the reason is kept
        _record_failure(run_dir, dist, exc, {"reason": str(exc), "kind": "error"})
        raise
    except KeyboardInterrupt:
        raise  # stopped, not failed: the run resumes from last.pt
    except Exception as exc:
        _record_failure(run_dir, dist, exc, {"reason": f"{type(exc).__name__}: {exc}",
                                             "traceback": traceback.format_exc()})
        raise


def _record_failure(run_dir: Path, dist: ltdist.Dist, exc: BaseException, record: dict[str, Any]) -> None:
    if dist.is_main:
        atomic_write_json(run_dir / "failed.json", record)
    exc.failure_recorded = True  # callers (the sweep worker) must not write another, outside the lock


def _claim(run_dir: Path, spec: RunSpec, force: bool) -> None:
    """Create the run directory, or check that an existing one holds this very spec."""
    spec_path = run_dir / "spec.json"
    if spec_path.exists():
        try:
            same = RunSpec.from_dict(read_json(spec_path)).canonical_json() == spec.canonical_json()
        except (ValueError, TypeError, KeyError):
            same = False
        if not same:
            raise LtbenchError(f"{spec_path} is damaged or does not match this run's spec; "
                               "move the directory away to rerun")
    run_dir.mkdir(parents=True, exist_ok=True)
    if force:
        for name in ("final.json", "failed.json", "last.pt", "metrics.jsonl"):
            (run_dir / name).unlink(missing_ok=True)
    (run_dir / "failed.json").unlink(missing_ok=True)
    for tmp in orphan_temp_files(run_dir):  # half-written files of writers a kill interrupted
        tmp.unlink(missing_ok=True)
    atomic_write_json(spec_path, spec.to_dict())


def _loop(tr: Trainer, run_dir: Path, runtime: RuntimeOptions) -> dict[str, Any]:
    spec = tr.spec
    ckpt = load_checkpoint(run_dir / "last.pt", spec)
    start, best, elapsed = 0, {"epoch": None, "top1": None}, 0.0
    if ckpt is not None:
        try:
            tr.load_state(ckpt)
        except LtbenchError:
            raise
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError, AttributeError):
            raise DamagedCheckpoint(run_dir / "last.pt") from None  # right keys, wrong contents
        start, best, elapsed = ckpt["next_epoch"], ckpt["best"], ckpt["elapsed"]
    # keep only the metric lines of finished epochs (a kill may have landed after an append)
    main = tr.dist.is_main  # only rank 0 writes the run directory
    if main:
        rows = [r for r in read_jsonl(run_dir / "metrics.jsonl", warn_stderr) if r.get("epoch", start) < start]
        atomic_write_bytes(run_dir / "metrics.jsonl", "".join(_jsonline(r) for r in rows).encode())
        # one line per training session: how often a run was resumed, by whom, from which epoch
        append_jsonl(run_dir / "sessions.jsonl", {"start_epoch": start, "pid": os.getpid(),
                                                  "host": socket.gethostname(), "started": time.time()})
        atomic_write_json(run_dir / "env.json", {**environment(tr.device, runtime, tr), "world_size": tr.dist.world})
    steps = math.ceil(len(tr.train) / spec.train.batch_size)
    progress = _Progress(runtime.progress and main, spec, start, steps)
    from contextlib import closing

    from ltbench.tracking import NullTracker, make_tracker

    tracker = make_tracker(runtime.tracker, run_dir) if main else NullTracker()
    summary = None
    with progress, closing(tracker):
        for epoch in range(start, spec.train.epochs):
            if runtime.stop_after_epochs is not None and epoch - start >= runtime.stop_after_epochs:
                return {}
            t0 = time.perf_counter()
            logs = tr.train_epoch(epoch, progress.step)
            row = {"epoch": epoch, **logs, "epoch_time_s": time.perf_counter() - t0}
            last = epoch == spec.train.epochs - 1
            if last or (epoch + 1) % spec.train.eval_every == 0:
                summary = tr.evaluate()
                if best["top1"] is None or summary["top1"] > best["top1"]:
                    best = {"epoch": epoch, "top1": summary["top1"]}
                row.update({k: summary[k] for k in ("top1", "many", "medium", "few")})
                if tr.val is not None:  # val selection: the test numbers of the best-val epoch
                    row["val_top1"] = tr.evaluate_val()
                    if best.get("val") is None or row["val_top1"] > best["val"]["val_top1"]:
                        best["val"] = {"epoch": epoch, "val_top1": row["val_top1"],
                                       **{k: summary[k] for k in ("top1", "many", "medium", "few")}}
            elapsed += time.perf_counter() - t0
            state = tr.state(epoch + 1, best, elapsed)  # every rank: gathers the per-rank random streams
            if main:
                append_jsonl(run_dir / "metrics.jsonl", row)
                tracker.log(row)
                save_checkpoint(run_dir / "last.pt", state)
            progress.epoch_done(epoch, row.get("top1"))
    if summary is None:  # killed after the last checkpoint but before final.json: evaluate that state
        summary = tr.evaluate()
    final = {
        **summary, "train_class_counts": tr.class_counts, "best_epoch": best["epoch"],
        "best_top1": best["top1"], "best_selection": "oracle (test-selected)",
        "subset_sha": tr.bundle.subset_sha, "wall_time_s": round(elapsed, 3),
        "run_id": spec.run_id, "spec_hash": spec.hash, "epochs": spec.train.epochs,
        "protocol": protocol_record(spec.to_dict(), tr.class_counts, tr.method.views(), tr.dist.world,
                                    tr.image_size[0]),
    }
    if tr.dist.active:
        final["world_size"] = tr.dist.world
    if tr.val is not None:
        final["val_selected"] = best.get("val")
        if tr.bundle.val_labels is not None:  # reported numbers are on the test half (ltbench.data.val_split)
            final["eval_set"] = "test-half"
        if id(tr.val) not in tr.last_logits:  # killed before final.json: the val outputs once more
            tr.evaluate_val()
    if main:  # the last epoch's outputs beside final.json, their hash inside it (ltbench.predictions)
        final["predictions"] = _save_predictions(tr, run_dir)
        atomic_write_json(run_dir / "final.json", final)
    tr.dist.barrier()  # the other ranks return once final.json exists
    return final


def _save_predictions(tr: Trainer, run_dir: Path) -> dict[str, Any]:
    from ltbench.predictions import write_predictions

    def outputs(source) -> tuple[np.ndarray, np.ndarray]:
        return tr.last_logits[id(source)].float().numpy(), source.labels.cpu().numpy()

    return write_predictions(run_dir, *outputs(tr.test), val=outputs(tr.val) if tr.val is not None else None)


def _jsonline(row: dict) -> str:
    import json

    return json.dumps(row, sort_keys=True) + "\n"


class _Progress:
    """A rich progress bar with ETA over all steps of the run (silent when disabled)."""

    def __init__(self, enabled: bool, spec: RunSpec, start_epoch: int, steps_per_epoch: int):
        self.enabled = enabled
        self.steps_per_epoch = steps_per_epoch
        self.spec = spec
        self.start_epoch = start_epoch
        self.bar = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task(f"{self.spec.run_id} epoch {self.start_epoch}",
                                          total=(self.spec.train.epochs - self.start_epoch) * self.steps_per_epoch)
        return self

    def step(self) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def epoch_done(self, epoch: int, top1: float | None) -> None:
        if self.bar is not None:
            shown = "" if top1 is None else f" top1 {top1:.2f}"
            self.bar.update(self.task, description=f"{self.spec.run_id} epoch {epoch + 1}/{self.spec.train.epochs}"
                                                   f"{shown}")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False
