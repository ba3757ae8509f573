"""Every value of a built spec checked against its declared range, plus the rules that tie fields together.

Single-field ranges live next to the fields (`ltbench.bounds.bounded` metadata on RunSpec, TrainSettings
and each method's Hparams); this module walks all of those fields generically, so a field added later with
`bounded(...)` is checked without a change here. The cross-field rules are the ones a range cannot say:

- 0 <= warmup_epochs < epochs (a warm-up as long as training never reaches the base LR);
- user-given lr_milestones strictly increasing inside (0, epochs), as many as the schedule has factors
  (lr_at pairs milestones with factors; schedules.SCHEDULES);
- every epoch-valued hyperparameter (`*_epoch`: DRW / masking / mixing start and end) <= epochs.

All run when the spec is built, before anything is written; the error names the key, the value and the
allowed range in one line.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ltbench.bounds import field_bounds
from ltbench.errors import LtbenchError
from ltbench.schedules import SCHEDULES


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def check_fields(cls: type, values: dict[str, Any], prefix: str = "") -> None:
    """Each bounded field of dataclass `cls` whose value (in `values`) is not None lies in its range."""
    for f in dataclasses.fields(cls):
        bounds = field_bounds(f)
        value = values.get(f.name)
        if bounds is None or value is None:
            continue
        problem = bounds.violation(value)
        if problem is not None:
            raise LtbenchError(f"{prefix}{f.name} {problem}, got {_show(value)}")


def check_given(classes: tuple[type, ...], values: dict[str, Any], given: dict[str, Any]) -> None:
    """The ranges of the keys the user set (`given`), read from their coerced `values`, before resolving."""
    chosen = {k: values[k] for k in given if k in values}
    for cls in classes:
        check_fields(cls, chosen)


def check_spec(spec: Any, hparams_cls: type, milestones_given: bool) -> None:
    """All ranges and cross-field rules of a built RunSpec (raises LtbenchError, one line)."""
    check_fields(type(spec), {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)})
    train = spec.train
    check_fields(type(train), dataclasses.asdict(train))
    check_fields(hparams_cls, spec.hparams)
    epochs = train.epochs
    if train.warmup_epochs and train.warmup_epochs >= epochs:
        raise LtbenchError(f"warmup_epochs must be < epochs ({epochs}), got {train.warmup_epochs}")
    if milestones_given:
        _check_milestones(tuple(train.lr_milestones or ()), train.schedule, epochs)
    for name, value in spec.hparams.items():
        if name.endswith("_epoch") and isinstance(value, int) and not isinstance(value, bool) and value > epochs:
            raise LtbenchError(f"{name} must be <= epochs ({epochs}), got {value}")


def _check_milestones(marks: tuple[int, ...], schedule: str, epochs: int) -> None:
    shown = _show(list(marks))
    if any(not 0 < m < epochs for m in marks):
        raise LtbenchError(f"lr_milestones must each be > 0 and < epochs ({epochs}), got {shown}")
    if any(b <= a for a, b in zip(marks, marks[1:], strict=False)):
        raise LtbenchError(f"lr_milestones must be strictly increasing, got {shown}")
    factors = SCHEDULES[schedule][2]
    if len(marks) != len(factors):
        raise LtbenchError(f"lr_milestones must be {len(factors)} epoch(s) for schedule {schedule}, got {shown}")
