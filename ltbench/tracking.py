"""Optional experiment tracking: the per-epoch metrics a run already writes to metrics.jsonl, mirrored as
TensorBoard scalars in `<run dir>/tensorboard/` (`ltbench run --tensorboard`).

TensorBoard is not a dependency: it is imported only when asked for, and a missing package is a
one-line error before training starts. metrics.jsonl stays the record; the event files are a view.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError
from ltbench.rundir import RunDir


class NullTracker:
    def log(self, row: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def check_available(kind: str | None) -> None:
    """Fail in one line, before a run directory is claimed, when the asked-for tracker cannot work."""
    if kind == "tensorboard":
        try:
            import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
        except ImportError:
            raise LtbenchError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    elif kind:
        raise LtbenchError(f"unknown tracker {kind!r}; choose tensorboard")


class TensorBoardTracker:
    """Every finite numeric field of a metrics row (except `epoch`) as a scalar at step = epoch."""

    def __init__(self, run_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise LtbenchError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        self.writer = SummaryWriter(log_dir=str(RunDir(Path(run_dir)).tensorboard_path))

    def log(self, row: dict[str, Any]) -> None:
        step = int(row["epoch"])
        for key, value in sorted(row.items()):
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def make_tracker(kind: str | None, run_dir: Path) -> NullTracker | TensorBoardTracker:
    """None -> a tracker that does nothing; 'tensorboard' -> TensorBoardTracker."""
    if not kind:
        return NullTracker()
    if kind == "tensorboard":
        return TensorBoardTracker(run_dir)
    raise LtbenchError(f"unknown tracker {kind!r}; choose tensorboard")
