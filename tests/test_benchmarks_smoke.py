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


def test_denoise_benchmark_runs_tiny(monkeypatch, tmp_path):
    """#10 (Noise2Void) on the demo image for two steps: rows for N2V and N2V2 with the preset's output
    averaging and the one-pass figure beside it, and the ceiling (the same network supervised on the
    truth), JSON-safe; without CAREamics' venv the note says so."""
    from benchmarks import denoise

    monkeypatch.setenv("IM2IM_CAREAMICS_VENV", str(tmp_path / "no-venv"))
    rows = denoise.main(["--images", "demo", "--steps", "2", "--batch", "2", "--threads", "1",
                         "--masked-percent", "1.0", "--json", str(tmp_path / "out.json")])
    assert rows == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert [r["id"] for r in out] == ["10.demo.n2v", "10.demo.n2v2"]
    for r in out:
        run = r["params"]["ours"][0]
        assert run["tta"] is True and run["masked_percent"] == 1.0 and np.isfinite(run["one_pass_psnr"])
        assert r["params"]["steps"] == 2 and r["baseline"] is None and "CAREamics not run" in r["note"]
        assert "one pass per window" in r["note"] and np.isfinite(r["ours"]["median"])
        assert np.isfinite(r["params"]["ceiling_psnr"]) and "supervised on the truth" in r["note"]
