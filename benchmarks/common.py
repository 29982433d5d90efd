"""Shared plumbing: alternating timed runs, robust statistics, results and the printed table.

Why alternate baseline and ours within a benchmark: the machine is shared and its load drifts over
minutes; running A, B, A, B ... and reporting the median of per-pair ratios cancels most of that drift,
where "all of A, then all of B" would attribute a load spike to one side.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles, min, max and count of a sample (what the table and the JSON report)."""
    arr = np.asarray(values, float)
    if arr.size == 0:
        return {"n": 0}
    q1, med, q3 = np.percentile(arr, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "min": float(arr.min()),
            "max": float(arr.max()), "n": int(arr.size)}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, float), q)) if values else float("nan")


def timed(fn: Callable[[], Any], clock: Callable[[], float] = time.perf_counter) -> tuple[float, Any]:
    """Seconds of one call on ``clock`` (after a garbage collection, so earlier garbage is not billed)."""
    gc.collect()
    t0 = clock()
    out = fn()
    return clock() - t0, out


def alternate(ours: Callable[[], Any], baseline: Callable[[], Any], repeats: int,
              warmup: bool = True, clock: Callable[[], float] = time.perf_counter) -> tuple[list[float], list[float]]:
    """Seconds of ``repeats`` calls of each, interleaved (baseline first on even rounds, ours on odd).

    ``clock=time.process_time`` counts this process's CPU seconds (all its threads): on a shared machine
    whose load swings 10x within seconds, that is the steadier measure of work done for CPU-bound code.
    """
    if warmup:
        baseline()
        ours()
    t_ours: list[float] = []
    t_base: list[float] = []
    for i in range(repeats):
        order = [(baseline, t_base), (ours, t_ours)]
        if i % 2:
            order.reverse()
        for fn, sink in order:
            sink.append(timed(fn, clock)[0])
    return t_ours, t_base


def pair_ratios(num: list[float], den: list[float]) -> list[float]:
    """Per-round ratios of two interleaved samples (drift cancels within a round)."""
    return [a / b for a, b in zip(num, den, strict=False) if b > 0]


@dataclass
class Result:
    """One row of the table.

    ``ratio`` is defined per row by ``ratio_def`` (e.g. "baseline time / our time": higher is better);
    ``met`` is None where no goal applies or it could not be measured here (say why in ``note``).
    """

    id: str
    what: str
    unit: str
    ours: dict[str, float]
    baseline: dict[str, float] | None
    ratio: dict[str, float] | None
    ratio_def: str
    goal: str
    met: bool | None
    note: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fmt(stats: dict[str, float] | None, digits: int = 3) -> str:
    """'median [q1-q3]' or '-'."""
    if not stats or not stats.get("n"):
        return "-"
    return f"{stats['median']:.{digits}g} [{stats['q1']:.{digits}g}-{stats['q3']:.{digits}g}]"


def table(results: list[Result]) -> str:
    """A Markdown table (it is pasted into benchmarks/README.md as is)."""
    head = "| # | what | unit | ours (median [IQR]) | baseline | ratio (median [IQR]) | ratio is | goal | met |"
    rows = [head, "|" + "---|" * 9]
    for r in results:
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        rows.append(f"| {r.id} | {r.what} | {r.unit} | {fmt(r.ours)} | {fmt(r.baseline)} | {fmt(r.ratio)} | "
                    f"{r.ratio_def} | {r.goal} | {met} |")
    return "\n".join(rows)


def machine() -> dict[str, Any]:
    """What the figures came from: CPU model and count, load, torch/monai versions, GPU if any."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    try:
        import monai

        info["monai"] = monai.__version__
    except ImportError:
        pass
    return info


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")
