"""Name -> method registry. A method file registers itself; the trainer never branches on names."""

from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ltbench.errors import LtbenchError

if TYPE_CHECKING:
    from ltbench.method import Method


@dataclass(frozen=True)
class PaperAblation:
    """Which row of a paper ablation table (results/paper/ablations.csv, column `variant`) a run of this
    method stands for, by the value of the one setting the ablation varies."""

    setting: str  # the varied hyperparameter, e.g. "mask_locator"
    variants: tuple[tuple[Any, str], ...]  # (its value, the table's variant label)

    def variant(self, vary: dict[str, Any]) -> str | None:
        """The variant label of a row whose varied settings are `vary` (None: no row of the paper's)."""
        if self.setting not in vary:
            return None
        value = vary[self.setting]
        for declared, label in self.variants:
            if _same(value, declared):
                return label
        return None


def _same(value: Any, declared: Any) -> bool:
    """Equal, numbers by math.isclose (a value from YAML or `--set` may be 0 or "0.3" for 0.0 or 0.3)."""
    if isinstance(declared, (int, float)) and not isinstance(declared, bool):
        try:
            return math.isclose(float(value), float(declared))
        except (TypeError, ValueError):
            return False
    return bool(value == declared)


@dataclass(frozen=True)
class MethodEntry:
    name: str
    cls: type[Method[Any]]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)  # hyperparameter overrides of this name
    # the row label of this name in the SMCL paper's tables (arXiv 2406.02223), e.g. "DRW+SMCL"; None: not a row
    paper_label: str | None = None
    # ablation name (results/paper/ablations.csv `ablation`, a table layout without "ablate-") -> its rows
    paper_ablations: dict[str, PaperAblation] = field(default_factory=dict)


T = TypeVar("T", bound="type[Method[Any]]")

_REGISTRY: dict[str, MethodEntry] = {}


def register_method(name: str, description: str | None = None, *, paper_label: str | None = None,
                    paper_ablations: dict[str, PaperAblation] | None = None,
                    **defaults: Any) -> Callable[[T], T]:
    """Class decorator; stack it to register compositions, e.g. `drw+mixup` with drw=True.

    `paper_label`: the name's row label in the SMCL paper's tables (the report joins reported numbers by it).
    `paper_ablations`: the paper ablation tables this name was run in and which of their rows a run stands for.
    """

    def wrap(cls: T) -> T:
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is registered twice")
        _REGISTRY[name] = MethodEntry(name, cls, description or cls.description, dict(defaults), paper_label,
                                      dict(paper_ablations or {}))
        return cls

    return wrap


def _load() -> None:
    # importing registers every method; by name, because mypy sees methods/ as `methods`, not ltbench.methods
    importlib.import_module("ltbench.methods")


def get_method(name: str) -> MethodEntry:
    _load()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise LtbenchError(f"unknown method {name!r}{hint}; choose from {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_methods() -> list[MethodEntry]:
    _load()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
