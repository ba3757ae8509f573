"""Name -> method registry. A method file registers itself; the trainer never branches on names."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from ltbench.errors import LtbenchError


@dataclass(frozen=True)
class MethodEntry:
    name: str
    cls: type
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)  # hyperparameter overrides of this name


_REGISTRY: dict[str, MethodEntry] = {}


def register_method(name: str, description: str | None = None, **defaults: Any):
    """Class decorator; stack it to register compositions, e.g. `drw+mixup` with drw=True."""

    def wrap(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is registered twice")
        _REGISTRY[name] = MethodEntry(name, cls, description or cls.description, dict(defaults))
        return cls

    return wrap


def _load() -> None:
    import ltbench.methods  # noqa: F401  (importing registers every method)


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
