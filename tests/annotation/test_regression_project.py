"""A regression (denoising) project: targets imported by stem, trained, scored and ranked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from annotation.loop import next_images, score, train_round
from annotation.project import ProjectError
from annotation.setup import init_project
from tests.conftest import make_fast


def _pairs(tmp_path: Path, n: int = 4) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    noisy, clean = tmp_path / "noisy", tmp_path / "clean"
    noisy.mkdir()
    clean.mkdir()
    yy, xx = np.mgrid[:64, :64]
    for i in range(n):
        truth = 100 + 800 * (((yy - 20 - 5 * i) ** 2 + (xx - 30) ** 2) < 150)
        tifffile.imwrite(clean / f"cell{i}_clean.tif", truth.astype(np.float32))
        tifffile.imwrite(noisy / f"cell{i}.tif", (truth + rng.normal(0, 120, truth.shape)).astype(np.float32))
    return noisy, clean


@pytest.mark.slow
def test_denoising_project_round_trip(tmp_path: Path) -> None:
    noisy, clean = _pairs(tmp_path)
    (clean / "cell0_clean.tif").rename(clean / "cell0_gt.tif")  # another common suffix still matches
    project, report = init_project(tmp_path / "proj", noisy, labels_dir=clean, task="regression")
    with project:
        assert report.labels == 4 and report.unmatched_images == []
        assert project.store.target(1)["path"].endswith("cell0_gt.tif")
        make_fast(project)
        result = train_round(project, steps=6)
        assert result.accepted and result.version == 1
        assert score(project) == 4
        assert all(e.score is not None for e in next_images(project, 4))
        assert project.store.label_versions(1) == []  # regression writes no label images


def test_regression_refuses_pseudo_labels(tmp_path: Path) -> None:
    noisy, _ = _pairs(tmp_path, 1)
    with pytest.raises(ProjectError, match="regression"):
        init_project(tmp_path / "p", noisy, pseudo="otsu", task="regression")
    assert not (tmp_path / "p" / "project.db").exists()
