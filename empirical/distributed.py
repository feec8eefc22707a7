"""Multi-process training with torch's own engine: ``torchrun`` + DistributedDataParallel.

    torchrun --standalone --nproc_per_node 2 -m empirical.train --dataset mnist --scheme max ...
    torchrun --nnodes 2 --node_rank R --master_addr HOST --nproc_per_node 8 -m empirical.train ...

``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; :func:`init` reads them and
opens the process group (NCCL on CUDA, gloo on CPU).  Without these variables the run is a single process
and nothing here does anything.

Data parallelism as the training loop uses it: every process holds the same model and draws the same
global batch of B examples (the order depends only on the seed and the epoch); process r trains on the
r-th contiguous slice of B / world_size examples; DDP averages the gradients, so each step is, up to
floating-point summation order, the single-process step on the whole global batch (the loss of a batch
is a mean over its examples).  Only rank 0 writes checkpoints and results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistContext", "init", "wrap", "shard", "mean_over_ranks", "barrier", "shutdown"]


@dataclass(frozen=True)
class DistContext:
    """rank, world_size, local_rank of this process and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(device: str | None = None, backend: str | None = None) -> DistContext:
    """Open the process group if launched by torchrun (WORLD_SIZE > 1); choose the device.

    ``device`` None or "auto": CUDA (the local rank's GPU) when available, else CPU.  ``backend`` None: nccl on CUDA,
    gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local if dev.index is None and world > 1 else (dev.index or 0))
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if dev.type == "cuda" else "gloo"))
    return DistContext(rank=rank, world_size=world, local_rank=local, device=dev)


def wrap(model: nn.Module, ctx: DistContext) -> nn.Module:
    """The model in DistributedDataParallel when the run has several processes, else unchanged."""
    if not ctx.enabled:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This process's contiguous slice of a global batch (its size must be divisible by world_size)."""
    if not ctx.enabled:
        return t
    n = t.shape[0]
    if n % ctx.world_size:
        raise ValueError(f"global batch of {n} is not divisible by world_size {ctx.world_size}")
    m = n // ctx.world_size
    return t[ctx.rank * m:(ctx.rank + 1) * m]


def mean_over_ranks(value: float, ctx: DistContext) -> float:
    """The mean of a float over the processes (the value itself in a single process)."""
    if not ctx.enabled:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
