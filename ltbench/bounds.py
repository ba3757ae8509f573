"""Allowed ranges of numeric settings, declared next to the fields they belong to.

A dataclass field states its range in its metadata, so the range cannot drift from the field:

    lr: float = field(default=0.1, metadata=bounded(gt=0))
    momentum: float = field(default=0.9, metadata=bounded(ge=0, lt=1))
    drw_start_epoch: int | None = field(default=None, metadata={**epoch_fraction(0.8), **bounded(ge=0)})

`field_bounds(f)` reads it back; `Bounds.violation(value)` says what is wrong with a value (or None).
The spec builder checks every bounded field before any file is written. `None` is never checked here
(it means "resolve from the defaults"); non-finite numbers are refused wherever a range is declared.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bounds:
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def describe(self) -> str:
        """The allowed range in words, e.g. '> 0', '>= 0 and < 1'."""
        parts = [f"{op} {_fmt(v)}" for op, v in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                 if v is not None]
        return " and ".join(parts) if parts else "any finite number"

    def violation(self, value: Any) -> str | None:
        """None when `value` (a number, or a sequence of numbers) lies in range, else what is wrong."""
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return f"must be a number {self.describe()}"
            if isinstance(v, float) and not math.isfinite(v):
                return "must be finite"
            if ((self.gt is not None and not v > self.gt) or (self.ge is not None and not v >= self.ge)
                    or (self.lt is not None and not v < self.lt) or (self.le is not None and not v <= self.le)):
                return f"must be {self.describe()}"
        return None


def bounded(*, gt: float | None = None, ge: float | None = None, lt: float | None = None,
            le: float | None = None) -> dict[str, Bounds]:
    """Field metadata declaring the field's allowed range (merge with other metadata via `{**a, **b}`)."""
    return {"bounds": Bounds(gt=gt, ge=ge, lt=lt, le=le)}


def field_bounds(f: dataclasses.Field[Any]) -> Bounds | None:
    """The range a dataclass field declares, or None."""
    b = f.metadata.get("bounds")
    return b if isinstance(b, Bounds) else None


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)
