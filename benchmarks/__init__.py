"""Benchmarks of im2im-active, each run side by side with a baseline: ``python -m benchmarks [--quick]``.

Why a package and not a pytest plugin: the figures are for people (README, issue notes), they need a
quiet machine and minutes, and timing assertions in tests only make CI flaky. Each module exposes
``run(quick: bool) -> list[Result]``; :mod:`benchmarks.__main__` runs them, prints the table and writes JSON.
"""

from __future__ import annotations

#: (number, module) in the order of the issue's table.
BENCHMARKS: list[tuple[int, str]] = [
    (1, "training"),
    (2, "inference"),
    (3, "uncertainty"),
    (4, "brush"),
    (5, "latency"),
    (6, "save"),
    (7, "loop_turn"),
    (8, "queue_open"),
    (9, "memory"),
    (10, "diversity"),
]
