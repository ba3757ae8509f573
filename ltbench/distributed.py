"""One run on several processes: torchrun + DistributedDataParallel (gloo on CPU, nccl on CUDA).

Under torchrun (`WORLD_SIZE` > 1 in the environment) the trainer joins the process group and wraps the
model in DDP. Every rank draws the same epoch permutation from the shared seed and takes every
world-th index of it (padded by wrapping around to a multiple of the world size, as PyTorch's
DistributedSampler does), in per-rank batches of batch_size / world. Augmentation parameters and
class-sampler draws come from a per-rank generator, so ranks do not draw the same second batch;
the per-batch host-side scalars (mixing / masking decisions, lambda, boxes) come from the shared
`rng` and are the same on every rank, i.e. one decision per global batch as in the single-process
reference.

BatchNorm statistics are per rank (no SyncBN), as in the references' DataParallel; DDP broadcasts rank
0's buffers every step, so evaluation uses rank 0's running statistics. Deviations from a one-process
run at the same global batch: each rank's loss is a mean over its own shard (DRW's weighted mean is
normalised per rank, SupCon contrasts within the rank's shard only), and DDP averages the gradients.

Rank 0 alone writes the run directory; evaluation is sharded (every rank predicts its share of the
test list, the predictions are gathered). A checkpoint holds the per-rank generator states, so a run
resumes only with the same number of processes.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ltbench.errors import LtbenchError

T = TypeVar("T")


@dataclass
class Dist:
    """The process group as the trainer sees it; world = 1 is a plain single-process run."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's share of a permutation: every world-th index, padded to equal length by wrapping."""
        if not self.active:
            return order
        total = -(-order.shape[0] // self.world) * self.world
        if total > order.shape[0]:
            order = torch.cat([order, order[: total - order.shape[0]]])
        return order[self.rank::self.world]

    def eval_shard(self, n: int, device: torch.device) -> torch.Tensor:
        """The test indices this rank predicts (no padding)."""
        return torch.arange(self.rank, n, self.world, device=device)

    def all_reduce_mean(self, values: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return values
        values = values.clone()
        dist.all_reduce(values)
        return values / self.world

    def gather_predictions(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """Reassemble predictions of `eval_shard` shards into one vector of length n (on every rank)."""
        if not self.active:
            return local
        width = -(-n // self.world)
        padded = torch.full((width, *local.shape[1:]), -1, dtype=local.dtype, device=local.device)  # [N] or [N, C]
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        full = torch.empty((n, *local.shape[1:]), dtype=local.dtype, device=local.device)
        for r, part in enumerate(parts):
            count = len(range(r, n, self.world))
            full[r::self.world] = part[:count]
        return full

    def gather_objects(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order (``[obj]`` without a process group)."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def from_env(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the torchrun process group if there is one; returns it and this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise LtbenchError(f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                               "use --nproc-per-node <= the number of GPUs")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    if dist.get_world_size() != world:
        raise LtbenchError(f"WORLD_SIZE={world} but the process group has {dist.get_world_size()} ranks")
    return Dist(world=world, rank=dist.get_rank(), local_rank=local_rank, owns_group=owns), device


def torchrun_command(argv: list[str], nproc: int) -> list[str]:
    """The command that re-runs `ltbench <argv>` as `nproc` torchrun workers (without --nproc-per-node)."""
    args: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--nproc-per-node":
            skip = True
            continue
        if arg.startswith("--nproc-per-node="):
            continue
        args.append(arg)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "ltbench", *args]


def env_rank() -> int:
    """This process's rank from the torchrun environment (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))
