"""The benchmark suite must not rot: it imports, and its cheapest benchmark runs in a tiny mode.

No timing is asserted (the figures belong in benchmarks/README.md, not in CI verdicts).
"""

from __future__ import annotations

import json

import numpy as np


def test_suite_lists_every_benchmark_module():
    import importlib

    from benchmarks import BENCHMARKS

    assert [n for n, _ in BENCHMARKS] == list(range(1, 11))
    for _, name in BENCHMARKS:
        assert callable(importlib.import_module(f"benchmarks.{name}").run)


def test_save_benchmark_runs_tiny(monkeypatch, tmp_path):
    from benchmarks import save
    from benchmarks.common import Result, table

    real = save._strokes
    monkeypatch.setattr(save, "_strokes", lambda n, shape, seed=0: real(3, shape, seed))
    rows = save.run(quick=True)
    assert len(rows) == 1 and isinstance(rows[0], Result)
    row = rows[0]
    assert row.ours["n"] == 3 and row.baseline["n"] == 3 and np.isfinite(row.ratio["median"])
    assert "| 6 |" in table(rows)
    json.dumps(row.as_dict())  # what --json writes


def test_stroke_window_matches_full_plane_mask():
    from annotation.editing import stroke_mask, stroke_window

    pts = [(10.3, 5.7), (40.9, 60.2), (3.0, 90.5)]
    full = stroke_mask((64, 96), pts, 4)
    (ys, xs), local = stroke_window((64, 96), pts, 4)
    rebuilt = np.zeros_like(full)
    rebuilt[ys, xs] = local
    assert np.array_equal(full, rebuilt)
