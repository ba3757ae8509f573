"""RunSpec: one frozen object per run holding every field that can change a number.

Layering (later wins): data-set preset -> method defaults (per data-set family) -> experiment
overrides -> `--set key=value`. Paths, devices and other runtime choices are not part of the spec,
so they never change a run's identity. The canonical JSON of the spec hashes to the run id.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import yaml

from ltbench.bounds import bounded
from ltbench.data.datasets import get_dataset
from ltbench.data.longtail import PROFILES, longtail_counts
from ltbench.data.shots import SHOT_RULES
from ltbench.errors import LtbenchError
from ltbench.registry import get_method
from ltbench.schedules import SCHEDULES, resolve_schedule
from ltbench.spec_hash import canonical_spec_json, spec_dict_hash
from ltbench.spec_rules import check_given, check_spec

if TYPE_CHECKING:  # types only: the spec resolves without importing torch
    from ltbench.data.bundle import DatasetInfo
    from ltbench.method import Method

PROTOCOL_VERSION = 1


@dataclass(frozen=True)
class TrainSettings:
    backbone: str = "resnet32"
    epochs: int = field(default=200, metadata=bounded(ge=1))
    batch_size: int = field(default=128, metadata=bounded(ge=1))
    lr: float = field(default=0.1, metadata=bounded(gt=0))
    momentum: float = field(default=0.9, metadata=bounded(ge=0, lt=1))
    weight_decay: float = field(default=2e-4, metadata=bounded(ge=0))
    schedule: str = "ldam-step"
    # None: the schedule's fraction of `epochs`
    warmup_epochs: int | None = field(default=None, metadata=bounded(ge=0))
    lr_milestones: tuple[int, ...] | None = field(default=None, metadata=bounded(gt=0))  # each; order: spec_rules
    precision: Literal["fp32", "bf16"] = "fp32"
    shot_rule: str = "shots-100-20"
    # evaluate every k epochs and at the last one (best-epoch is over these)
    eval_every: int = field(default=1, metadata=bounded(ge=1))
    image_size: int | None = None  # view (crop) side for file-backed data (imagenet family); None: resident size
    # also evaluate a val set (ImageNet-LT: its val list; the others: a seeded balanced half of the test set,
    # reported numbers then come from the other half); final.json records the val-selected epoch
    val_select: bool = False
    # equal-budget control (_apply_budget): "epochs" trains `epochs` as given; "steps" rescales them to the
    # optimiser-step count of a run at the reference batch, "samples" to the sample-passes of a 1-view run
    budget: Literal["epochs", "steps", "samples"] = "epochs"
    budget_ref_batch: int | None = field(default=None, metadata=bounded(ge=1))  # steps: None = the preset's batch
    budget_ref_epochs: int | None = field(default=None, metadata=bounded(ge=1))  # epochs before rescaling (derived)


# preset -> data-set family -> TrainSettings fields. `paper` is the reference recipe (docs/methods.md §Schedules);
# `quick` is a CPU-scale recipe with the same schedule shape; `cpu` the real-data CPU study recipe.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {"cifar": {}},
    "quick": {"cifar": {"backbone": "resnet8", "epochs": 16}},
    # the CPU study: the smallest CIFAR ResNet, 60 epochs, a run in minutes. Evaluated every 20 epochs
    # (and at the last): on 10k test images an evaluation costs a third of an epoch's training time x 10.
    "cpu": {"cifar": {"backbone": "resnet8", "epochs": 60, "eval_every": 20}},
}

# ImageNet-LT `paper` = CMO's ImageNet-LT recipe (naver-ai/cmo imagenet_train.py, opts.py; the recipe of ERM,
# DRW, LDAM-DRW and the mixing rows, docs/methods.md §Schedules): ResNet-50, 100 epochs, batch 128, wd 2e-4,
# 5-epoch warm-up, x0.1 at 60 and x0.01 at 80, groups under CMO's ImageNet rule. SMCL/SCL override it with
# their own recipe (SMCL Section 4.2: batch 256, wd 5e-4, cosine) through `train_defaults["imagenet"]`, as
# they do for CIFAR.
IMAGENET_PAPER: dict[str, Any] = {"backbone": "resnet50", "epochs": 100, "batch_size": 128, "weight_decay": 2e-4,
                                  "schedule": "cmo-imagenet-step", "shot_rule": "shots-cmo-imagenet",
                                  "image_size": 224}
PRESETS["paper"]["imagenet"] = IMAGENET_PAPER
# CPU smoke runs on ImageNet-LT: the same model and schedule shape, 64-px views, 2 epochs
PRESETS["quick"]["imagenet"] = {**IMAGENET_PAPER, "epochs": 2, "batch_size": 64, "image_size": 64}



# numpy / torch seeds are unsigned 32-bit (numpy.random.default_rng accepts more, torch.manual_seed does not)
SEED_RANGE = bounded(ge=0, le=2**32 - 1)


@dataclass(frozen=True)
class RunSpec:
    method: str
    dataset: str
    ratio: float
    seed: int = field(default=0, metadata=SEED_RANGE)
    data_seed: int = field(default=0, metadata=SEED_RANGE)
    profile: str = "exp"
    max_per_class: int | None = field(default=None, metadata=bounded(ge=1))
    class_order: int = field(default=0, metadata=bounded(ge=0))  # 0: identity (longtail.class_permutation)
    preset: str = "paper"
    data_version: str = "1"  # bumped when a data set's construction changes (e.g. the shapes generator)
    train: TrainSettings = field(default_factory=TrainSettings)
    hparams: dict[str, Any] = field(default_factory=dict)
    protocol_version: int = PROTOCOL_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def canonical_json(self) -> str:
        return canonical_spec_json(self.to_dict())

    @property
    def hash(self) -> str:
        return spec_dict_hash(self.to_dict())

    @property
    def setting(self) -> str:
        """Readable setting label, e.g. cifar100-r100 or fashion-mnist-h500-r100."""
        head = f"-h{self.max_per_class}" if self.max_per_class else ""
        return f"{self.dataset}{head}-r{_fmt_ratio(self.ratio)}"

    @property
    def run_id(self) -> str:
        return f"{self.setting}/{self.method}/s{self.seed}-{self.hash}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        data = dict(data)
        train = dict(data.pop("train"))
        if train.get("lr_milestones") is not None:
            train["lr_milestones"] = tuple(train["lr_milestones"])
        return cls(train=TrainSettings(**train), **data)


def _fmt_ratio(ratio: float) -> str:
    return str(int(ratio)) if float(ratio).is_integer() else str(ratio)


# ----- typed parsing of overrides ---------------------------------------------------------------

def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Check/convert an override value against a dataclass field's annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(name, value, arg)
            except LtbenchError as exc:
                errors.append(str(exc))
        raise LtbenchError(errors[0])
    if origin is Literal:
        if value not in args:
            raise LtbenchError(f"{name}={value!r} is not one of: {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise LtbenchError(f"{name} expects a list, got {value!r}")
        return tuple(_coerce(name, v, args[0]) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise LtbenchError(f"{name} expects true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise LtbenchError(f"{name} expects an integer, got {value!r}")
        return int(value)
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string; a user means the number
            try:
                value = float(value)
            except ValueError:
                raise LtbenchError(f"{name} expects a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise LtbenchError(f"{name} expects a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise LtbenchError(f"{name} expects a string, got {value!r}")
        return value
    return value


def parse_set_pairs(pairs: list[str]) -> dict[str, Any]:
    """`key=value` strings -> dict; values are parsed as YAML scalars (1, 0.5, true, erase, [1,2])."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise LtbenchError(f"--set expects key=value, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise LtbenchError(f"--set {key}: cannot parse value {raw!r}") from None
    return out


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


# ----- building a spec --------------------------------------------------------------------------

SPEC_KEYS = ("data_seed", "profile", "max_per_class", "class_order")


def build_spec(method: str, dataset: str, ratio: float | str, seed: int = 0, preset: str = "paper",
               overrides: dict[str, Any] | None = None) -> RunSpec:
    """Resolve every default and override into a RunSpec (raises LtbenchError on bad input)."""
    entry = get_method(method)
    info = get_dataset(dataset)
    try:
        ratio = float(ratio)
    except (TypeError, ValueError):
        raise LtbenchError(f"ratio must be a number >= 1, got {ratio!r}") from None
    if not ratio >= 1:
        raise LtbenchError(f"ratio must be >= 1 (e.g. 100, 50, 10), got {_fmt_ratio(ratio)}")
    if info.fixed_ratio is not None and ratio != info.fixed_ratio:
        raise LtbenchError(f"{dataset} is a fixed split with imbalance ratio {_fmt_ratio(info.fixed_ratio)}; "
                           f"use --ratio {_fmt_ratio(info.fixed_ratio)}")
    if preset not in PRESETS:
        raise LtbenchError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    family_presets = PRESETS[preset]
    if info.family not in family_presets:
        raise LtbenchError(f"preset {preset!r} has no recipe for {dataset}; choose from "
                           f"{', '.join(p for p, fam in PRESETS.items() if info.family in fam)}")
    overrides = dict(overrides or {})
    cls = entry.cls

    train_types = _field_types(TrainSettings)
    hp_types = _field_types(cls.Hparams)
    spec_types = {"data_seed": int, "profile": str, "max_per_class": int | None, "class_order": int}
    unknown = [k for k in overrides if k not in train_types and k not in hp_types and k not in spec_types]
    if unknown:
        valid = sorted(set(train_types) | set(hp_types) | set(spec_types))
        raise LtbenchError(f"unknown setting {unknown[0]!r} for method {method}; valid keys: {', '.join(valid)}")

    train_values: dict[str, Any] = dataclasses.asdict(TrainSettings())
    train_values.update(family_presets[info.family])
    train_values.update(cls.train_defaults.get(info.family, {}))
    hp_values: dict[str, Any] = dataclasses.asdict(cls.Hparams())
    hp_values.update(cls.family_defaults.get(info.family, {}))
    hp_values.update(entry.defaults)
    spec_values: dict[str, Any] = {"data_seed": 0, "profile": "exp", "max_per_class": None, "class_order": 0}
    for key, value in overrides.items():
        if key in train_types:
            train_values[key] = _coerce(key, value, train_types[key])
        elif key in hp_types:
            hp_values[key] = _coerce(key, value, hp_types[key])
        else:
            spec_values[key] = _coerce(key, value, spec_types[key])
    # a value the user gave is checked even where resolving later drops it (e.g. drw_beta without drw)
    check_given((RunSpec, TrainSettings, cls.Hparams), {**spec_values, **hp_values, **train_values}, overrides)

    _apply_budget(train_values, family_presets[info.family].get("batch_size", TrainSettings.batch_size),
                  lambda: _train_size(info, ratio, spec_values), lambda: _view_count(cls, hp_values))
    train = _resolve_train(train_values)
    _validate_file_backed(train, spec_values, info)
    hp_values = cls.resolve_hparams(hp_values, train.epochs)
    cls.Hparams(**hp_values)  # constructs, i.e. validates the combination
    _validate_spec_values(spec_values, info)
    spec = RunSpec(method=method, dataset=dataset, ratio=ratio, seed=_coerce("seed", seed, int), preset=preset,
                   data_version=info.version, train=train, hparams=dict(sorted(hp_values.items())), **spec_values)
    check_spec(spec, cls.Hparams, milestones_given="lr_milestones" in overrides)  # ranges + cross-field rules
    if info.bundle is None:  # formula-cut subsets: every class keeps at least one training image
        from ltbench.splits import require_training_images

        require_training_images(info.num_classes, spec.max_per_class or info.max_per_class, ratio, spec.profile,
                                dataset, info.max_per_class)
    return spec


def _apply_budget(values: dict[str, Any], preset_batch: int, train_size: Callable[[], int],
                  view_count: Callable[[], int]) -> None:
    """Rescale `epochs` for an equal-budget comparison (before the epoch-fraction defaults resolve).

    steps:   epochs' = round(epochs * ceil(n / b_ref) / ceil(n / b)), b_ref = `budget_ref_batch`, default
             the data-set preset's batch size (before a method's own batch default), so a batch-256 method
             gets the optimiser steps of the preset's batch-128 recipe.
    samples: epochs' = round(epochs / views): the sample-passes (images x views x epochs) of a 1-view run.
    Warm-up, LR milestones, DRW and masking starts left at their defaults are fractions of the epochs
    and scale with them; explicit values are kept as given. A run whose epochs do not change (the
    reference itself, e.g. ERM under steps) is recorded as budget=epochs, keeping its run id.
    """
    rule = values["budget"]
    if values["budget_ref_epochs"] is not None:
        raise LtbenchError("budget_ref_epochs is filled in from epochs; set epochs (the reference run's) instead")
    if rule != "steps" and values["budget_ref_batch"] is not None:
        raise LtbenchError(f"budget_ref_batch applies with budget=steps, not budget={rule}")
    if rule == "epochs":
        return
    if values["epochs"] < 1 or values["batch_size"] < 1:
        return  # _resolve_train names the bad value
    epochs = values["epochs"]
    if rule == "steps":
        n, ref = train_size(), values["budget_ref_batch"] or preset_batch
        if ref < 1:
            raise LtbenchError(f"budget_ref_batch must be >= 1, got {ref}")
        values["budget_ref_batch"] = ref
        scaled = epochs * math.ceil(n / ref) / math.ceil(n / values["batch_size"])
    else:
        scaled = epochs / view_count()
    if max(1, round(scaled)) == epochs:  # already the reference budget: one computation, one run id
        values.update(budget="epochs", budget_ref_batch=None)
        return
    values["budget_ref_epochs"] = epochs
    values["epochs"] = max(1, round(scaled))


def _train_size(info: DatasetInfo, ratio: float, spec_values: dict[str, Any]) -> int:
    """Training images of the long-tailed subset, from the count formula (no data read)."""
    if info.bundle is not None:
        raise LtbenchError(f"budget=steps needs the training-set size, which {info.name} reads from its split "
                           "files; set epochs directly")
    try:
        return sum(longtail_counts(info.num_classes, spec_values["max_per_class"] or info.max_per_class, ratio,
                                   spec_values["profile"]))
    except ValueError as exc:
        raise LtbenchError(str(exc)) from None


def _view_count(cls: type[Method[Any]], hp_values: dict[str, Any]) -> int:
    """How many augmented views of each source image the method takes (its `views()` declaration)."""
    try:  # views() reads only the hyperparameters (the method contract, ltbench/method.py)
        # views() reads only self.hp, so a stand-in self avoids building the method (and its model) here
        return len(cls.views(types.SimpleNamespace(hp=cls.Hparams(**hp_values))))  # type: ignore[arg-type]
    except (AttributeError, TypeError) as exc:
        raise LtbenchError(f"budget=samples cannot tell how many views this method takes ({exc}); "
                           "set epochs directly") from None


def _resolve_train(values: dict[str, Any]) -> TrainSettings:
    from ltbench.models import BACKBONES

    if values["epochs"] < 1:
        raise LtbenchError(f"epochs must be >= 1, got {values['epochs']}")
    if values["batch_size"] < 1:
        raise LtbenchError(f"batch_size must be >= 1, got {values['batch_size']}")
    if values["eval_every"] < 1:
        raise LtbenchError(f"eval_every must be >= 1, got {values['eval_every']}")
    if values["schedule"] not in SCHEDULES:
        raise LtbenchError(f"unknown schedule {values['schedule']!r}; choose from {', '.join(SCHEDULES)}")
    if values["shot_rule"] not in SHOT_RULES:
        raise LtbenchError(f"unknown shot_rule {values['shot_rule']!r}; choose from {', '.join(SHOT_RULES)}")
    if values["backbone"] not in BACKBONES:
        raise LtbenchError(f"unknown backbone {values['backbone']!r}; choose from {', '.join(BACKBONES)}")
    warm, marks = resolve_schedule(values["schedule"], values["epochs"])
    if values["warmup_epochs"] is None:
        values["warmup_epochs"] = warm
    if values["lr_milestones"] is None:
        values["lr_milestones"] = marks
    return TrainSettings(**values)


def _validate_file_backed(train: TrainSettings, values: dict[str, Any], info: DatasetInfo) -> None:
    """image_size / val_select only apply to file-backed data sets; a fixed split has no profile."""
    if info.bundle is None:
        if train.image_size is not None:
            raise LtbenchError(f"image_size applies to file-backed data sets (imagenet-lt); {info.name} is used "
                               "at its native size")
        return  # val_select here: a seeded balanced half of the test set selects (ltbench.data.val_split)
    if train.image_size is None or train.image_size < 16:
        raise LtbenchError(f"image_size must be an integer >= 16 for {info.name}, got {train.image_size}")
    if values["profile"] != "exp":
        raise LtbenchError(f"{info.name} is a fixed split; profile={values['profile']!r} does not apply")


def _validate_spec_values(values: dict[str, Any], info: DatasetInfo) -> None:
    if values["profile"] not in PROFILES:
        raise LtbenchError(f"unknown profile {values['profile']!r}; choose from {', '.join(PROFILES)}")
    if values["class_order"] < 0:
        raise LtbenchError(f"class_order must be an integer >= 0, got {values['class_order']}")
    if values["class_order"] and info.bundle is not None:
        raise LtbenchError(f"{info.name} is a fixed split; class_order does not apply")
    head = values["max_per_class"]
    if head is not None and not 1 <= head <= info.max_per_class:
        raise LtbenchError(f"max_per_class must be in 1..{info.max_per_class} for {info.name}, got {head}")
