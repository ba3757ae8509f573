"""Time estimates for `ltbench sweep --dry-run`: epochs x steps per epoch x a measured cost per step.

The cost per step comes from `ltbench bench --json` results saved as files (by default every
`*.json` in `<results dir>/../bench/`, e.g. `ltbench bench --device cuda --json > results/bench/a100.json`),
never from a guess: a run gets an estimate only if a bench file measured a step of its backbone on its
family of data (CIFAR-sized or ImageNet-sized images). The figure used is the bench's full trainer step
(`full:<case>`) per image, scaled to the run's batch size and training-set size:

    seconds = epochs x ceil(train images / batch size) x batch size x ms per image / 1000

- a method the bench measured uses its own step; a method with several step branches
  (`Method.step_branches`: SMCL's masked and plain steps, the mixing methods' mixed and plain steps)
  weights each branch's step by its `run_share`, the share of the run's steps that take it (e.g.
  probability x fraction of epochs inside the method's start/end window);
- a method the bench did not measure gets ERM's step, labelled `erm rate`: a lower bound for methods that
  forward more views per step (SCL, SMCL).

Not counted: evaluation, start-up, data loading beyond what `full:` includes, and queueing. The figure is
for the device the bench ran on; it is an estimate, and the plan says which bench file it came from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ltbench.errors import LtbenchError

if TYPE_CHECKING:  # pragma: no cover
    from ltbench.config import RunSpec
    from ltbench.method import StepBranch

# train-list sizes of fixed splits, used when the split folder is not on this machine (the submit host)
FIXED_SPLIT_SIZES = {"imagenet-lt": 115_846}  # the OLTR ImageNet_LT_train.txt (ltbench.data.imagenet_lt)


@dataclass(frozen=True)
class BenchFigures:
    path: Path
    backbone: str
    family: str
    device: str
    precision: str
    ms_per_image: dict[str, float]  # bench case (erm, smcl:masked, ...) -> full trainer step ms / image


@dataclass(frozen=True)
class Estimate:
    seconds: float | None
    basis: str  # where the figure came from, or why there is none


def load_bench(path: Path) -> BenchFigures:
    """The per-image step costs of one `ltbench bench --json` file."""
    from ltbench.data.datasets import get_dataset

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cfg = data["config"]
        batch = int(cfg["batch_size"])
        per_image = {name: float(entry["full_ms"]) / batch for name, entry in data["steps"].items()}
        family = get_dataset(cfg["dataset"]).family
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ZeroDivisionError, LtbenchError) as exc:
        raise LtbenchError(f"{path} is not an `ltbench bench --json` result ({type(exc).__name__}: {exc})") from None
    return BenchFigures(path, str(cfg["backbone"]), family, str(cfg.get("device", "?")),
                        str(cfg.get("precision", "?")), per_image)


def load_benches(paths: Iterable[Path]) -> list[BenchFigures]:
    """Bench files; a folder stands for its *.json files (a missing folder for none)."""
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files += sorted(p.glob("*.json"))
        elif p.exists():
            files.append(p)
        elif p.suffix == ".json":
            raise LtbenchError(f"bench file {p} does not exist")
    return [load_bench(f) for f in files]


def train_images(spec: RunSpec, data_dir: Path | None = None) -> int | None:
    """Training images of a run, from the long-tail formula (or a fixed split's list); None if unknown."""
    from ltbench.data.datasets import get_dataset
    from ltbench.data.longtail import longtail_counts

    info = get_dataset(spec.dataset)
    cap = spec.max_per_class
    if info.split_counts is not None:
        from ltbench.data.imagenet_lt import split_dir_for

        try:
            counts = info.split_counts(split_dir_for(None, data_dir))
        except (LtbenchError, OSError):
            total = FIXED_SPLIT_SIZES.get(spec.dataset)
            if total is None:
                return None
            return min(total, info.num_classes * cap) if cap else total  # a cap: at most this many
    else:
        counts = longtail_counts(info.num_classes, cap or info.max_per_class, float(spec.ratio), spec.profile)
    return sum(min(c, cap) if cap else c for c in counts)


def step_branches(spec: RunSpec) -> list[StepBranch]:
    """The run's step branches as its method declares them (`Method.step_branches`)."""
    from ltbench.registry import get_method

    return list(get_method(spec.method).cls.step_branches(spec.hparams, spec.train.epochs))


def method_ms_per_image(fig: BenchFigures, spec: RunSpec) -> tuple[float, str] | None:
    """(ms per image, what it is) for a run's method from one bench file."""
    cases, m = fig.ms_per_image, spec.method
    if m in cases:
        return cases[m], m
    labels = [(f"{m}:{b.name}", b.run_share) for b in step_branches(spec)]
    if len(labels) > 1 and all(label in cases for label, _ in labels):
        # the last branch's step plus each other branch's extra cost times its share: the same as the
        # run_share-weighted sum when the shares sum to 1, and what the estimate has always computed
        (*costly, (base_label, _)) = labels
        base = cases[base_label]
        return base + sum(share * (cases[label] - base) for label, share in costly), m
    if "erm" in cases:
        return cases["erm"], "erm rate"
    return None


def _family(spec: RunSpec) -> str:
    from ltbench.data.datasets import get_dataset

    return get_dataset(spec.dataset).family


def estimate(spec: RunSpec, benches: Sequence[BenchFigures], n_train: int | None) -> Estimate:
    """Seconds of training steps for one run, from the best-matching bench file."""
    if n_train is None:
        return Estimate(None, "no estimate: training-set size unknown")
    fitting = [b for b in benches if b.backbone == spec.train.backbone and b.family == _family(spec)]
    if not fitting:
        return Estimate(None, f"no estimate: no bench of {spec.train.backbone} ({_family(spec)} images)")

    def rank(b: BenchFigures) -> tuple[int, int]:  # its own method first, then the run's precision
        own = method_ms_per_image(b, spec)
        return (0 if own and own[1] == spec.method else 1, 0 if b.precision == spec.train.precision else 1)

    for fig in sorted(fitting, key=rank):
        got = method_ms_per_image(fig, spec)
        if got is None:
            continue
        ms, what = got
        bs = spec.train.batch_size
        steps = spec.train.epochs * math.ceil(n_train / bs)
        return Estimate(steps * bs * ms / 1000.0, f"{what} @ {fig.device} ({fig.path.name})")
    return Estimate(None, "no estimate: the bench files measured no usable step")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def default_bench_dir(results_dir: Path) -> Path:
    """`<results dir>/../bench/`: where `sweep --dry-run` looks for bench files by default."""
    return Path(results_dir).resolve().parent / "bench"


def describe(benches: Sequence[BenchFigures]) -> str:
    if not benches:
        return "no bench files"
    return ", ".join(f"{b.path.name} ({b.backbone}, {b.device})" for b in benches)


__all__ = ["BenchFigures", "Estimate", "default_bench_dir", "estimate", "fmt_duration", "load_benches",
                      "train_images"]
