"""A denoise (Noise2Void) project: images only, init -> train -> score -> rank -> export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from annotation.export import ExportFailed, export
from annotation.loop import checkpoint_path, next_images, score, train_round
from annotation.project import Project, ProjectError
from annotation.setup import init_project
from im2im_engine import Engine, io
from im2im_engine.exported import ExportedModel, predict_folder
from im2im_engine.n2v import to_raw_units
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


def test_denoise_project_exports_every_image_denoised_in_its_own_units(tmp_path: Path) -> None:
    """``export --format denoised``: one float32 OME-TIFF per image, the engine's prediction with the
    normalisation undone, a CSV and provenance; labels and pairs are refused (there are none), a cancel
    leaves nothing, and ``predict`` with the model writes ``NAME_denoised.ome.tif`` in the same units."""
    images = _noisy(tmp_path, 3)
    project, _ = init_project(tmp_path / "proj", images, task="denoise")
    with project:
        _tiny(project)
        assert train_round(project).accepted
        engine = Engine.load(checkpoint_path(project, 1), device="cpu")
        for fmt in ("labels", "pairs"):
            with pytest.raises(ExportFailed, match=r"denoise project has no labels.*--format denoised"):
                export(project, fmt, tmp_path / fmt)
        with pytest.raises(ExportFailed, match="cancelled"):
            export(project, "denoised", tmp_path / "stopped", should_stop=lambda: True)
        assert not (tmp_path / "stopped").exists() and not list(tmp_path.glob(".stopped.*"))

        report = export(project, "denoised", tmp_path / "den")
        assert report.n_images == 3 and report.model_version == 1
        assert report.summary().startswith("exported 3 images denoised by v1")
        with open(tmp_path / "den" / "denoised.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert sorted(r["image"] for r in rows) == ["img0", "img1", "img2"]
        for row in rows:
            raw = io.to_spatial(io.read_image(row["image_path"]).data, 2)
            got = tifffile.imread(tmp_path / "den" / row["denoised_file"])
            assert got.dtype == np.float32 and got.shape == raw.shape[1:]
            expected = to_raw_units(engine.predict(raw).output, raw, engine.config)[0]
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
            assert raw.min() <= got.min() and got.max() <= raw.max()  # the image's units, not normalised ones
            assert raw.min() > 2  # (which would lie below it)
        prov = json.loads((tmp_path / "den" / "provenance.json").read_text())
        assert prov["format"] == "denoised" and prov["model"]["version"] == 1 and prov["tta"] is True

        done = predict_folder(engine, images, tmp_path / "pred")
        assert sorted(p.name for p in done.written) == [f"img{i}_denoised.ome.tif" for i in range(3)]
        assert not list((tmp_path / "pred").glob("*_probabilities*"))
        np.testing.assert_allclose(tifffile.imread(tmp_path / "pred" / "img0_denoised.ome.tif"),
                                   tifffile.imread(tmp_path / "den" / "denoised" / "img0.ome.tif"),
                                   rtol=1e-4, atol=1e-3)
