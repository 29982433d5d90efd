"""The GPU rows of the benchmarks (``--device cuda``): without CUDA they say so and measure nothing.

On a machine with a GPU these tests only check the skip logic with CUDA hidden; the rows themselves are run
with ``python -m benchmarks --only 1,2,3 --device cuda`` (figures in benchmarks/README.md).
"""

from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("module", ["training", "inference", "uncertainty"])
def test_gpu_rows_are_skipped_without_cuda(no_cuda, module):
    import importlib

    rows = importlib.import_module(f"benchmarks.{module}").run(True, device="cuda")
    assert rows and all(r.id.endswith(".gpu") for r in rows)
    for r in rows:
        assert r.met is None and r.ours == {"n": 0}
        assert r.note.startswith("not run: CUDA is not available here")


def test_main_says_why_and_writes_the_skipped_rows(no_cuda, tmp_path, capsys):
    from benchmarks.__main__ import main

    out = tmp_path / "gpu.json"
    assert main(["--only", "1,2,3", "--device", "cuda", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "--device cuda: CUDA is not available here" in printed and "the GPU rows are skipped" in printed
    rows = json.loads(out.read_text())["results"]
    assert [r["id"] for r in rows] == ["1.2d.gpu", "1.3d.gpu", "2.2d.gpu", "2.3d.gpu", "3.gpu"]
    assert all(r["met"] is None for r in rows)
