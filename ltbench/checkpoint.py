"""A run's checkpoint (last.pt): what Trainer.state holds, encoded with torch.save, and read back only
as plain containers and tensors.

The file is written through RunDir (atomically, never through a link); this module knows its content.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import torch

from ltbench.config import RunSpec
from ltbench.errors import LtbenchError
from ltbench.rundir import RunDir


def save_checkpoint(run_dir: RunDir, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    run_dir.write_checkpoint(buf.getvalue())


class DamagedCheckpoint(LtbenchError):
    """last.pt cannot be resumed from; the run is left as it was (not recorded as failed)."""

    def __init__(self, path: Path):
        super().__init__(f"checkpoint {path} is damaged or not ltbench's (move it away or --force)")


# what Trainer.state writes; load_checkpoint refuses anything else before a tensor is touched
_CKPT_KEYS = ("spec_hash", "next_epoch", "best", "elapsed", "model", "optimizer", "method", "generator", "rng",
              "torch_cpu_rng")


def load_checkpoint(run_dir: RunDir, spec: RunSpec) -> dict[str, Any] | None:
    """The run's checkpoint as plain containers and tensors, or None; anything else is DamagedCheckpoint.

    weights_only=True: the restricted unpickler builds only tensors and plain containers, so a crafted
    pickle cannot call code (PyTorch docs, torch.load: "weights_only").
    """
    path = run_dir.checkpoint_path
    if not path.is_symlink() and not path.exists():
        return None
    if path.is_symlink() or not path.is_file():
        raise DamagedCheckpoint(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn file cannot occur (atomic rename), but a foreign or crafted one can
        raise DamagedCheckpoint(path) from None
    other = ckpt.get("spec_hash") if isinstance(ckpt, dict) else None
    if isinstance(other, str) and other != spec.hash:
        raise LtbenchError(f"{path} belongs to another spec ({other} != {spec.hash}); "
                           "refusing to resume across specs")
    if not _checkpoint_shape_ok(ckpt, spec.train.epochs):
        raise DamagedCheckpoint(path)
    return ckpt


def _checkpoint_shape_ok(ckpt: Any, epochs: int) -> bool:
    """The keys and types Trainer.state writes, with 1 <= next_epoch <= epochs (a resume never skips ahead)."""
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in _CKPT_KEYS):
        return False
    nxt, best, elapsed = ckpt["next_epoch"], ckpt["best"], ckpt["elapsed"]
    if isinstance(nxt, bool) or not isinstance(nxt, int) or not 1 <= nxt <= epochs:
        return False
    if not isinstance(best, dict) or "epoch" not in best or "top1" not in best:
        return False
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not math.isfinite(elapsed):
        return False
    return (isinstance(ckpt["model"], dict) and isinstance(ckpt["optimizer"], dict)
            and isinstance(ckpt["method"], dict) and isinstance(ckpt["rng"], dict)
            and isinstance(ckpt["generator"], torch.Tensor) and isinstance(ckpt["torch_cpu_rng"], torch.Tensor))
