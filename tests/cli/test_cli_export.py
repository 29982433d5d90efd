"""``export``, ``predict`` and ``import-model`` from the command line (the GUI's export dialog: tests/app)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from annotation.project import Project
from app.cli import main
from im2im_engine import io

pytestmark = pytest.mark.slow  # every test uses a project trained by `im2im-active train` (an engine worker)

def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def cli_project(tmp_path_factory) -> tuple[Path, Path]:
    """(project, images): demo data, Otsu pseudo labels, trained and scored by ``im2im-active train``."""
    from tests.conftest import trained_cli_project

    return trained_cli_project(tmp_path_factory.mktemp("cli_export"))


def test_predict_project_and_exported_model_match_the_app(cli_project, tmp_path: Path, capsys) -> None:
    proj, images = cli_project
    assert main(["predict", str(proj), "--input", str(images), "--output", str(tmp_path / "p"), "-q",
                 "--probabilities"]) == 0
    assert "predicted 3 of 3 images" in capsys.readouterr().out
    assert main(["export", str(proj), "--format", "torchscript", "--output", str(tmp_path / "ts"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "exported model v1 as torchscript" in out and "torchscript_vs_engine_max_abs_diff" in out
    assert main(["predict", "--model", str(tmp_path / "ts"), "--input", str(images), "--output",
                 str(tmp_path / "e"), "-q", "--probabilities"]) == 0
    with Project.open(proj) as project:
        for image in project.store.images():
            labels = io.read_mask(tmp_path / "p" / f"{image.name}_labels.ome.tif")
            # the same labels the app stored when it scored the images with v1
            np.testing.assert_array_equal(labels, project.store.get_label(image.id, "prediction"))
            np.testing.assert_array_equal(io.read_mask(tmp_path / "e" / f"{image.name}_labels.ome.tif"), labels)
            a = io.read_image(tmp_path / "p" / f"{image.name}_probabilities.ome.tif").data
            b = io.read_image(tmp_path / "e" / f"{image.name}_probabilities.ome.tif").data
            assert a.shape == (3, 1, 96, 96) and np.abs(a - b).max() < 1e-4


def test_export_formats_and_errors(cli_project, tmp_path: Path, capsys) -> None:
    proj, _ = cli_project
    assert main(["export", str(proj), "--format", "onnx", "--output", str(tmp_path / "onnx"), "-q"]) == 0
    assert "onnx_vs_engine_max_abs_diff" in capsys.readouterr().out
    assert (tmp_path / "onnx" / "model.onnx").exists() and (tmp_path / "onnx" / "provenance.json").exists()
    assert main(["export", str(proj), "--format", "labels", "--versions", "all", "--output",
                 str(tmp_path / "labels"), "-q"]) == 0
    rows = read_csv(tmp_path / "labels" / "labels.csv")
    assert {r["label_version"] for r in rows} == {"prediction"} and len(rows) == 3
    assert main(["export", str(proj), "--format", "pairs", "--versions", "all", "--output",
                 str(tmp_path / "pairs"), "-q"]) == 0
    assert len(list((tmp_path / "pairs").glob("*_CM.tiff"))) == 3
    capsys.readouterr()

    assert main(["export", str(proj), "--format", "labels", "--output", str(tmp_path / "none"), "-q"]) == 1
    assert "no corrected labels to export" in capsys.readouterr().err
    assert main(["export", str(proj), "--format", "onnx", "--model-version", "5", "-q"]) == 1
    assert "no model version 5 (versions: v1)" in capsys.readouterr().err
    assert main(["predict", "--input", str(tmp_path), "--output", str(tmp_path / "x"), "-q"]) == 1
    assert "either a PROJECT or --model" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "labels"), "--input", str(tmp_path), "--output",
                 str(tmp_path / "x"), "-q"]) == 1
    assert "not an im2im-active export" in capsys.readouterr().err


def test_import_model_command(cli_project, tmp_path: Path, capsys) -> None:
    proj = tmp_path / "proj"
    shutil.copytree(cli_project[0], proj)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    assert main(["import-model", str(proj), str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.pt: not a readable checkpoint" in err and "Traceback" not in err
    assert main(["import-model", str(proj), str(proj / "models" / "v1" / "model.pt")]) == 0
    assert "as model v2 (status imported, now current)" in capsys.readouterr().out
    with Project.open(proj) as project:
        assert project.store.current_model == 2 and project.store.model(2)["status"] == "imported"
