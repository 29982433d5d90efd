"""Engine-level export: graphs reproduce the engine, the runner reproduces ``Engine.predict``, 3D included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from im2im_engine import Engine
from im2im_engine.export import ExportError, export_model, validate_bioimageio
from im2im_engine.exported import ExportedModel, predict_folder

#: Runs with the project made unimportable (and MONAI too): only torch + numpy may be needed.
FRESH = """
import sys, json, numpy as np
for name in ("im2im_engine", "annotation", "app", "monai"):
    sys.modules[name] = None
import torch
folder, norm_file, out_file = sys.argv[1:4]
net = torch.jit.load(folder + "/model.torchscript.pt")
x = torch.from_numpy(np.load(norm_file))
with torch.no_grad():
    np.save(out_file, net(x).numpy())
"""


def fresh_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return env


def test_3d_instance_torchscript_in_fresh_python(tmp_path: Path, tiny_cfg, make_disks) -> None:
    cfg = tiny_cfg("instance", spatial_dims=3)
    eng = Engine.from_config(cfg, device="cpu")
    image, _ = make_disks(0, size=48, three_d=True)  # (1, 16, 48, 48): several windows of (8, 32, 32)
    result = export_model(eng, "torchscript", tmp_path / "ts3d", sample=image, provenance={"model": {"version": 7}})
    assert result.checks["torchscript_vs_engine_max_abs_diff"] < 1e-4
    assert result.checks["torchscript_labels_identical"]
    prov = json.loads((result.path / "provenance.json").read_text())
    assert prov["model"]["version"] == 7 and prov["engine_version"] and prov["config"]["data"]["spatial_dims"] == 3
    assert "watershed" in (result.path / "README.md").read_text()

    # the graph alone, loaded by plain torch in a Python that cannot import this project
    from im2im_engine.data import normalize

    crop = np.load(result.path / "test_input.npy")
    np.save(tmp_path / "norm.npy", normalize(crop[0], cfg.data)[None])
    proc = subprocess.run([sys.executable, "-c", FRESH, str(result.path), str(tmp_path / "norm.npy"),
                           str(tmp_path / "out.npy")], cwd=tmp_path, env=fresh_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ref = eng.predict(crop[0])
    assert np.abs(np.load(tmp_path / "out.npy")[0] - ref.output).max() < 1e-4

    # the runner: normalisation + sliding windows + watershed, identical to the engine on a whole stack
    model = ExportedModel(result.path)
    got, want = model.predict(image), eng.predict(image)
    assert np.abs(got.output - want.output).max() < 1e-4
    np.testing.assert_array_equal(got.labels, want.labels)


def test_regression_onnx_runner_and_folder_prediction(tmp_path: Path, tiny_cfg, make_disks) -> None:
    from im2im_engine import io

    cfg = tiny_cfg("regression", uncertainty={"method": "variance"})
    eng = Engine.from_config(cfg, device="cpu")
    image, _ = make_disks(1, size=72)
    result = export_model(eng, "onnx", tmp_path / "onnx", sample=image)
    assert result.checks["onnx_vs_engine_max_abs_diff"] < 1e-4
    assert result.checks["dynamic_size_checked"] != list(cfg.inference.roi_size)
    model = ExportedModel(result.path)
    assert model.backend == "onnx"
    got = model.predict(image)
    assert got.labels is None and np.abs(got.output - eng.predict(image).output).max() < 1e-4

    (tmp_path / "in" / "sub").mkdir(parents=True)
    io.write_ome_tiff(tmp_path / "in" / "sub" / "a.ome.tif", image[0])
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    done = predict_folder(model, tmp_path / "in", tmp_path / "out")
    assert done.n_images == 1 and not done.failed
    out = io.read_image(tmp_path / "out" / "sub" / "a_probabilities.ome.tif").data  # regression: output only
    assert np.abs(out[:, 0] - got.output).max() < 1e-4


def test_bioimageio_package_and_zip(tmp_path: Path, tiny_cfg, make_disks) -> None:
    cfg = tiny_cfg("semantic")
    eng = Engine.from_config(cfg, device="cpu")
    image, _ = make_disks(2)
    result = export_model(eng, "bioimageio", tmp_path / "pkg", sample=image,
                          provenance={"model": {"version": 3, "n_corrected": 5}})
    rdf = yaml.safe_load((result.path / "rdf.yaml").read_text())
    assert rdf["type"] == "model" and rdf["format_version"].startswith("0.5")
    assert set(rdf["weights"]) == {"torchscript", "onnx"} and rdf["weights"]["onnx"]["parent"] == "torchscript"
    assert [a["type"] for a in rdf["inputs"][0]["axes"]] == ["batch", "channel", "space", "space"]
    assert rdf["inputs"][0]["preprocessing"][0]["id"] == "scale_range"
    assert rdf["config"]["im2im_active"]["provenance"]["model"]["version"] == 3
    for name in ("documentation",):
        assert (result.path / rdf[name]).exists()
    assert (result.path / rdf["covers"][0]).exists()
    assert np.load(result.path / "test_output.npy").shape == (1, 2, *cfg.inference.roi_size)
    summary = validate_bioimageio(result.path)
    if summary is not None:  # bioimageio.spec installed
        assert summary["status"] in ("valid-format", "passed"), summary["errors"]

    packed = export_model(eng, "bioimageio", tmp_path / "pkg.zip", sample=image)
    assert zipfile.is_zipfile(packed.path)
    model = ExportedModel(packed.path)
    np.testing.assert_array_equal(model.predict(image).labels, eng.predict(image).labels)
    model.close()


def test_existing_output_and_bad_format_are_clear_errors(tmp_path: Path, tiny_cfg) -> None:
    eng = Engine.from_config(tiny_cfg("semantic"), device="cpu")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep")
    with pytest.raises(ExportError, match="already exists"):
        export_model(eng, "torchscript", tmp_path / "taken")
    assert (tmp_path / "taken" / "x").read_text() == "keep"
    with pytest.raises(ExportError, match="format must be one of"):
        export_model(eng, "pickle", tmp_path / "p")
    with pytest.raises(ExportError, match="not an im2im-active export"):
        ExportedModel(tmp_path / "taken")
