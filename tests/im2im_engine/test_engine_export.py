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
from im2im_engine.export import ExportError, export_model
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
    # validated and tested by bioimageio.core itself: tests/im2im_engine/test_bioimageio_tools.py

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


def test_model_exports_follow_the_umask(tmp_path: Path, tiny_cfg) -> None:
    """Folders were 0700 (mkdtemp) whatever the umask: colleagues on a shared server could not open them."""
    eng = Engine.from_config(tiny_cfg("semantic"), device="cpu")
    old = os.umask(0o022)
    try:
        made = [export_model(eng, fmt, tmp_path / fmt) for fmt in ("torchscript", "onnx")]
        made.append(export_model(eng, "bioimageio", tmp_path / "pkg.zip"))
    finally:
        os.umask(old)
    paths = [p for r in made for p in (r.path, *(r.path.rglob("*") if r.path.is_dir() else []))]
    for path in paths:
        assert path.stat().st_mode & 0o777 == (0o755 if path.is_dir() else 0o644), path


def test_graph_takes_any_size(tmp_path: Path, tiny_cfg) -> None:
    """390×382 is no multiple of the stride (4): the graph pads inside and crops back (it raised before)."""
    import onnxruntime as ort
    import torch

    cfg = tiny_cfg("semantic", model={"params": {"channels": [8, 16, 32], "strides": [2, 2]}})
    eng = Engine.from_config(cfg, device="cpu")
    ts = export_model(eng, "torchscript", tmp_path / "ts")
    onnx = export_model(eng, "onnx", tmp_path / "onnx")
    x = np.random.default_rng(0).normal(size=(2, 1, 390, 382)).astype(np.float32)
    net = torch.jit.load(str(ts.path / "model.torchscript.pt"))
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
        padded = np.pad(x, [(0, 0), (0, 0), (0, 2), (0, 2)], mode="reflect")  # to 392×384 as the app fits it
        want = torch.softmax(eng.net.eval()(torch.from_numpy(padded)), 1)[..., :390, :382].numpy()
    assert got.shape == (2, 2, 390, 382) and np.abs(got - want).max() < 1e-5
    sess = ort.InferenceSession(str(onnx.path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(sess.run(None, {"input": x})[0] - want).max() < 1e-4


@pytest.mark.parametrize("three_d", [False, True])
def test_predict_folder_keeps_pixel_sizes_and_invents_none(tmp_path: Path, tiny_cfg, make_disks,
                                                            three_d: bool) -> None:
    import tifffile
    from ome_types import from_xml

    cfg = tiny_cfg("semantic", spatial_dims=3 if three_d else 2)
    eng = Engine.from_config(cfg, device="cpu")
    image, _ = make_disks(3, size=40, three_d=three_d)
    (tmp_path / "in").mkdir()
    axes = "ZYX" if three_d else "YX"
    calibration = {"PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeXUnit": "mm", "PhysicalSizeYUnit": "mm"}
    if three_d:
        calibration |= {"PhysicalSizeZ": 2.0, "PhysicalSizeZUnit": "µm"}
    tifffile.imwrite(tmp_path / "in" / "cal.ome.tif", image[0], ome=True, metadata={"axes": axes, **calibration})
    tifffile.imwrite(tmp_path / "in" / "raw.tif", image[0])  # uncalibrated
    old = os.umask(0o022)
    try:
        done = predict_folder(eng, tmp_path / "in", tmp_path / "out", probabilities=True)
    finally:
        os.umask(old)
    assert not done.failed and len(done.written) == 4
    for path in done.written:
        pixels = from_xml(tifffile.TiffFile(path).ome_metadata).images[0].pixels
        if path.name.startswith("raw"):
            assert (pixels.physical_size_x, pixels.physical_size_y, pixels.physical_size_z) == (None, None, None)
        else:
            assert (pixels.physical_size_x, pixels.physical_size_x_unit.value) == (0.1, "mm"), path
            assert (pixels.physical_size_y, pixels.physical_size_y_unit.value) == (0.1, "mm"), path
            if three_d:
                assert (pixels.physical_size_z, pixels.physical_size_z_unit.value) == (2.0, "µm"), path
            else:
                assert pixels.physical_size_z is None, path
        assert path.stat().st_mode & 0o777 == 0o644, path  # was 0600 (temp file + rename)


def follow_instance_rule(probs: np.ndarray, post: dict) -> np.ndarray:
    """``export.json``'s instance post-processing, implemented from its words and parameters alone."""
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed

    _, interior, boundary = probs
    foreground = interior + boundary > post["fg_threshold"]
    surface = ndi.gaussian_filter(ndi.distance_transform_edt(foreground) * interior, post["surface_sigma"],
                                  mode="nearest")
    width = 2 * post["seed_distance"] + 1
    peaks = foreground & (surface == ndi.maximum_filter(surface, size=width)) & (surface > post["surface_min"])
    peaks &= interior > post["seed_threshold"]
    seeds, _ = ndi.label(peaks)
    objects = watershed(-surface, markers=seeds, mask=foreground)
    orphans, _ = ndi.label(foreground & (objects == 0))
    small = np.bincount(orphans.ravel()) < post["orphan_min_size"]
    orphans[small[orphans]] = 0
    objects = np.where(orphans > 0, orphans + objects.max(), objects)
    small = np.bincount(objects.ravel()) < post["min_size"]
    small[0] = False
    objects[small[objects]] = 0
    _, renumbered = np.unique(objects, return_inverse=True)
    return renumbered.reshape(objects.shape)


def test_instance_rule_in_export_json_is_what_the_code_does(tmp_path: Path, tiny_cfg) -> None:
    """The words of export.json, followed literally, give the app's objects (they once described another
    seed rule and no orphans: 19 objects where the app found 20)."""
    from im2im_engine.exported import labels_from_output

    cfg = tiny_cfg("instance", task={"kind": "instance", "instance": {"min_size": 12, "seed_distance": 4}})
    result = export_model(Engine.from_config(cfg, device="cpu"), "torchscript", tmp_path / "ts")
    post = json.loads((result.path / "export.json").read_text())["postprocessing"]
    assert post["seed_distance"] == 4 and post["orphan_min_size"] == 48 and "no seed" in post["labels"]
    # two touching discs (one object of foreground: the distance surface splits it), a disc whose interior
    # was missed (boundary only: an orphan of 69 px, kept), a 3×3 speck of boundary (an orphan under 48 px,
    # dropped), and a lone 2×4 interior blob (under min_size, dropped)
    probs = np.zeros((3, 48, 64), np.float32)
    probs[0] = 1.0
    yy, xx = np.mgrid[:48, :64]

    def put(mask: np.ndarray, channel: int) -> None:
        probs[:, mask] = np.eye(3, dtype=np.float32)[channel][:, None]

    for cy, cx in ((14, 12), (14, 25)):
        put((yy - cy) ** 2 + (xx - cx) ** 2 <= 49, 1)
    put((yy - 34) ** 2 + (xx - 40) ** 2 <= 22, 2)
    put((yy >= 40) & (yy < 43) & (xx >= 5) & (xx < 8), 2)
    put((yy >= 30) & (yy < 32) & (xx >= 56) & (xx < 60), 1)
    want = follow_instance_rule(probs, post)
    got = labels_from_output(probs, cfg)
    assert want.max() == 3
    np.testing.assert_array_equal(got, want)


def test_runner_matches_the_app_on_images_smaller_than_the_window(tmp_path: Path, tiny_cfg, make_disks) -> None:
    """The app cuts its window to a small image (mirrored up to the stride); the runner must do the same."""
    cfg = tiny_cfg("semantic", model={"params": {"channels": [8, 16, 32], "strides": [2, 2]}})
    eng = Engine.from_config(cfg, device="cpu")
    image, _ = make_disks(5, size=64)
    small = np.ascontiguousarray(image[:, :21, :27])  # under the 32² window, no multiple of the stride 4
    model = ExportedModel(export_model(eng, "onnx", tmp_path / "onnx").path)
    got, want = model.predict(small), eng.predict(small)
    assert got.output.shape == want.output.shape == (2, 21, 27)
    assert np.abs(got.output - want.output).max() < 1e-4
