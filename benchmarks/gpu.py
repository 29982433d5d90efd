"""Shared pieces of the GPU rows (``python -m benchmarks --only 1,2,3 --device cuda``).

Why timings end in ``torch.cuda.synchronize()``: CUDA work is queued, so a clock read right after a call
measures how fast the host queued it, not how fast the GPU ran it. Every timed GPU call here synchronises
at its end (and the warm-up round of :func:`benchmarks.common.alternate` absorbs cuDNN's algorithm search
and the allocator's first growth).

Without CUDA the GPU rows are not measured: each is a row that says why (``met`` is None), and
``__main__`` prints the reason once, so a GPU figure is never invented from a CPU run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .common import Result


def available() -> tuple[bool, str]:
    """(CUDA usable, why not)."""
    if torch.cuda.is_available():
        return True, ""
    built = torch.version.cuda
    return False, (f"CUDA is not available here (torch {torch.__version__}, "
                   + (f"built with CUDA {built}, but no GPU is visible)" if built else "a CPU-only build)"))


def name() -> str:
    """The GPU the rows ran on, with its memory (recorded in every GPU row)."""
    props = torch.cuda.get_device_properties(0)
    return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"


def synced(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` followed by a device synchronisation, so a clock around it times the GPU's work."""

    def run() -> Any:
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def skipped(row_id: str, what: str, reason: str) -> Result:
    return Result(id=row_id, what=what, unit="-", ours={"n": 0}, baseline=None, ratio=None, ratio_def="-",
                  goal="-", met=None, note=f"not run: {reason}")


def profile_top(fn: Callable[[], Any], rows: int = 12) -> str:
    """Where the time of one call of ``fn`` goes: torch.profiler's table of the ``rows`` operators with the
    most self CUDA time (kept in the JSON; the README quotes it)."""
    from torch.profiler import ProfilerActivity, profile

    fn()  # warm
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=rows)
