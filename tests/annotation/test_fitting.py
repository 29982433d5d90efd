"""Settings fitted to the data at init: windows to the images, the training patch to the objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annotation.fitting import fit_patch_to_objects, fit_windows
from annotation.project import build_config


def _discs(n: int, radius: int, shape=(128, 128)) -> np.ndarray:
    lab = np.zeros(shape, np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for i in range(n):
        cy, cx = 20 + (i // 3) * 40, 20 + (i % 3) * 40
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = i + 1
    return lab


def test_patch_follows_the_objects_and_the_batch_grows():
    config, _ = build_config("semantic", False, 1, None, [(256, 256)])
    notes = fit_patch_to_objects(config, [_discs(6, 9) > 0], "semantic")  # 19 px across
    assert config["data"]["patch_size"] == [48, 48] and config["training"]["batch_size"] == 8
    assert config["inference"]["roi_size"] == [48, 48]  # predicted in windows of the training patch
    assert "about 2.5 objects across" in notes[0] and len(notes) == 3


def test_patch_never_grows_nor_goes_below_the_minimum():
    config, _ = build_config("instance", False, 1, None, [(256, 256)])
    fit_patch_to_objects(config, [_discs(6, 40, (400, 400))], "instance")
    assert config["data"]["patch_size"] == [128, 128]  # big objects: the preset's patch stays
    fit_patch_to_objects(config, [_discs(6, 2)], "instance")
    assert config["data"]["patch_size"] == [32, 32]
    assert fit_patch_to_objects(config, [np.zeros((64, 64), np.int32)], "instance") == []


def test_3d_patch_keeps_its_z_minimum():
    config, _ = build_config("instance", True, 1, None, [(31, 61, 57)])
    lab = np.zeros((31, 61, 57), np.int32)
    for i, (z, y, x) in enumerate([(8, 15, 15), (8, 15, 40), (20, 40, 15), (20, 40, 40)]):
        lab[z - 2 : z + 3, y - 5 : y + 6, x - 5 : x + 6] = i + 1
    fit_patch_to_objects(config, [lab], "instance")
    assert config["data"]["patch_size"] == [14, 32, 32]  # 2.5 x 5 planes on a stride of 2; 32 in-plane at least


def test_windows_fit_small_and_tiny_images():
    config, _ = build_config("semantic", False, 1, None)
    notes = fit_windows(config, [(96, 96), (200, 130)])
    assert config["data"]["patch_size"] == [96, 96] and config["inference"]["roi_size"] == [200, 132]
    assert len(notes) == 2
    config3, _ = build_config("instance", True, 1, None)
    fit_windows(config3, [(2, 40, 40)])  # a 2-plane stack: never below the config's smallest size
    assert config3["data"]["patch_size"][0] == 4


def test_init_fits_a_preset_but_not_the_users_config(tmp_path: Path):
    from annotation.setup import init_project
    from resources.demo import write_demo_dataset

    images, _ = write_demo_dataset(tmp_path / "d", n_images=3, size=128, seed=3)
    project, report = init_project(tmp_path / "p", images, pseudo="otsu", task="semantic")
    assert project.config["data"]["patch_size"][0] < 128
    assert any("objects across" in n for n in report.config_notes)
    project.close()
    own = tmp_path / "own.yaml"
    own.write_text((Path("resources/configs/semantic_2d.yaml")).read_text())
    project, report = init_project(tmp_path / "q", images, pseudo="otsu", task="semantic", config_path=own)
    assert project.config["data"]["patch_size"] == [128, 128]
    project.close()
