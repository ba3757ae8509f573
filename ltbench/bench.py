"""`ltbench bench`: where a training step's time goes, measured with the real trainer in one process.

Every figure comes from *variants* (one step each: a bare model step, a full trainer step, an input
pipeline, a saliency call, ...) that run **interleaved** in a fresh random order in every round. A
round times `steps` calls of each variant, so a burst of outside load hits all variants alike. Each
variant reports its median over rounds with [min, max]; every ratio is computed **per round** (both
sides from the same round) and then summarised the same way. Speed is shown by this command, never
by timed tests (DESIGN.md "Performance stance").

What is measured (a *case* is one kind of training step: ERM, or e.g. SMCL's masked and plain steps):

1. ``bare:<case>``: forward + backward + optimiser step of the case's model on pre-staged,
   pre-normalised tensors of exactly the shapes the method forwarded (recorded on a warm-up step);
2. ``full:<case>``: what `Trainer.train_epoch` does per step: gather the batch, build the method's
   views, ``method.training_step`` (target sampling, saliency, masking, loss), backward, step, and the
   on-device log sums. ``overhead_ratio = full / bare``; ``step_vs_erm = full / full:erm``, against
   ``predicted_step_vs_erm`` = images forwarded per step / images forwarded by ERM;
3. ``input:ours`` (gather + the method's view pipelines + normalisation, as the trainer feeds the
   model) against ``input:classic-w<k>``, a PIL + `DataLoader` pipeline with the same augmentations
   per sample (torchvision transforms); ``pipeline_speedup = classic-w0 / ours``;
4. ``saliency:<operator>`` on the batch's first view (SMCL masks that view), and its share of the
   ERM step; also two candidate replacements the trainer does not use yet (docs/performance.md):
   ``fine-grained-threaded`` (the same OpenCV maps over threads) and ``cached-map`` (per-image maps
   computed once, moved through the view's crop/flip; `ltbench.saliency_cache`); and ``model-cam``, the
   model-derived map of SMCL's ``mask_locator=model-saliency`` (one extra no-grad forward of the view,
   `ltbench.model_saliency`; a step that makes it counts it in ``predicted_step_vs_erm`` as a third of a
   trained image each, ``nograd_images_per_step``);
5. ERM bare-step variants: the other precision (bf16 autocast vs fp32), the other memory layout
   (channels-last vs contiguous), bf16 + channels-last, and, with ``compile=True``, ``torch.compile``.

Noise: the CPU is shared. Outside load shows in the per-round 1-minute load averages of the result's
``config``; with several busy processes, OpenMP's spinning threads can slow every variant several-fold
(docs/performance.md), so compare only rounds and runs taken under similar load.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import math
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ltbench.cpu import keep_buffers_on_heap
from ltbench.errors import LtbenchError

__all__ = ["BenchOptions", "TARGETS", "run_bench", "summarize", "targets_report"]

DEFAULT_WORKERS = (0, 2)
CHEAP_REPS = 10  # calls per round for the cheap variants (input path, saliency): they take milliseconds

# (key in the result, comparison, limit, description) -- the targets, shown, never asserted
TARGETS: tuple[tuple[str, str, float, str], ...] = (
    ("erm_overhead_ratio", "<=", 1.05, "ERM full step <= 1.05 x bare model step"),
    ("pipeline_speedup", ">=", 10.0, "input path >= 10 x the classic PIL path (DataLoader, workers=0)"),
    ("saliency_share_default", "<=", 0.05, "saliency per batch <= 5 % of the ERM step (default operator)"),
    ("bf16_speedup", ">=", 1.8, "bf16 autocast >= 1.8 x fp32 (ERM step)"),
)
MULTI_VIEW_LIMIT = 1.10  # a method's step <= 1.10 x (predicted images forwarded x ERM step)


@dataclass
class BenchOptions:
    method: str = "erm"
    dataset: str = "shapes"
    ratio: float | str = 100
    steps: int = 3  # timed calls per model variant per round
    rounds: int = 5
    batch_size: int | None = 128  # None: the method's recipe (e.g. SMCL's 256 on CIFAR)
    device: str = "auto"
    precision: str | None = None  # None: the spec's (fp32 unless --set precision=bf16)
    channels_last: bool | None = None  # None: the trainer's default (on for CUDA)
    compile: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    preset: str = "paper"
    workers: Sequence[int] = DEFAULT_WORKERS  # DataLoader workers of the classic input path
    cheap_reps: int = CHEAP_REPS
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    malloc_heap: bool = False  # glibc: keep big CPU buffers on the heap (see `keep_buffers_on_heap`)
    data_dir: Any = None
    download: bool = False


# ----- statistics --------------------------------------------------------------------------------

def summarize(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max) of per-round values."""
    vals = [float(v) for v in values]
    return statistics.median(vals), min(vals), max(vals)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class _Variant:
    name: str
    step: Callable[[], Any]
    reps: int
    before: Callable[[], Any] | None = None  # untimed, once per round before the timed calls
    after: Callable[[], Any] | None = None  # untimed, once per round after them


def _time_variant(v: _Variant, device: torch.device) -> float:
    """Milliseconds per call of one variant in one round (only the calls are inside the clock)."""
    if v.before is not None:
        v.before()
    gc.collect()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(v.reps):
        v.step()
    _sync(device)
    elapsed = time.perf_counter() - t0
    if v.after is not None:
        v.after()
    return elapsed * 1000.0 / v.reps


# ----- cases: one kind of training step each -----------------------------------------------------

@dataclass
class _Case:
    name: str
    spec: Any
    trainer: Any
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


def _index_batches(trainer, batch_size: int, count: int) -> list[torch.Tensor]:
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


def _full_step(case: _Case) -> None:
    """One step exactly as `Trainer.train_epoch` runs it (the batch comes from a prepared index list)."""
    from ltbench.method import Batch

    tr = case.trainer
    images, labels = tr.train.fetch(case.next_indices())
    views = [tr.augment(p, images) for p in tr.method.views()]
    out = tr.method.training_step(Batch(images, labels, views))
    tr.optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    tr.optimizer.step()
    for key, value in {"loss": out.loss, **out.logs}.items():
        case.sums[key] = case.sums.get(key, 0.0) + value.detach().float()


def _record_forwards(case: _Case) -> None:
    """Run one (untimed) full step that records what the method forwards: shapes and pre-normalised copies."""
    tr = case.trainer
    staged, labels = [], []
    original = tr.forward

    def recording(views):
        x = tr.normalize(torch.cat(views))
        staged.append(x.detach().clone(memory_format=torch.preserve_format))
        labels.append(torch.randint(0, tr.num_classes, (x.shape[0],), generator=tr.generator, device=tr.device))
        return original(views)

    tr.forward = recording  # an instance attribute shadows the method for this one step
    try:
        _full_step(case)
    finally:
        del tr.forward
    if not staged:
        raise LtbenchError(f"method {case.spec.method} forwarded nothing in a training step")
    case.staged, case.staged_labels = staged, labels
    case.images_per_step = sum(x.shape[0] for x in staged)
    case.nograd_images = getattr(tr.method, "nograd_images", 0)


def _bare_step_fn(model_fn, optimizer, inputs, labels, autocast) -> Callable[[], None]:
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
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _autocast_for(device: torch.device, precision: str):
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext


def _sgd_like(model: torch.nn.Module, spec) -> torch.optim.Optimizer:
    t = spec.train
    return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)


def _step_kinds(spec) -> list[tuple[str, dict[str, Any]]]:
    """The step kinds of a method, each with the overrides that force it (untouched method: one kind)."""
    hp, epochs = spec.hparams, spec.train.epochs
    if hp.get("mask_prob", 0.0) > 0:
        return [("masked", {"mask_prob": 1.0, "mask_start_epoch": 0}), ("plain", {"mask_prob": 0.0})]
    if hp.get("mix_prob", 0.0) > 0:  # (ConCutMix has no mixing window: only the keys the method has)
        forced = {"mix_prob": 1.0, "mix_start_epoch": 0, "mix_end_epoch": epochs}
        return [("mixed", {k: v for k, v in forced.items() if k in hp}), ("plain", {"mix_prob": 0.0})]
    return [("step", {})]


# ----- classic input path (the reference codebases' PIL pipeline) --------------------------------

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


def classic_transform(pipeline: str, size: int, mean: Sequence[float], std: Sequence[float]):
    """The per-sample torchvision (PIL) transform that does what the named batched pipeline does."""
    from torchvision import transforms as T

    tail = [T.ToTensor(), T.Normalize(mean, std)]
    if pipeline == "standard":
        return T.Compose([T.RandomCrop(size, padding=4), T.RandomHorizontalFlip(), *tail])
    if pipeline == "cutout":
        return T.Compose([T.RandomCrop(size, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), _Cutout(16),
                          T.Normalize(mean, std)])
    if pipeline == "sim":
        return T.Compose([T.RandomResizedCrop(size, scale=(0.2, 1.0)), T.RandomHorizontalFlip(),
                          T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
                          *tail])
    if pipeline == "autoaug":  # BCL / ConCutMix CIFAR classification view (ltbench.autoaugment)
        policy = T.AutoAugment(T.AutoAugmentPolicy.CIFAR10, fill=128)
        return T.Compose([T.RandomCrop(size, padding=4), T.RandomHorizontalFlip(), policy, *tail])
    if pipeline == "none":
        return T.Compose(tail)
    raise LtbenchError(f"no classic equivalent of pipeline {pipeline!r}")


class ClassicDataset(torch.utils.data.Dataset):
    """uint8 HWC numpy images -> PIL -> one transformed tensor per view, and the label."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, transforms: Sequence[Callable]):
        self.images, self.labels, self.transforms = images_hwc, labels, list(transforms)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        arr = self.images[i]
        img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        return (*[t(img) for t in self.transforms], int(self.labels[i]))


def _classic_variant(name: str, dataset: ClassicDataset, batch_size: int, workers: int, reps: int,
                     device: torch.device) -> _Variant:
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

    return _Variant(name, step, reps, before, after)


# ----- the benchmark -----------------------------------------------------------------------------

def _build_cases(opts: BenchOptions, device, bundle):
    from ltbench.config import SPEC_KEYS, TrainSettings, build_spec
    from ltbench.train import RuntimeOptions, Trainer

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

    def make(name: str, method: str, extra: dict[str, Any], base: dict[str, Any]) -> _Case:
        s = build_spec(method, opts.dataset, opts.ratio, opts.seed, opts.preset, {**base, **extra})
        tr = Trainer(s, bundle, device, runtime)
        tr.method.on_epoch_start(s.train.epochs - 1)  # the late phase: DRW and masking are active
        tr.model.train()
        return _Case(name, s, tr)

    erm = make("erm", "erm", {}, erm_overrides)
    cases = [erm]
    if opts.method != "erm":
        for kind, extra in _step_kinds(spec):
            label = opts.method if kind == "step" else f"{opts.method}:{kind}"
            cases.append(make(label, opts.method, extra, overrides))
    return spec, cases


def run_bench(opts: BenchOptions, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the JSON-able result (see the module docstring for the keys)."""
    from ltbench.data.datasets import build_bundle
    from ltbench.saliency import SALIENCY_METHODS, locate
    from ltbench.train import resolve_device

    say = progress or (lambda _msg: None)
    if opts.steps < 1 or opts.rounds < 1:
        raise LtbenchError(f"steps and rounds must be >= 1, got {opts.steps} and {opts.rounds}")
    if any(w < 0 for w in opts.workers):
        raise LtbenchError(f"DataLoader workers must be >= 0, got {list(opts.workers)}")
    device = resolve_device(opts.device)
    if opts.threads is not None:
        if opts.threads < 1:
            raise LtbenchError(f"threads must be >= 1, got {opts.threads}")
        torch.set_num_threads(opts.threads)
    heap = keep_buffers_on_heap() if opts.malloc_heap else False
    load_before = _loadavg()
    random.seed(opts.seed)
    np.random.seed(opts.seed)

    say("building the data set and the trainers")
    from ltbench.config import build_spec

    probe = build_spec(opts.method, opts.dataset, opts.ratio, opts.seed, opts.preset,
                       {k: v for k, v in opts.overrides.items() if k in ("data_seed", "profile", "max_per_class")})
    bundle = build_bundle(probe.dataset, probe.ratio, probe.profile, probe.data_seed, probe.max_per_class,
                          opts.data_dir, opts.download)
    spec, cases = _build_cases(opts, device, bundle)
    erm, method_cases = cases[0], cases[1:] or cases[:1]
    bs = spec.train.batch_size
    model_reps, cheap_reps = opts.steps, max(opts.steps, opts.cheap_reps)
    n_batches = 2 + opts.rounds * max(model_reps, cheap_reps)
    for case in cases:
        case.indices = _index_batches(case.trainer, bs, n_batches)

    say("warm-up step per case (records the forwarded shapes)")
    for case in cases:
        _record_forwards(case)

    variants: list[_Variant] = []
    for case in cases:
        tr = case.trainer
        variants.append(_Variant(f"bare:{case.name}", _bare_step_fn(tr._forward if hasattr(tr, "_forward")
                                                                    else tr.model, tr.optimizer, case.staged,
                                                                    case.staged_labels, tr.autocast), model_reps))
        variants.append(_Variant(f"full:{case.name}", (lambda c=case: _full_step(c)), model_reps))

    # ERM bare-step variants: the other precision, the other memory layout, compile
    etr = erm.trainer
    precision = spec.train.precision
    other_precision = "fp32" if precision == "bf16" else "bf16"
    variants.append(_Variant(f"bare:erm:{other_precision}",
                             _bare_step_fn(etr.model, etr.optimizer, erm.staged, erm.staged_labels,
                                           _autocast_for(device, other_precision)), model_reps))
    layout_model = copy.deepcopy(etr.model)
    alt_cl = not etr.channels_last
    fmt = torch.channels_last if alt_cl else torch.contiguous_format
    layout_model = layout_model.to(memory_format=fmt)
    layout_inputs = [x.contiguous(memory_format=fmt) for x in erm.staged]
    layout_name = "bare:erm:channels-last" if alt_cl else "bare:erm:contiguous"
    variants.append(_Variant(layout_name, _bare_step_fn(layout_model, _sgd_like(layout_model, erm.spec),
                                                        layout_inputs, erm.staged_labels, etr.autocast),
                             model_reps))
    if precision == "fp32" and alt_cl:  # the CPU's best combination, against the fp32 contiguous step
        variants.append(_Variant("bare:erm:bf16:channels-last",
                                 _bare_step_fn(layout_model, _sgd_like(layout_model, erm.spec), layout_inputs,
                                               erm.staged_labels, _autocast_for(device, "bf16")), model_reps))
    if opts.compile:
        compiled_model = copy.deepcopy(etr.model)
        variants.append(_Variant("bare:erm:compiled",
                                 _bare_step_fn(torch.compile(compiled_model), _sgd_like(compiled_model, erm.spec),
                                               erm.staged, erm.staged_labels, etr.autocast), model_reps))

    # input path: ours (the method's views) vs the classic PIL + DataLoader path
    mtr = method_cases[0].trainer
    view_names = tuple(mtr.method.views())
    input_case = _Case("input", spec, mtr, indices=_index_batches(mtr, bs, n_batches))

    def ours() -> None:
        images, _labels = mtr.train.fetch(input_case.next_indices())
        views = [mtr.augment(p, images) for p in view_names]
        mtr.normalize(torch.cat(views))

    variants.append(_Variant("input:ours", ours, cheap_reps))
    info = bundle.info
    images_hwc = bundle.train_images.permute(0, 2, 3, 1).contiguous().numpy()
    classic = ClassicDataset(images_hwc, bundle.train_labels.numpy(),
                             [classic_transform(p, info.size, info.mean, info.std) for p in view_names])
    for w in opts.workers:
        variants.append(_classic_variant(f"input:classic-w{w}", classic, bs, w, cheap_reps, device))

    # saliency on the batch's first view (the one SMCL masks)
    images, _ = mtr.train.fetch(input_case.indices[0])
    sal_view = mtr.augment(view_names[0], images)
    hp = method_cases[0].spec.hparams
    sal_input = hp.get("saliency_input", "uint8")
    default_op = hp.get("saliency", "fine-grained")
    stats = {} if sal_view.shape[1] == 3 else {"mean": info.mean, "std": info.std}
    for op in SALIENCY_METHODS:
        variants.append(_Variant(f"saliency:{op}",
                                 (lambda op=op: locate(sal_view, "saliency", op, sal_input, None, **stats)),
                                 cheap_reps))
    # model-derived saliency (SMCL mask_locator=model-saliency): the extra no-grad forward + CAM of x1
    from ltbench.model_saliency import class_activation_maps

    cam_tr = method_cases[0].trainer
    cam_x, cam_y = cam_tr.normalize(sal_view), mtr.train.fetch(input_case.indices[0])[1]
    variants.append(_Variant("saliency:model-cam", lambda: class_activation_maps(cam_tr.model, cam_x, cam_y),
                             cheap_reps))
    # candidate replacements of the default operator (not used by the trainer; docs/performance.md)
    from ltbench.augment import crop_flip_params
    from ltbench.saliency import peak
    from ltbench.saliency_cache import SaliencyBank, fine_grained_threaded

    variants.append(_Variant("saliency:fine-grained-threaded",
                             lambda: peak(fine_grained_threaded(sal_view, sal_input, None, **stats)), cheap_reps))
    bank = SaliencyBank.build(mtr.train.images, "fine-grained", sal_input, **stats)
    sal_idx = input_case.indices[0]

    def cached_peaks() -> None:
        top, left, flip = crop_flip_params(sal_idx.shape[0], 4, mtr.generator, device)
        bank.peaks(sal_idx, top, left, flip, 4)

    variants.append(_Variant("saliency:cached-map", cached_peaks, cheap_reps))

    say(f"warm-up of {len(variants)} variants")
    for v in variants:
        _time_variant(dataclasses.replace(v, reps=1), device)

    samples: dict[str, list[float]] = {v.name: [] for v in variants}
    order_rng = random.Random(opts.seed)
    round_load = []
    for r in range(opts.rounds):
        say(f"round {r + 1}/{opts.rounds}")
        order = list(variants)
        order_rng.shuffle(order)
        for v in order:
            samples[v.name].append(_time_variant(v, device))
        round_load.append((_loadavg() or [None])[0])  # outside load shows up here (1-minute average)

    for case in cases:  # one host sync at the end: were the timed steps numerically sane?
        if not all(math.isfinite(float(v)) for v in case.sums.values()):
            raise LtbenchError(f"non-finite training loss in the benchmark's {case.name} steps")

    result = _result(opts, spec, cases, method_cases, samples, device, precision, other_precision, layout_name,
                     default_op, view_names, len(bundle.train_labels))
    result["config"].update({"malloc_heap": heap, "loadavg_before": load_before, "loadavg_after": _loadavg(),
                             "loadavg_1min_per_round": round_load})
    return result


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _per_round(samples: dict[str, list[float]], num: str, den: str, scale: float = 1.0) -> list[float]:
    return [scale * a / b for a, b in zip(samples[num], samples[den], strict=True)]


def _put(out: dict[str, Any], key: str, values: Sequence[float], digits: int = 4) -> None:
    med, lo, hi = summarize(values)
    out[key] = round(med, digits)
    out[f"{key}_spread"] = [round(lo, digits), round(hi, digits)]


def _result(opts, spec, cases, method_cases, samples, device, precision, other_precision, layout_name,
            default_op, view_names, n_train) -> dict[str, Any]:
    out: dict[str, Any] = {
        "config": {
            "method": opts.method, "dataset": opts.dataset, "ratio": spec.ratio, "train_images": n_train,
            "backbone": spec.train.backbone, "batch_size": spec.train.batch_size, "precision": precision,
            "channels_last": cases[0].trainer.channels_last, "compile": opts.compile, "device": str(device),
            "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "torch": torch.__version__, "steps": opts.steps,
            "rounds": opts.rounds, "cheap_reps": max(opts.steps, opts.cheap_reps), "views": list(view_names),
            "workers": list(opts.workers),
        },
    }
    medians, spreads = {}, {}
    for name, vals in samples.items():
        med, lo, hi = summarize(vals)
        medians[name], spreads[name] = round(med, 3), [round(lo, 3), round(hi, 3)]

    erm_images = cases[0].images_per_step
    steps: dict[str, Any] = {}
    for case in cases:
        entry: dict[str, Any] = {"images_per_step": case.images_per_step,
                                 "full_ms": medians[f"full:{case.name}"], "bare_ms": medians[f"bare:{case.name}"]}
        _put(entry, "overhead_ratio", _per_round(samples, f"full:{case.name}", f"bare:{case.name}"))
        _put(entry, "step_vs_erm", _per_round(samples, f"full:{case.name}", "full:erm"))
        _put(entry, "bare_vs_erm", _per_round(samples, f"bare:{case.name}", "bare:erm"))
        # a no-grad forward costs about a third of a training forward + backward (backward ~ 2 forwards)
        pred = (case.images_per_step + case.nograd_images / 3) / erm_images
        entry["nograd_images_per_step"] = case.nograd_images
        entry["predicted_step_vs_erm"] = round(pred, 4)
        _put(entry, "vs_prediction", _per_round(samples, f"full:{case.name}", "full:erm", 1.0 / pred))
        steps[case.name] = entry
    out["steps"] = steps

    primary = steps[method_cases[0].name]
    for key in ("overhead_ratio", "step_vs_erm"):
        out[key], out[f"{key}_spread"] = primary[key], primary[f"{key}_spread"]
    out["predicted_step_vs_erm"] = primary["predicted_step_vs_erm"]
    out["erm_overhead_ratio"] = steps["erm"]["overhead_ratio"]
    out["erm_overhead_ratio_spread"] = steps["erm"]["overhead_ratio_spread"]

    mask_prob = spec.hparams.get("mask_prob", spec.hparams.get("mix_prob"))
    if len(method_cases) == 2 and mask_prob is not None:  # a late epoch mixes the two step kinds
        a, b = (f"full:{c.name}" for c in method_cases)
        mix = [(mask_prob * x + (1 - mask_prob) * y) / e
               for x, y, e in zip(samples[a], samples[b], samples["full:erm"], strict=True)]
        _put(out, "late_epoch_vs_erm", mix)
        out["late_epoch_step_mix"] = mask_prob

    workers = list(opts.workers)
    if workers:
        _put(out, "pipeline_speedup", _per_round(samples, f"input:classic-w{workers[0]}", "input:ours"), 3)
        out["pipeline_reference_workers"] = workers[0]
        for w in workers[1:]:
            _put(out, f"pipeline_speedup_w{w}", _per_round(samples, f"input:classic-w{w}", "input:ours"), 3)
    out["pipeline_ms"] = {name.split(":", 1)[1]: medians[name] for name in medians if name.startswith("input:")}

    out["saliency_ms"], out["saliency_ms_spread"] = {}, {}
    out["saliency_share_of_erm"], out["saliency_share_of_erm_spread"] = {}, {}
    for name in samples:
        if name.startswith("saliency:"):
            op = name.split(":", 1)[1]
            out["saliency_ms"][op], out["saliency_ms_spread"][op] = medians[name], spreads[name]
            share: dict[str, Any] = {}
            _put(share, "s", _per_round(samples, name, "full:erm"))
            out["saliency_share_of_erm"][op], out["saliency_share_of_erm_spread"][op] = share["s"], share["s_spread"]
    out["saliency_default_operator"] = default_op
    out["saliency_share_default"] = out["saliency_share_of_erm"].get(default_op)
    out["saliency_share_default_spread"] = out["saliency_share_of_erm_spread"].get(default_op)

    fp32, bf16 = ("bare:erm", f"bare:erm:{other_precision}") if precision == "fp32" else \
        (f"bare:erm:{other_precision}", "bare:erm")
    _put(out, "bf16_speedup", _per_round(samples, fp32, bf16), 3)
    contiguous, cl = ("bare:erm", layout_name) if layout_name.endswith("channels-last") else (layout_name, "bare:erm")
    _put(out, "channels_last_speedup", _per_round(samples, contiguous, cl), 3)
    if "bare:erm:bf16:channels-last" in samples:
        _put(out, "bf16_channels_last_speedup", _per_round(samples, "bare:erm", "bare:erm:bf16:channels-last"), 3)
    if "bare:erm:compiled" in samples:
        _put(out, "compile_speedup", _per_round(samples, "bare:erm", "bare:erm:compiled"), 3)
    else:
        out["compile_speedup"], out["compile_speedup_spread"] = None, None

    out["medians_ms"], out["spreads_ms"] = medians, spreads
    out["targets"] = targets_report(out)
    return out


def targets_report(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets against the measured medians (and whether the whole spread meets them)."""
    rows = []

    def add(name: str, op: str, limit: float, value, spread) -> None:
        if value is None:
            return
        ok = (lambda x: x <= limit) if op == "<=" else (lambda x: x >= limit)
        rows.append({"target": name, "value": value, "spread": spread, "limit": f"{op} {limit:g}",
                     "met": bool(ok(value)), "met_every_round": bool(spread is not None and all(map(ok, spread)))})

    for key, op, limit, name in TARGETS:
        add(name, op, limit, result.get(key), result.get(f"{key}_spread"))
    for label, entry in result["steps"].items():
        if label == "erm":
            continue
        pred = entry["predicted_step_vs_erm"]
        add(f"{label} step <= {MULTI_VIEW_LIMIT:g} x ({pred:g} x ERM step)", "<=", MULTI_VIEW_LIMIT,
            entry["vs_prediction"], entry["vs_prediction_spread"])
    return rows
