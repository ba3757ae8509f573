"""Experiment grids: a small YAML file -> a validated `Grid` -> the RunSpecs it stands for.

A grid file has the keys

    methods:  [erm, drw, ...]        ltbench method names
    datasets: [cifar100, cifar10]    data-set names
    ratios:   [100, 50, 10]          imbalance ratios (>= 1)
    seeds:    [0, 1, 2]              training seeds
    preset:   paper                  training preset (paper, quick, cpu); default paper
    overrides: {epochs: 1}           settings / hyperparameters applied to every run (optional)
    vary: {mask_locator: [random, center, saliency]}   crossed with the grid (optional)
    max_per_class: 500               head size (int, null or a list; optional)
    table: table1                    table layout for `ltbench table FILE` (optional)

Loading and validating a file needs no torch; expanding it into RunSpecs (`expand`) resolves every
default through `config.build_spec` (which imports the method registry) and so is done lazily.
Every problem a user can cause is an LtbenchError naming the file.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ltbench.errors import LtbenchError

if TYPE_CHECKING:  # pragma: no cover
    from ltbench.config import RunSpec

REQUIRED_KEYS = ("methods", "datasets", "ratios", "seeds")
OPTIONAL_KEYS = ("preset", "overrides", "vary", "max_per_class", "table", "metrics")
# table columns a grid may ask for (`metrics:`); seen/unseen/gap are the shapes background metrics
TABLE_METRICS = ("top1", "many", "medium", "few", "seen", "unseen", "gap", "few_gap", "bg_gap_tail")
TABLE_LAYOUTS = ("table1", "table1-extended", "table2", "grid", "ablate", "ablate-masking", "ablate-contrastive")
MAX_GRID_RUNS = 100_000  # combinations a grid may expand to (each is a spec to build and a directory to check)
NAMED_GRIDS = {"masking": "ablate-masking", "contrastive": "ablate-contrastive"}


@dataclass(frozen=True)
class Grid:
    path: Path
    methods: tuple[str, ...]
    datasets: tuple[str, ...]
    ratios: tuple[float, ...]
    seeds: tuple[int, ...]
    preset: str = "paper"
    overrides: dict[str, Any] = field(default_factory=dict)
    vary: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    heads: tuple[int | None, ...] = (None,)  # max_per_class values
    table: str | None = None
    metrics: tuple[str, ...] | None = None  # table columns per setting (None: the layout's default)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def size(self) -> int:
        """Number of combinations before de-duplication."""
        n = len(self.methods) * len(self.datasets) * len(self.ratios) * len(self.seeds) * len(self.heads)
        for values in self.vary.values():
            n *= len(values)
        return n

    def vary_combos(self) -> list[dict[str, Any]]:
        keys = list(self.vary)
        combos = itertools.product(*(self.vary[k] for k in keys))
        return [dict(zip(keys, combo, strict=True)) for combo in combos]

    def settings(self) -> list[tuple[str, float, int | None]]:
        """(dataset, ratio, head) columns in file order."""
        return [(d, r, h) for d in self.datasets for h in self.heads for r in self.ratios]

    def with_methods(self, methods: list[str]) -> Grid:
        """The same grid restricted to some of its methods (order of the file kept)."""
        unknown = [m for m in methods if m not in self.methods]
        if unknown:
            raise LtbenchError(f"{self.path}: method {unknown[0]!r} is not in this grid "
                               f"(it has {', '.join(self.methods)})")
        kept = tuple(m for m in self.methods if m in methods)
        return Grid(self.path, kept, self.datasets, self.ratios, self.seeds, self.preset, self.overrides,
                    self.vary, self.heads, self.table)


@dataclass(frozen=True)
class GridRun:
    """One expanded run: its spec and the values of the grid's `vary` keys."""

    spec: RunSpec
    vary: dict[str, Any]
    # other `vary` combinations that resolve to this same spec (a setting that cannot act in them is reset)
    aliases: tuple[dict[str, Any], ...] = ()

    @property
    def run_id(self) -> str:
        return self.spec.run_id


# ----- locating files ----------------------------------------------------------------------------

def repo_dir(name: str) -> Path:
    """`<repo>/<name>` next to the installed package if it exists, else `./<name>`."""
    here = Path(__file__).resolve().parent.parent / name
    return here if here.is_dir() else Path(name)


def experiments_dir() -> Path:
    env = os.environ.get("LTBENCH_EXPERIMENTS")
    return Path(env) if env else repo_dir("experiments")


def resolve_grid_path(name_or_path: str | Path) -> Path:
    """A path to a YAML file, or the name of a shipped grid (table1, masking, quick-table1, ...)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    name = NAMED_GRIDS.get(str(name_or_path), str(name_or_path))
    candidate = experiments_dir() / f"{name}.yaml"
    if candidate.exists():
        return candidate
    raise LtbenchError(f"no experiment file {name_or_path!r}: not a file, and {candidate} does not exist")


# ----- loading and validation --------------------------------------------------------------------

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_list(path: Path, key: str, value: Any) -> list[Any]:
    if value is None:
        raise LtbenchError(f"{path}: `{key}` is empty; the grid has no runs")
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise LtbenchError(f"{path}: `{key}` is empty; the grid has no runs")
    return items


def load_grid(path: str | Path) -> Grid:
    """Read and validate a grid file (no torch, no registry: names are checked by `expand`)."""
    path = Path(path)
    if not path.exists():
        raise LtbenchError(f"experiment file {path} does not exist")
    if path.is_dir():
        raise LtbenchError(f"experiment file {path} is a directory")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except _DuplicateKey as exc:
        raise LtbenchError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise LtbenchError(f"{path}: YAML syntax error{where}: {problem}") from None
    except UnicodeDecodeError:
        raise LtbenchError(f"{path}: not a UTF-8 text file") from None
    if raw is None:
        raise LtbenchError(f"{path}: the file is empty; the grid has no runs")
    if not isinstance(raw, dict):
        raise LtbenchError(f"{path}: expected a mapping of {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}")
    unknown = [k for k in raw if k not in REQUIRED_KEYS + OPTIONAL_KEYS]
    if unknown:
        raise LtbenchError(f"{path}: unknown key {unknown[0]!r}; valid keys: "
                           f"{', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)}")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise LtbenchError(f"{path}: missing key {missing[0]!r} (a grid needs {', '.join(REQUIRED_KEYS)})")

    methods = _as_list(path, "methods", raw["methods"])
    datasets = _as_list(path, "datasets", raw["datasets"])
    for key, items in (("methods", methods), ("datasets", datasets)):
        bad = [v for v in items if not isinstance(v, str) or not v.strip()]
        if bad:
            raise LtbenchError(f"{path}: `{key}` must be a list of names, got {bad[0]!r}")
    ratios = _as_list(path, "ratios", raw["ratios"])
    for r in ratios:
        if not _is_number(r) or not r >= 1:
            raise LtbenchError(f"{path}: ratios must be numbers >= 1, got {r!r}")
    seeds = _as_list(path, "seeds", raw["seeds"])
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise LtbenchError(f"{path}: seeds must be integers >= 0, got {s!r}")
    preset = raw.get("preset", "paper")
    if not isinstance(preset, str):
        raise LtbenchError(f"{path}: preset must be a name (paper, quick, cpu), got {preset!r}")

    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise LtbenchError(f"{path}: `overrides` must be a mapping of setting: value, got {overrides!r}")
    vary_raw = raw.get("vary") or {}
    if not isinstance(vary_raw, dict):
        raise LtbenchError(f"{path}: `vary` must be a mapping of setting: [values], got {vary_raw!r}")
    vary: dict[str, tuple[Any, ...]] = {}
    for key, values in vary_raw.items():
        if not isinstance(values, list) or not values:
            raise LtbenchError(f"{path}: vary.{key} must be a non-empty list of values, got {values!r}")
        if key in overrides:
            raise LtbenchError(f"{path}: {key!r} is both in `overrides` and in `vary`")
        vary[str(key)] = tuple(values)

    heads_raw = raw.get("max_per_class")
    if "max_per_class" in overrides:
        if "max_per_class" in raw:
            raise LtbenchError(f"{path}: max_per_class is both a grid key and in `overrides`")
        heads_raw = overrides.pop("max_per_class")
    heads = [None] if heads_raw is None else _as_list(path, "max_per_class", heads_raw)
    for h in heads:
        if h is not None and (not isinstance(h, int) or isinstance(h, bool) or h < 1):
            raise LtbenchError(f"{path}: max_per_class must be a positive integer or null, got {h!r}")

    table = raw.get("table")
    if table is not None and table not in TABLE_LAYOUTS:
        raise LtbenchError(f"{path}: unknown table layout {table!r}; choose from {', '.join(TABLE_LAYOUTS)}")

    metrics = raw.get("metrics")
    if metrics is not None:
        metrics = _as_list(path, "metrics", metrics)
        unknown = [m for m in metrics if m not in TABLE_METRICS]
        if unknown or not metrics:
            raise LtbenchError(f"{path}: unknown table metric(s) {', '.join(map(str, unknown)) or '(none given)'}; "
                               f"choose from {', '.join(TABLE_METRICS)}")

    def dedup(items: list[Any]) -> tuple[Any, ...]:
        return tuple(dict.fromkeys(items))

    grid = Grid(path=path, methods=dedup([m.strip() for m in methods]), datasets=dedup(datasets),
                ratios=dedup([float(r) for r in ratios]), seeds=dedup(seeds), preset=preset,
                overrides=dict(overrides), vary=vary, heads=dedup(heads), table=table,
                metrics=None if metrics is None else dedup(metrics))
    if grid.size > MAX_GRID_RUNS:  # refused before any spec is built: planning is per run
        raise LtbenchError(f"{path}: the grid has {grid.size:,} runs, more than the {MAX_GRID_RUNS:,} ltbench plans "
                           "in one go; split it into several files")
    return grid


class _DuplicateKey(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error (PyYAML keeps the last one
    silently; YAML 1.2 section 3.2.1.1 requires keys to be unique)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base constructor reports it
                continue
            if first is not None:
                where = f"line {line}" if first == line else f"lines {first} and {line}"
                raise _DuplicateKey(f"key {key!r} appears twice ({where})")
            seen[key] = line
        return super().construct_mapping(node, deep)


# ----- expansion ---------------------------------------------------------------------------------

def registered_methods() -> list[str]:
    from ltbench.registry import list_methods

    return [entry.name for entry in list_methods()]


def expand(grid: Grid) -> list[GridRun]:
    """Every run of the grid as a RunSpec (seed-major order, so early runs cover every cell once).

    Unknown methods, data sets, presets or settings raise LtbenchError (prefixed with the file).
    Combinations that resolve to the same spec (e.g. a varied value equal to the default) run once.
    """
    from ltbench.config import build_spec
    from ltbench.data.datasets import get_dataset

    try:
        for name in grid.datasets:
            get_dataset(name)
        runs: dict[str, GridRun] = {}
        for seed, dataset, head, ratio, method in itertools.product(
                grid.seeds, grid.datasets, grid.heads, grid.ratios, grid.methods):
            for combo in grid.vary_combos():
                overrides = {**grid.overrides, **combo}
                if head is not None:
                    overrides["max_per_class"] = head
                spec = build_spec(method, dataset, ratio, seed, grid.preset, overrides)
                known = runs.get(spec.run_id)
                runs[spec.run_id] = (GridRun(spec, combo) if known is None
                                     else replace(known, aliases=(*known.aliases, combo)))
    except LtbenchError as exc:
        raise LtbenchError(f"{grid.path}: {exc}") from None
    return list(runs.values())
