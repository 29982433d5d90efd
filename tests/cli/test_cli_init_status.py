"""``im2im-active init`` and ``status``: what a user types first, including the ways it goes wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from annotation.project import Project
from app.cli import main


def test_init_with_otsu_then_status(tmp_path: Path, demo_folder, capsys) -> None:
    images, _ = demo_folder
    (images / "sub").mkdir()
    tifffile.imwrite(images / "sub" / "extra one.tif", np.zeros((40, 50), np.uint16) + 5)
    proj = tmp_path / "proj"
    assert main(["init", str(proj), "--images", str(images), "--pseudo", "otsu", "--task", "instance", "-q"]) == 0
    assert "5 images" in capsys.readouterr().out
    with Project.open(proj) as project:
        records = project.store.images()
        assert len(records) == 5 and {r.name for r in records} >= {"nuclei_000", "extra one"}
        first = records[0]
        assert first.shape == (1, 1, 1, 96, 96) and first.dtype == "uint16" and len(first.content_hash) > 16
        label = project.store.get_label(first.id, "pseudo")
        assert label.shape == (96, 96) and label.max() >= 2  # instances, not one class
        assert project.engine_config_dict()["data"]["in_channels"] == 1
    assert main(["status", str(proj), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["images"] == 5 and status["labels"]["pseudo"] == 5
    with Project.open(proj) as project:  # a blank image gets an empty label, not noise
        blank = project.store.find_image("extra one")
        assert not project.store.get_label(blank.id, "pseudo").any()
    assert main(["status", str(proj)]) == 0
    text = capsys.readouterr().out
    assert "Images    5" in text and "pseudo" in text


def test_init_imports_masks_by_stem(tmp_path: Path, demo_folder) -> None:
    images, truth = demo_folder
    masks = tmp_path / "masks"
    masks.mkdir()
    for p in sorted(truth.iterdir())[:3]:
        tifffile.imwrite(masks / f"{p.stem}_mask.tif", tifffile.imread(p))
    proj = tmp_path / "p"
    assert main(["init", str(proj), "--images", str(images), "--labels", str(masks), "-q"]) == 0
    with Project.open(proj) as project:
        store = project.store
        with_labels = [im.name for im in store.images() if store.has_label(im.id, "pseudo")]
        assert with_labels == ["nuclei_000", "nuclei_001", "nuclei_002"]
        semantic = store.get_label(store.find_image("nuclei_000").id, "pseudo")
        assert set(np.unique(semantic)) == {0, 1}  # semantic task: instance ids become foreground


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (lambda d: None, ["--images", "{d}/nowhere"], "does not exist"),
        (lambda d: (d / "empty").mkdir(), ["--images", "{d}/empty"], "no image files"),
        (lambda d: ((d / "bad").mkdir(), (d / "bad" / "x.tif").write_bytes(b"")),
         ["--images", "{d}/bad"], "could be read"),
    ],
)
def test_init_bad_input_is_one_clear_line_and_leaves_nothing(tmp_path: Path, capsys, setup, args, message) -> None:
    setup(tmp_path)
    proj = tmp_path / "proj"
    code = main(["init", str(proj), *[a.format(d=tmp_path) for a in args], "--pseudo", "otsu", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("error: ") and message in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (proj / "project.db").exists()


def test_init_refuses_to_overwrite_a_project(tmp_path: Path, demo_folder, capsys) -> None:
    images, _ = demo_folder
    proj = tmp_path / "proj"
    assert main(["init", str(proj), "--images", str(images), "--pseudo", "otsu", "-q"]) == 0
    before = (proj / "project.db").stat().st_size
    assert main(["init", str(proj), "--images", str(images), "--pseudo", "otsu", "-q"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (proj / "project.db").stat().st_size == before


def test_init_with_invalid_config_names_the_key(tmp_path: Path, demo_folder, capsys) -> None:
    images, _ = demo_folder
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: NotANet\n")
    assert main(["init", str(tmp_path / "p"), "--images", str(images), "--config", str(bad), "-q"]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "model.name" in err


def test_status_of_a_missing_project(tmp_path: Path, capsys) -> None:
    assert main(["status", str(tmp_path / "nothing")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_demo_realistic_recipe_builds_small_tiles_with_a_fitted_config(tmp_path: Path, capsys) -> None:
    """``demo --recipe realistic``: 128² tiles, smaller than the preset's 256² window, so the project's config
    is fitted at init (window and patch no larger than the tiles) and the pseudo labels are Otsu's."""
    proj = tmp_path / "real"
    assert main(["demo", "--project", str(proj), "--recipe", "realistic", "--images", "3", "--task", "semantic",
                 "--no-gui", "-q"]) == 0
    assert "3" in capsys.readouterr().out
    with Project.open(proj) as project:
        records = project.store.images()
        assert [r.shape[-2:] for r in records] == [(128, 128)] * 3
        config = project.engine_config_dict()
        assert max(config["inference"]["roi_size"]) <= 128 and max(config["data"]["patch_size"]) <= 128
        truth = tifffile.imread(proj / "data" / "truth" / f"{records[0].name}.tif")
        pseudo = project.store.get_label(records[0].id, "pseudo")
        assert pseudo.shape == truth.shape and set(np.unique(pseudo)) <= {0, 1}
        dice = 2 * ((pseudo > 0) & (truth > 0)).sum() / ((pseudo > 0).sum() + (truth > 0).sum())
        assert 0.6 < dice < 0.97  # a pseudo label worth correcting, not a copy of the truth


def test_demo_refuses_an_unknown_recipe(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--project", str(tmp_path / "x"), "--recipe", "easy", "--no-gui"])
