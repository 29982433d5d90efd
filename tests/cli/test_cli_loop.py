"""The headless loop end to end: init, train, score, next, correct, train again (real engine worker)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from annotation.project import Project
from app.cli import main


@pytest.mark.slow
def test_cli_loop_end_to_end(small_project: Path, demo_folder, capsys) -> None:
    proj = str(small_project)
    _, truth = demo_folder
    assert main(["train", proj, "-q"]) == 0
    out = capsys.readouterr().out
    assert "v1 trained from pseudo labels" in out and "scored 4 images with v1" in out

    assert main(["next", proj, "-n", "2", "--json"]) == 0
    picked = json.loads(capsys.readouterr().out)
    assert len(picked) == 2 and all(p["state"] == "untouched" and p["score"] is not None for p in picked)

    name = picked[0]["name"]
    mask = small_project.parent / "fix.tif"
    tifffile.imwrite(mask, tifffile.imread(truth / f"{name}.tif"))
    assert main(["correct", proj, name, "--mask", str(mask)]) == 0
    assert f"stored the corrected label of {name}" in capsys.readouterr().out
    assert main(["next", proj, "-n", "10", "--json"]) == 0
    assert name not in [p["name"] for p in json.loads(capsys.readouterr().out)]

    assert main(["train", proj, "-q"]) == 0
    with Project.open(proj) as project:
        store = project.store
        models = store.models()
        assert [m["version"] for m in models] == [1, 2] and models[1]["parent"] == 1
        assert models[1]["n_corrected"] == 1 and models[1]["train_set_hash"] != models[0]["train_set_hash"]
        # v1's predictions against the correction the user then made: a learning-curve point for round 0
        assert 0 < models[0]["metrics"]["corrections_dice"] < 1 and models[0]["metrics"]["corrections_n"] == 1
        from annotation.loop import learning_curve

        assert learning_curve(project)[0]["metric_source"] == "corrections"
        assert store.current_model in (1, 2)
        image = store.find_image(name)
        corrected = store.get_label(image.id, "corrected")
        np.testing.assert_array_equal(corrected, (tifffile.imread(truth / f"{name}.tif") > 0).astype(np.int32))
        assert [j["status"] for j in store.jobs()] == ["done"] * 4
        rounds = store.events("round")
        assert len(rounds) == 2 and rounds[1]["data"]["n_corrected"] == 1
    assert main(["status", proj]) == 0
    assert "v2" in capsys.readouterr().out


def test_train_without_labels_is_a_clear_error(tmp_path: Path, demo_folder, capsys) -> None:
    images, _ = demo_folder
    proj = tmp_path / "bare"
    assert main(["init", str(proj), "--images", str(images), "-q"]) == 0
    assert main(["train", str(proj), "-q"]) == 1
    assert "nothing to train on" in capsys.readouterr().err


def test_score_before_training_is_a_clear_error(small_project: Path, capsys) -> None:
    assert main(["score", str(small_project), "-q"]) == 1
    assert "no model yet" in capsys.readouterr().err
