"""Torch on first use, so that reading method definitions does not import it.

`ltbench table`, `status` and spec resolution read a method's hyperparameter dataclass, its defaults and
its registration, never its training step; importing torch costs them seconds (docs/architecture.md). A
method stays one file (hyperparameters and training step together) by importing torch through these
proxies, which import the real module on the first attribute access (`torch.cat(...)` inside a step).
Type checkers see the real modules through the usual block:

    from typing import TYPE_CHECKING

    if TYPE_CHECKING:
        import torch
        import torch.nn.functional as F
    else:
        from ltbench.lazy import F, torch

Rules for a module that uses them: no torch attribute at import time (no `torch.X` in a default
argument, a base class, a module constant or a decorator expression: use `no_grad` below, and build
constants inside functions). Every attribute access is forwarded to the real module (nothing is
cached on the proxy), so a test that monkeypatches `torch.nonzero` on the real module is seen here too.
The same idea as SciPy's `lazy_loader` (https://scientific-python.org/specs/spec-0001/), without its
stub files.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

__all__ = ["F", "LazyModule", "nn", "no_grad", "torch"]

R = TypeVar("R")


class LazyModule:
    """Stands in for the module `name`; imports it on the first attribute access."""

    __slots__ = ("_lazy_name", "_lazy_module")

    def __init__(self, name: str) -> None:
        self._lazy_name = name
        self._lazy_module: ModuleType | None = None

    def _load(self) -> ModuleType:
        module = self._lazy_module
        if module is None:
            module = self._lazy_module = importlib.import_module(self._lazy_name)
        return module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._load())

    def __repr__(self) -> str:
        state = "loaded" if self._lazy_module is not None else "not loaded yet"
        return f"<lazy module {self._lazy_name!r} ({state})>"


torch: Any = LazyModule("torch")
nn: Any = LazyModule("torch.nn")
F: Any = LazyModule("torch.nn.functional")


def no_grad(fn: Callable[..., R]) -> Callable[..., R]:
    """`@torch.no_grad()` for a plain function, without touching torch when the module is imported."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper
