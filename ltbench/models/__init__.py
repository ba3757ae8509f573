"""Backbones, heads and the model the trainer builds for a method.

`ModelOptions` and `BACKBONES` import without torch (spec resolution reads them); the torch-backed names
load on first use (PEP 562 module `__getattr__`), so `from ltbench.models import build_model` still works.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ltbench.models.options import BACKBONES, ModelOptions

if TYPE_CHECKING:
    from ltbench.models.heads import NormedLinear, ProjectionHead
    from ltbench.models.model import LTModel, build_model

_LAZY = {"LTModel": "ltbench.models.model", "build_model": "ltbench.models.model",
         "NormedLinear": "ltbench.models.heads", "ProjectionHead": "ltbench.models.heads"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BACKBONES", "LTModel", "ModelOptions", "NormedLinear", "ProjectionHead", "build_model"]
