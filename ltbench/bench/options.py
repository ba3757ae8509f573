"""What `ltbench bench` measures: the method, data, sizes, device settings and repetitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_WORKERS = (0, 2)
CHEAP_REPS = 10  # calls per round for the cheap variants (input path, saliency): they take milliseconds


@dataclass
class BenchOptions:
    method: str = "erm"
    dataset: str = "shapes"
    ratio: float | str = 100
    steps: int = 3  # timed calls per model variant per round
    rounds: int = 5
    batch_size: int | None = 128  # None: the method's recipe (e.g. SMCL's 256 on CIFAR)
    device: str = "auto"
    precision: str | None = None  # None: the spec's (fp32 unless --set precision=bf16)
    channels_last: bool | None = None  # None: the trainer's default (on for CUDA)
    compile: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    preset: str = "paper"
    workers: Sequence[int] = DEFAULT_WORKERS  # DataLoader workers of the classic input path
    cheap_reps: int = CHEAP_REPS
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    malloc_heap: bool = False  # glibc: keep big CPU buffers on the heap (`ltbench.cpu.keep_buffers_on_heap`)
    data_dir: Any = None
    download: bool = False
