"""A denoise (Noise2Void) project: images only, init -> train -> score -> rank -> export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from annotation.export import export
from annotation.loop import checkpoint_path, next_images, score, train_round
from annotation.project import Project, ProjectError
from annotation.setup import init_project
from im2im_engine import Engine, io
from im2im_engine.exported import ExportedModel
from tests.conftest import make_fast


def _noisy(tmp_path: Path, n: int = 2) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "noisy"
    folder.mkdir()
    yy, xx = np.mgrid[:48, :48]
    for i in range(n):
        clean = 20 + 60 * (((yy - 20 - 6 * i) ** 2 + (xx - 30) ** 2) < 150)
        tifffile.imwrite(folder / f"img{i}.tif", rng.poisson(clean).astype(np.uint16))
    return folder


def _tiny(project: Project) -> None:
    make_fast(project, steps=2)
    config = dict(project.config)
    config["model"] = {**config["model"], "params": {"depth": 1, "num_channels_init": 4},
                       "head_features": 4}
    config["task"] = {**config["task"], "n2v": {**config["task"]["n2v"], "strategy": "median"}}
    config["data"] = {**config["data"], "patch_size": [16, 16]}
    config["inference"] = {**config["inference"], "roi_size": [32, 32]}
    config["uncertainty"] = {**config["uncertainty"], "passes": 2}
    project.save_config(config)


def test_denoise_project_from_init_to_export(tmp_path: Path) -> None:
    images = _noisy(tmp_path)
    project, report = init_project(tmp_path / "proj", images, task="denoise")
    with project:
        assert len(report.added) == 2 and report.labels == 0
        assert project.task == "denoise" and project.engine_config().task.kind == "denoise"
        _tiny(project)
        result = train_round(project)
        assert result.accepted and result.version == 1
        # checked like any round: an image left out, judged by blind-spot predictions of hidden pixels
        assert result.check["rule"] == "rotating" and result.check["metric"] == "blindspot_psnr"
        assert np.isfinite(result.check["child"]) and len(result.check["images"]) == 1
        again = train_round(project)
        assert again.check["parent"] is not None and again.check["images"] != result.check["images"]
        assert again.accepted == (again.check["child"] + 0.05 >= again.check["parent"])
        assert score(project) == 2
        queue = next_images(project, 2)
        scores = [e.score for e in queue]
        assert all(s is not None and s >= 0 for s in scores) and scores == sorted(scores, reverse=True)
        assert project.store.label_versions(1) == []  # denoising writes no label images
        out = export(project, "bioimageio", tmp_path / "bmz")
        assert {"weights.torchscript.pt", "weights.onnx", "rdf.yaml"} <= set(out.files)
        assert out.checks["torchscript_vs_engine_max_abs_diff"] <= 1e-3
        image = io.to_spatial(io.read_image(images / "img0.tif").data, 2)
        engine = Engine.load(checkpoint_path(project, project.store.current_model), device="cpu")
        exported = ExportedModel(out.path)
        try:
            got = exported.predict(image)
        finally:
            exported.close()
        assert got.labels is None
        assert np.abs(got.output - engine.predict(image).output).max() < 1e-3


def test_denoise_refuses_labels(tmp_path: Path) -> None:
    images = _noisy(tmp_path, 1)
    with pytest.raises(ProjectError, match="needs no labels"):
        init_project(tmp_path / "p", images, pseudo="otsu", task="denoise")
    assert not (tmp_path / "p" / "project.db").exists()
