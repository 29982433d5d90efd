"""The training input pipeline: patch batches prepared ahead in background threads, in a fixed order.

Why threads and a plan: the patch sampler's randomness is drawn in the calling thread, batch after batch
(:meth:`im2im_engine.data.PatchSampler.plan`), so the stream stays a pure function of ``training.seed``;
cutting, flipping and scaling the patches (:meth:`~im2im_engine.data.PatchSampler.make`) is pure numpy,
which releases the GIL for its copies, so a few threads cut the next batches while the network trains on
this one. Batches are handed out in the order they were planned, whatever order the threads finish in.

On CUDA the batches are cut straight into page-locked (pinned) host memory, so the copy to the GPU is
asynchronous (``non_blocking=True`` from pageable memory would wait for the GPU queue to drain, a host
sync per step). Pinned blocks are freed to PyTorch's caching host allocator, which does not hand a block
out again before the copies that read it have finished.

A sampler without ``plan``/``make`` (any object with ``batch(batch_size)``) is run by one background
thread, in order, so its own generator is still drawn from sequentially. ``transform`` (e.g. a masking
step with its own generator) is applied in the consuming thread, in stream order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

Batch = tuple[np.ndarray, np.ndarray, np.ndarray]


def default_workers(device: torch.device) -> int:
    """Background threads for a device: on CUDA up to 4 (leaving a core to the training loop); on CPU
    none, because there the network's own threads already keep every core busy and a batch is cut in a
    small fraction of a step (measured: no gain on 2 cores, see benchmarks/README.md)."""
    if device.type != "cuda":
        return 0
    return max(1, min(4, (os.cpu_count() or 2) - 1))


class BatchStream:
    """Yields ``(x, y, w)`` CPU tensors of ``batch_size`` patches, ``workers`` threads ahead of the consumer.

    ``workers=0`` cuts each batch in the calling thread when asked (no threads at all). ``depth`` batches
    are kept in flight (default ``2 * workers``). ``pin``: cut into pinned memory (for CUDA).
    """

    def __init__(self, sampler: Any, batch_size: int, workers: int = 0, depth: int | None = None,
                 pin: bool = False, transform: Callable[[np.ndarray, np.ndarray, np.ndarray], Batch] | None = None):
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.workers = max(0, int(workers))
        self.depth = max(1, depth if depth is not None else 2 * self.workers)
        self.pin = bool(pin)
        self.transform = transform
        self._planned = hasattr(sampler, "plan") and hasattr(sampler, "make")
        self._pool: ThreadPoolExecutor | None = None
        if self.workers:
            # an unplanned sampler draws its randomness inside batch(): one thread keeps that in order
            n = self.workers if self._planned else 1
            self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="im2im-patches")
        self._queue: deque[Future] = deque()

    # ------------------------------------------------------------------ producing
    def _alloc(self, shape: tuple[int, ...], dtype: np.dtype) -> torch.Tensor:
        return torch.empty(shape, dtype=torch.from_numpy(np.empty(0, dtype)).dtype, pin_memory=self.pin)

    def _make(self, plans: list) -> tuple[torch.Tensor, ...]:
        tensors = tuple(self._alloc(shape, dtype) for shape, dtype in self.sampler.shapes(len(plans)))
        self.sampler.make(plans, tuple(t.numpy() for t in tensors))
        return tensors

    def _batch(self) -> tuple[torch.Tensor, ...]:
        arrays = self.sampler.batch(self.batch_size)
        return tuple(self._tensor(a) for a in arrays)

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a))
        return t.pin_memory() if self.pin else t

    def _submit(self) -> Future:
        assert self._pool is not None
        if self._planned:
            return self._pool.submit(self._make, self.sampler.plan(self.batch_size))  # drawn here, in order
        return self._pool.submit(self._batch)

    # ------------------------------------------------------------------ consuming
    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The next batch of the stream (CPU tensors; pinned when ``pin``)."""
        if self._pool is None:
            batch = self._make(self.sampler.plan(self.batch_size)) if self._planned else self._batch()
        else:
            while len(self._queue) < self.depth:
                self._queue.append(self._submit())
            batch = self._queue.popleft().result()
            self._queue.append(self._submit())  # keep the threads busy while this batch trains
        if self.transform is not None:
            arrays = [t.numpy() for t in batch]
            out = self.transform(*arrays)
            batch = tuple(t if a is b else self._tensor(b) for t, a, b in zip(batch, arrays, out, strict=True))
        return batch  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the threads (batches not yet handed out are dropped)."""
        if self._pool is not None:
            for fut in self._queue:
                fut.cancel()
            self._queue.clear()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
