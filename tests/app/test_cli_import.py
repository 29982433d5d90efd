"""Images that do not fit the project, at ``init`` and ``add``: refused with the reason in words, or fitted
by the person's choice; and excluding, including, removing an image. Through ``app.cli.main``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from annotation.project import Project
from app.cli import main


def _names(proj: Path) -> list[str]:
    with Project.open(proj) as project:
        return sorted(im.name for im in project.store.images())


def test_init_refuses_what_does_not_fit_with_the_reason_and_what_would_fit(tmp_path, capsys, write_misfits,
                                                                         engine_refuses) -> None:
    write_misfits(tmp_path / "images")
    proj = tmp_path / "proj"
    assert main(["init", str(proj), "--images", str(tmp_path / "images"), "--pseudo", "otsu", "-q"]) == 0
    out, err = capsys.readouterr()
    assert "2 images (project: 2D, 1 channel)" in out
    assert "the project is 2D, 1 channel, as 2 of the 5 images are" in out
    lines = err.splitlines()

    def said(name: str) -> str:
        return next(line for line in lines if "skipped" in line and name in line)

    assert "a z-stack of 5 planes, but the project is 2D" in said("stack.ome.tif")
    assert "2 channels (DAPI, GFP), but the project takes 1 channel" in said("two.ome.tif")
    assert "an RGB colour image, but the project takes 1 channel" in said("rgb.tif")
    assert "a damaged TIFF file: it has a TIFF header but no image in it" in said("broken.tif")
    assert "hint: to use the 2 images skipped for this, pick one with --channel" in err
    assert "add --max-projection (or --dims 3d for a 3D project)" in err
    assert "IndexError" not in err and "Traceback" not in err
    assert _names(proj) == ["plain0", "plain1"]
    with Project.open(proj) as project:
        assert engine_refuses(project) == []  # every image the import took, training takes


def test_init_fits_images_by_choice_and_says_what_it_did(tmp_path, capsys, write_misfits, engine_refuses) -> None:
    files = write_misfits(tmp_path / "images")
    proj = tmp_path / "proj"
    assert main(["init", str(proj), "--images", str(tmp_path / "images"), "--pseudo", "otsu", "-q",
                 "--channel", "1", "--max-projection"]) == 0
    out, err = capsys.readouterr()
    assert "5 images (project: 2D, 1 channel), 5 pseudo labels" in out
    assert "stack.ome.tif: maximum projection of its 5 planes (saved as derived/stack.ome.tif)" in out
    assert "two.ome.tif: channel 1 (GFP) of its 2 (saved as derived/two.ome.tif)" in out
    assert "rgb.tif: channel 1 (G) of its 3 (saved as derived/rgb.ome.tif)" in out
    assert "broken.tif" in err and "stack" not in err
    with Project.open(proj) as project:
        images = {im.name: im for im in project.store.images()}
        assert sorted(images) == ["plain0", "plain1", "rgb", "stack", "two"]
        assert engine_refuses(project) == []
        np.testing.assert_array_equal(tifffile.imread(images["stack"].path), tifffile.imread(files["stack"]).max(0))
        np.testing.assert_array_equal(tifffile.imread(images["two"].path), tifffile.imread(files["two"])[1])
        np.testing.assert_array_equal(tifffile.imread(images["rgb"].path), tifffile.imread(files["rgb"])[..., 1])
        assert images["plain0"].path == str(files["plain0"].resolve())  # fitting images stay where they are
        fits = {e["data"]["source"]: e["data"] for e in project.store.events("fit")}
        assert fits[str(files["stack"].resolve())]["what"] == "maximum projection of its 5 planes"
        assert all(project.store.get_label(im.id, "pseudo").shape == (64, 64) for im in images.values())


def test_init_makes_a_3d_project_when_asked_and_refuses_planes_there(tmp_path, capsys, write_misfits) -> None:
    write_misfits(tmp_path / "images", n_plain=1)
    proj = tmp_path / "proj"
    assert main(["init", str(proj), "--images", str(tmp_path / "images"), "--dims", "3d", "-q"]) == 0
    out, err = capsys.readouterr()
    assert "1 image (project: 3D, 1 channel)" in out
    assert "plain0.tif: a single plane, but the project is 3D" in err
    assert _names(proj) == ["stack"]
    with Project.open(proj) as project:
        assert project.engine_config().data.spatial_dims == 3


def test_init_with_nothing_that_fits_leaves_nothing_behind(tmp_path, capsys, write_misfits) -> None:
    files = write_misfits(tmp_path / "all")
    only = tmp_path / "only"
    only.mkdir()
    for key in ("two", "broken"):
        os.replace(files[key], only / files[key].name)
    tifffile.imwrite(only / "gray.tif", np.zeros((5, 8), np.uint8))
    proj = tmp_path / "proj"
    assert main(["init", str(proj), "--images", str(only), "--dims", "2d", "--channel", "DAPI", "-q"]) == 0
    assert _names(proj) == ["gray", "two"]
    capsys.readouterr()
    assert main(["init", str(tmp_path / "p2"), "--images", str(only), "--dims", "3d", "-q"]) == 1
    err = capsys.readouterr().err
    assert "none of the 2 readable images fits a 3D, 1 channel project" in err
    assert "gray.tif: a single plane, but the project is 3D" in err
    assert not (tmp_path / "p2").exists()


def test_unreadable_files_are_described_in_words_and_libraries_stay_quiet(tmp_path) -> None:
    """A real process: library warnings and log lines go to the terminal, not through pytest's capture."""
    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "good.tif", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    (folder / "broken.tif").write_bytes(b"II*\x00" + b"\x00" * 100)
    (folder / "cut.tif").write_bytes((folder / "good.tif").read_bytes()[:300])
    (folder / "photo.png").write_bytes(b"this is a text file")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = subprocess.run([sys.executable, "-m", "app.cli", "init", str(tmp_path / "proj"), "--images", str(folder),
                          "--pseudo", "otsu"], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    err = run.stderr
    assert "broken.tif: a damaged TIFF file: it has a TIFF header but no image in it" in err
    assert "cut.tif: the file is cut short" in err
    assert "photo.png: not a PNG file: it does not start like one" in err
    for noise in ("contains no pages", "IndexError", "Traceback", "Warning", "bioformats", "Attempted file"):
        assert noise not in err, err
    assert err.count("broken.tif") == 1


def test_add_checks_new_images_against_the_project(tmp_path, capsys, write_misfits, demo_folder) -> None:
    images, _ = demo_folder
    proj = tmp_path / "proj"
    assert main(["init", str(proj), "--images", str(images), "--pseudo", "otsu", "-q"]) == 0
    with Project.open(proj) as project:
        before = {im.name: project.store.get_label(im.id, "pseudo") for im in project.store.images()}
    files = write_misfits(tmp_path / "more", n_plain=1)
    capsys.readouterr()
    misfits = [str(files[k]) for k in ("stack", "two", "rgb", "broken")]
    assert main(["add", str(proj), "--images", *misfits, "-q"]) == 1  # nothing fitted: an error
    err = capsys.readouterr().err
    assert "stack.ome.tif: a z-stack of 5 planes" in err and "two.ome.tif: 2 channels (DAPI, GFP)" in err
    assert "rgb.tif: an RGB colour image" in err and "broken.tif: a damaged TIFF file" in err
    assert "hint: to use the 1 image skipped for this, add --max-projection" in err
    assert _names(proj) == sorted(before)

    assert main(["add", str(proj), "--images", str(tmp_path / "more"), "--pseudo", "otsu", "--channel", "GFP",
                 "--max-projection", "-q"]) == 0
    out, err = capsys.readouterr()
    assert "Added to" in out and "3 images (project: 2D, 1 channel), 3 pseudo labels" in out
    assert "two.ome.tif: channel 1 (GFP) of its 2" in out and "stack.ome.tif: maximum projection" in out
    assert "rgb.tif: has no channel 'GFP': it is an RGB colour image" in err
    with Project.open(proj) as project:
        store = project.store
        assert {"plain0", "stack", "two"} <= {im.name for im in store.images()}
        for name, label in before.items():  # the images already there are untouched
            np.testing.assert_array_equal(store.get_label(store.find_image(name).id, "pseudo"), label)
        assert store.has_label(store.find_image("stack").id, "pseudo")

    assert main(["add", str(proj), "--images", str(files["plain0"]), str(files["stack"]), "-q",
                 "--max-projection"]) == 0
    out = capsys.readouterr().out
    assert "0 images" in out and out.count("already in the project") == 2


def test_add_gives_a_clashing_name_a_new_one(tmp_path, capsys, demo_folder) -> None:
    images, _ = demo_folder
    proj = tmp_path / "proj"
    assert main(["init", str(proj), "--images", str(images), "-q"]) == 0
    other = tmp_path / "other"
    other.mkdir()
    first = sorted(images.glob("*.tif"))[0]
    tifffile.imwrite(other / first.name, tifffile.imread(first) + 1)
    tifffile.imwrite(other / "odd (1).tif", tifffile.imread(first))
    assert main(["add", str(proj), "--images", str(other), "-q"]) == 0
    names = _names(proj)
    assert f"{first.stem}-2" in names and "odd _1_" in names  # unique, and safe for the engine's file names


def test_exclude_include_remove(tmp_path, capsys, demo_folder) -> None:
    images, _ = demo_folder
    proj = tmp_path / "proj"
    assert main(["init", str(proj), "--images", str(images), "--pseudo", "otsu", "-q"]) == 0
    capsys.readouterr()
    assert main(["exclude", str(proj), "nuclei_001", "--reason", "out of focus"]) == 0
    assert "excluded nuclei_001 (out of focus)" in capsys.readouterr().out
    with Project.open(proj) as project:
        image = project.store.find_image("nuclei_001")
        assert image.excluded == "out of focus" and not image.usable
        assert project.store.has_label(image.id, "pseudo")
    assert main(["include", str(proj), "nuclei_001"]) == 0
    with Project.open(proj) as project:
        assert project.store.find_image("nuclei_001").usable

    assert main(["remove", str(proj), "nuclei_002"]) == 1
    err = capsys.readouterr().err
    assert "not removed" in err and "pseudo" in err and "--yes" in err
    assert "nuclei_002" in _names(proj)
    assert main(["remove", str(proj), "nuclei_002", "--yes"]) == 0
    assert "removed nuclei_002" in capsys.readouterr().out
    assert _names(proj) == ["nuclei_000", "nuclei_001", "nuclei_003"]
    assert (images / "nuclei_002.tif").exists()  # the file is never touched
    with Project.open(proj) as project:
        assert not project.store.query("SELECT * FROM labels WHERE image_id NOT IN (SELECT id FROM images)")
    assert main(["add", str(proj), "--images", str(images / "nuclei_002.tif"), "-q"]) == 0  # it can come back
    assert "nuclei_002" in _names(proj)
    assert main(["exclude", str(proj), "nothing-like-this"]) == 1
    assert "no image matches" in capsys.readouterr().err


def test_remove_deletes_the_fitted_copy_not_the_original(tmp_path, capsys, write_misfits) -> None:
    files = write_misfits(tmp_path / "images", n_plain=1)
    proj = tmp_path / "proj"
    assert main(["init", str(proj), "--images", str(tmp_path / "images"), "--max-projection", "-q"]) == 0
    derived = proj / "derived" / "stack.ome.tif"
    assert derived.exists()
    assert main(["remove", str(proj), "stack", "--yes"]) == 0
    assert not derived.exists() and files["stack"].exists()
    assert main(["add", str(proj), "--images", str(files["stack"]), "--max-projection", "-q"]) == 0
    assert "stack" in _names(proj)


@pytest.mark.parametrize("pseudo, task, message", [
    ("watershed", "semantic", "it is for --task instance"),
])
def test_pseudo_method_must_suit_the_task(tmp_path, capsys, demo_folder, pseudo, task, message) -> None:
    images, _ = demo_folder
    assert main(["init", str(tmp_path / "p"), "--images", str(images), "--pseudo", pseudo, "--task", task]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_instance_pseudo_labels_by_components_or_watershed(tmp_path, capsys) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    yy, xx = np.mgrid[:80, :120]
    two = ((yy - 40) ** 2 + (xx - 40) ** 2 < 400) | ((yy - 40) ** 2 + (xx - 75) ** 2 < 400)
    tifffile.imwrite(folder / "touching.tif", (two * 1000 + 50).astype(np.uint16))
    counts = {}
    for method in ("otsu", "watershed"):
        proj = tmp_path / method
        assert main(["init", str(proj), "--images", str(folder), "--pseudo", method, "--task", "instance",
                     "-q"]) == 0
        with Project.open(proj) as project:
            label = project.store.get_label(1, "pseudo")
            counts[method] = len(np.unique(label[label > 0]))
    assert counts == {"otsu": 1, "watershed": 2}
