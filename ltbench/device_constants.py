"""Small constant tensors (normalisation statistics, colour weights, fill colours) built once per device.

`torch.tensor(values, device=cuda)` inside a training step is a host->device copy that, without pinned
memory, waits for the device's stream (PyTorch's `copy_` with `non_blocking=False` synchronises), so a
constant rebuilt per call is a hidden sync on a GPU. `device_constant` builds each distinct constant
once per (values, device, dtype) and hands out the same tensor afterwards (tests/test_host_sync.py
counts such calls inside the step).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
else:  # torch on first use: the methods that import this module are read without it (ltbench/lazy.py)
    from ltbench.lazy import torch


@functools.lru_cache(maxsize=512)
def device_constant(values: tuple[Any, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """`torch.tensor(values, dtype=dtype, device=device)`, cached. `values` is a (nested) tuple of numbers.

    The result is shared between callers: never modify it in place. It is built outside inference
    mode, so autograd may save it for backward even when the first call came from an evaluation.
    """
    with torch.inference_mode(False):
        return torch.tensor(values, dtype=dtype, device=device)
