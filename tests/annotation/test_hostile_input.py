"""Bad and hostile input: each gets a clear error naming the file and the problem, nothing stored is lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from annotation.integrity import check_images
from annotation.project import Project, ProjectError
from annotation.setup import init_project
from annotation.status import format_status, project_status
from annotation.trainset import usable_images


def _init(tmp_path: Path, images: Path, **kw) -> Project:
    project, report = init_project(tmp_path / "proj", images, pseudo="otsu", **kw)
    project.report = report  # type: ignore[attr-defined]
    return project


def test_a_folder_of_bad_files_imports_the_good_ones_and_names_the_rest(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    good = np.random.default_rng(0).integers(0, 1000, (64, 64)).astype(np.uint16)
    tifffile.imwrite(d / "good.tif", good)
    (d / "zero.tif").write_bytes(b"")
    (d / "truncated.tif").write_bytes((d / "good.tif").read_bytes()[:300])
    (d / "garbage.png").write_bytes(os.urandom(500))
    nan = good.astype(np.float32)
    nan[:10] = np.nan
    nan[10:12] = np.inf
    tifffile.imwrite(d / "nan.tif", nan)
    tifffile.imwrite(d / "one pixel ü.tif", np.array([[7]], np.uint8))
    tifffile.imwrite(d / "complex.tif", np.zeros((8, 8), np.complex64))
    project = _init(tmp_path, d)
    with project:
        names = {im.name for im in project.store.images()}
        skipped = {Path(p).name: why for p, why in project.report.skipped + project.report.labels_skipped}
    assert {"good", "nan"} <= names
    for bad in ("zero.tif", "truncated.tif", "garbage.png", "complex.tif"):
        assert skipped.get(bad), skipped
    assert "one pixel ü" in names or "one pixel ü.tif" in skipped


def test_nan_pixels_give_finite_pseudo_labels(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    image = np.zeros((64, 64), np.float32)
    image[20:40, 20:40] = 100
    image[0, :] = np.nan
    tifffile.imwrite(d / "nan.tif", image)
    with _init(tmp_path, d) as project:
        label = project.store.get_label(1, "pseudo")
        assert label is not None and label[25:35, 25:35].all() and not label[50:, 50:].any()


def test_5d_time_series_registers_every_dimension(tmp_path: Path) -> None:
    from im2im_engine.io import write_ome_tiff

    d = tmp_path / "in"
    d.mkdir()
    write_ome_tiff(d / "tczyx.ome.tif", np.ones((2, 2, 3, 32, 32), np.uint16), channel_names=["a", "b"])
    with _init(tmp_path, d) as project:
        image = project.store.images()[0]
        assert image.shape == (2, 2, 3, 32, 32) and image.is_3d and image.channel_names == ["a", "b"]
        assert project.engine_config_dict()["data"]["in_channels"] == 2
        assert project.engine_config_dict()["data"]["spatial_dims"] == 3


def test_moved_or_changed_images_are_detected_and_their_labels_kept(tmp_path: Path, demo_folder) -> None:
    images, _ = demo_folder
    with _init(tmp_path, images) as project:
        store = project.store
        first, second = store.images()[:2]
        store.apply_edit(first.id, (0, 1, 0, 5, 0, 5), np.ones((1, 5, 5), np.int32))
        before = store.get_label(first.id, "corrected")
        moved = Path(first.path).with_suffix(".moved")
        shutil.move(first.path, moved)
        data = tifffile.imread(second.path)
        tifffile.imwrite(second.path, data[::-1].copy())
        problems = check_images(project)
        assert {(p.name, p.state) for p in problems} == {(first.name, "missing"), (second.name, "changed")}
        assert {im.id for im in usable_images(store)}.isdisjoint({first.id, second.id})
        text = format_status(project_status(project))
        assert "is missing" in text and "changed since it was imported" in text
        np.testing.assert_array_equal(store.get_label(first.id, "corrected"), before)
        shutil.move(moved, first.path)  # the user puts it back
        assert [p.name for p in check_images(project)] == [second.name]
        assert store.image(first.id).state == "ok"


def test_invalid_loop_settings_in_config_are_refused_without_replacing_it(small_project: Path) -> None:
    with Project.open(small_project) as project:
        good = (small_project / "config.yaml").read_text()
        config = dict(project.config)
        config["loop"] = {**config["loop"], "random_share": 3}
        with pytest.raises(ProjectError, match=r"loop.*random_share"):
            project.save_config(config)
        assert (small_project / "config.yaml").read_text() == good


def test_job_spec_with_paths_outside_its_project_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    spec = {"kind": "score", "config": "resources/configs/semantic_2d.yaml", "output_dir": str(tmp_path / "elsewhere"),
            "images": [], "root": str(root)}
    path = root / "job.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, "-m", "im2im_engine.worker", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "error" and "outside the job root" in events[-1]["message"]
    assert not (tmp_path / "elsewhere").exists()
