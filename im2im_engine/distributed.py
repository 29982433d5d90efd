"""Running one job on several processes under ``torchrun`` (DistributedDataParallel).

Why this module: the worker and the training loop must behave the same with one process and with N, so
every distributed decision lives here behind a few calls that are no-ops in a plain process:

* :func:`setup` reads the ``torchrun`` environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and joins the
  process group: NCCL when CUDA is available (one GPU per rank, ``cuda:LOCAL_RANK``; more ranks than GPUs
  are refused before joining), gloo on CPU (also on a GPU machine with ``CUDA_VISIBLE_DEVICES=``).
* :func:`shard` gives each rank its share of a list (round robin, so image ``k`` always goes to rank
  ``k % N``), :func:`gather` collects small Python objects, :func:`any_true` agrees on a stop request so
  every rank leaves a loop at the same step (a rank that leaves early would hang the others' collectives).
* :class:`GatherBatch` gathers the per-rank logits of a split batch *with gradients*, so the loss is the
  very loss of the global batch (weighted mean, batch soft dice) and training matches one process.

The engine stays a library: nothing here knows about projects or jobs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Only the main rank writes checkpoints, metrics and JSON events."""
        return self.rank == 0


_info = DistInfo()


def from_env(env: dict[str, str] | None = None) -> DistInfo:
    """The layout ``torchrun`` announces in the environment; a plain process is rank 0 of 1."""
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return DistInfo()
    if world < 1 or not 0 <= rank < world:
        return DistInfo()
    return DistInfo(rank, world, local)


def info() -> DistInfo:
    """The layout of this process once :func:`setup` ran (rank 0 of 1 before, or without torchrun)."""
    return _info


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this rank when its launcher dies: a ``kill -9`` of ``torchrun`` must not leave
    ranks running (they would keep writing into the project). Best effort; other systems skip it."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)


def setup(timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group when started by ``torchrun`` with more than one process; return the layout.

    The timeout bounds how long a rank waits for a peer that died (then it fails instead of hanging).
    """
    global _info
    found = from_env()
    if not found.active:
        _info = DistInfo()
        return _info
    _die_with_parent()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            gpus = torch.cuda.device_count()
            if found.local_rank >= gpus:  # NCCL refuses two ranks on one GPU: say so before it hangs
                raise RuntimeError(f"process {found.local_rank} of this node has no GPU: {gpus} visible; "
                                   "run at most one process per GPU (jobs.nproc, jobs.slurm.gres), or hide "
                                   "the GPUs (CUDA_VISIBLE_DEVICES=) to run the processes on the CPU (gloo)")
            torch.cuda.set_device(found.local_rank)
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    _info = found
    return _info


def teardown() -> None:
    """Leave the process group cleanly (avoids warnings and lets torchrun see a normal exit)."""
    global _info
    if dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
    _info = DistInfo()


def device() -> torch.device | None:
    """The device of this rank (``cuda:LOCAL_RANK`` or cpu); None outside torchrun (the engine's default)."""
    if not _info.active:
        return None
    if torch.cuda.is_available():
        return torch.device("cuda", _info.local_rank)
    return torch.device("cpu")


def shard(items: list, info_: DistInfo | None = None) -> list:
    """This rank's share, round robin: item ``k`` goes to rank ``k % world``."""
    d = info_ or _info
    return list(items[d.rank::d.world])


def split_sizes(total: int, world: int) -> list[int]:
    """How a global batch of ``total`` is split over ``world`` ranks (sizes differ by at most one)."""
    return [len(part) for part in np.array_split(np.arange(total), world)]


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (small, picklable), in rank order, on every rank; ``[obj]`` in a plain process."""
    if not _info.active:
        return [obj]
    out: list[Any] = [None] * _info.world
    dist.all_gather_object(out, obj)
    return out


def any_true(flag: bool) -> bool:
    """True on every rank if it is true on any (one cheap all-reduce); the flag itself in a plain process."""
    if not _info.active:
        return bool(flag)
    dev = device() or torch.device("cpu")
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    if _info.active:
        dist.barrier()


class GatherBatch(torch.autograd.Function):
    """All-gather the ranks' parts of a split batch along dim 0, keeping gradients.

    Backward: every rank computes the same global loss, so the gradient of the global batch is summed over
    ranks and each rank keeps the slice of its own part. DistributedDataParallel then *averages* the
    parameter gradients, and the two factors of ``world`` cancel: the update equals one process on the
    whole batch. Parts may differ in size by one (padded for the collective, trimmed after).
    """

    @staticmethod
    def forward(ctx, local: torch.Tensor, sizes: list[int], rank: int) -> torch.Tensor:  # type: ignore[override]
        ctx.sizes, ctx.rank = sizes, rank
        biggest = max(sizes)
        padded = local
        if local.shape[0] < biggest:
            pad = local.new_zeros((biggest - local.shape[0], *local.shape[1:]))
            padded = torch.cat([local, pad])
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start: start + ctx.sizes[ctx.rank]], None, None


def gather_batch(local: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """The global batch from every rank's part (identity in a plain process)."""
    if not _info.active:
        return local
    return GatherBatch.apply(local, sizes, _info.rank)
