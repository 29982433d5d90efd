"""Shared fixtures: small synthetic data written the way a user's folder looks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def demo_folder(tmp_path: Path) -> tuple[Path, Path]:
    """Four 96² demo images with their true instance masks: ``(images_dir, truth_dir)``."""
    from resources.demo import write_demo_dataset

    return write_demo_dataset(tmp_path / "data", n_images=4, size=96, seed=1)


@pytest.fixture
def image_record():
    """A minimal image row for the store (no file needed)."""

    def make(name: str = "a", shape: tuple[int, ...] = (1, 1, 1, 64, 64)) -> dict:
        return {
            "path": f"/data/{name}.tif", "name": name, "shape": list(shape), "dims": "TCZYX",
            "dtype": "uint16", "channel_names": ["c0"], "content_hash": f"hash-{name}",
            "size_bytes": 0, "mtime": 0.0,
        }

    return make


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


#: Engine settings small enough to train in seconds on 2 CPU cores (tests only).
FAST_ENGINE = {
    "training": {"steps": 12, "batch_size": 2, "val_every": 6},
    "inference": {"roi_size": [64, 64], "sw_batch_size": 2},
    "uncertainty": {"passes": 3},
}


def make_fast(project, steps: int = 12, finetune_steps: int = 8) -> None:
    """Shrink a project's config so a training round takes seconds."""
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in project.config.items()}
    for section, values in FAST_ENGINE.items():
        config.setdefault(section, {}).update(values)
    config["training"]["steps"] = steps
    data = config.setdefault("data", {})
    data["patch_size"] = [64, 64]
    # a dozen steps cannot learn: the floor of the acceptance check (tested on its own in
    # tests/annotation/test_acceptance.py) would reject these models, so fast projects turn it off
    config.setdefault("loop", {}).update({"finetune_steps": finetune_steps, "batch_size": 2, "retrain_every": 1,
                                          "min_agreement": 0.0})
    project.save_config(config)


@pytest.fixture
def small_project(tmp_path: Path, demo_folder):
    """An initialised semantic project on the demo folder, with a fast config; yields its folder."""
    from annotation.setup import init_project

    images, _ = demo_folder
    project, _ = init_project(tmp_path / "proj", images, pseudo="otsu", task="semantic")
    make_fast(project)
    project.close()
    return tmp_path / "proj"


def trained_cli_project(base: Path) -> tuple[Path, Path]:
    """``(project, images)`` under ``base``: 3 demo images, Otsu pseudo labels, trained and scored with
    ``im2im-active train`` (4 steps). For module-scoped fixtures of the CLI and export-dialog tests."""
    from annotation.project import Project
    from app.cli import main
    from resources.demo import write_demo_dataset

    images, _ = write_demo_dataset(base / "data", n_images=3, size=96, seed=2)
    assert main(["init", str(base / "proj"), "--images", str(images), "--pseudo", "otsu", "--task", "instance",
                 "-q"]) == 0
    with Project.open(base / "proj") as project:
        make_fast(project, steps=4)
    assert main(["train", str(base / "proj"), "-q"]) == 0
    return base / "proj", images


# napari's pytest plugin loads whenever napari is installed (it is, for the plugin's tests), and two of its
# autouse fixtures import napari and its Qt window for EVERY test (seconds per run, dozens of warnings).
# These overrides make them no-ops here; tests/app/napari/conftest.py brings napari's own back for the
# napari tests.
@pytest.fixture(autouse=True)
def _clean_themes():
    yield


@pytest.fixture(autouse=True)
def _disable_qt_warnings():
    yield


# ------------------------------------------------------------------ images that do not fit a 2D 1-channel project
def _blobs(seed: int, size: int = 64) -> np.ndarray:
    """A plane with a few bright discs on a dim background (uint16)."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = r.normal(100, 5, (size, size))
    for _ in range(4):
        cy, cx = r.integers(10, size - 10, 2)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] += 400
    return image.clip(0, 65535).astype(np.uint16)


@pytest.fixture
def write_misfits():
    """``write(folder, n_plain=2)``: ``n_plain`` fitting planes, a 5-plane z-stack, a 2-channel OME-TIFF
    (DAPI, GFP), an RGB TIFF and a corrupt TIFF (a header, no image) in ``folder``; returns name -> path."""
    import tifffile

    from im2im_engine.io import write_ome_tiff

    def write(folder: Path, n_plain: int = 2) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for i in range(n_plain):
            files[f"plain{i}"] = folder / f"plain{i}.tif"
            tifffile.imwrite(files[f"plain{i}"], _blobs(i))
        files["stack"] = write_ome_tiff(folder / "stack.ome.tif", np.stack([_blobs(10 + z) for z in range(5)]))
        files["two"] = write_ome_tiff(folder / "two.ome.tif", np.stack([_blobs(20), _blobs(21)])[:, None],
                                      channel_names=["DAPI", "GFP"])
        files["rgb"] = folder / "rgb.tif"
        rgb = np.stack([_blobs(30), _blobs(31), _blobs(32)], axis=-1)
        tifffile.imwrite(files["rgb"], (rgb // 4).astype(np.uint8), photometric="rgb")
        files["broken"] = folder / "broken.tif"
        files["broken"].write_bytes(b"II*\x00" + b"\x00" * 100)
        return files

    return write


@pytest.fixture
def engine_refuses():
    """``refused(project)``: the project's images the engine worker would refuse as it reads them to train."""

    def refused(project) -> list[str]:
        from im2im_engine.data import as_channel_first
        from im2im_engine.worker import load_image

        cfg = project.engine_config()
        out = []
        for image in project.store.images():
            try:
                as_channel_first(load_image(Path(image.path), 0, cfg.data.spatial_dims), cfg)
            except ValueError as exc:
                out.append(f"{image.name}: {exc}")
        return out

    return refused
