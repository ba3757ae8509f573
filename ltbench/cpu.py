"""CPU process settings that change speed, never numbers (docs/performance.md, "Recommended trainer changes").

- `keep_buffers_on_heap()`: glibc serves allocations above its mmap threshold (dynamic, at most 32 MiB on
  64-bit) with `mmap` and returns them to the OS on free, so a step whose activations exceed it
  page-faults its buffers back in on every step. Measured: -15 to -28 % on the masked SMCL step.
- `WORKER_ENV`: variables that must be in a CPU worker's environment before torch is imported (OpenMP
  reads them once): passive waiting, so idle OpenMP threads do not spin on a shared 2-core machine, and
  the allocator setting above for processes that do not call `keep_buffers_on_heap` themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

WORKER_ENV = {
    "OMP_WAIT_POLICY": "PASSIVE",
    "GLIBC_TUNABLES": "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647",
}


def keep_buffers_on_heap() -> bool:
    """glibc only: serve every allocation from the heap and never trim it (process-wide, irreversible).

    `M_MMAP_MAX = 0` and a huge `M_TRIM_THRESHOLD` keep freed memory in the process for reuse; the cost
    is that the process keeps its peak heap, which every training step reaches anyway. Returns False
    where glibc's `mallopt` is not available.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def process_settings() -> dict[str, str | None]:
    """The variables of WORKER_ENV as this process sees them (recorded in env.json)."""
    return {k: os.environ.get(k) for k in WORKER_ENV}
