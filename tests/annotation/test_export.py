"""Exports from a project trained on the demo data: models with provenance, labels, pairs, model import."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from annotation.corrections import apply_mask
from annotation.export import ExportFailed, choose_labels, export, import_model
from annotation.loop import checkpoint_path, train_round
from annotation.project import Project
from annotation.setup import init_project
from im2im_engine import Engine, io
from im2im_engine.data import normalize
from im2im_engine.exported import ExportedModel
from im2im_engine.targets import classes_to_instances

pytestmark = pytest.mark.slow  # every test uses the trained project (a training round in an engine worker)

#: A Python that cannot import this project (nor MONAI): TorchScript via plain torch, ONNX via onnxruntime.
FRESH = """
import sys, json, numpy as np
for name in ("im2im_engine", "annotation", "app", "monai"):
    sys.modules[name] = None
import torch, onnxruntime
ts_dir, onnx_dir, x_file, out_dir = sys.argv[1:5]
x = np.load(x_file)
with torch.no_grad():
    ts = torch.jit.load(ts_dir + "/model.torchscript.pt")(torch.from_numpy(x)).numpy()
sess = onnxruntime.InferenceSession(onnx_dir + "/model.onnx", providers=["CPUExecutionProvider"])
onnx_out = sess.run(None, {"input": x})[0]
big = np.concatenate([x, x[..., ::-1]], axis=-1)  # another spatial size: the graph's size is dynamic
onnx_big = sess.run(None, {"input": np.ascontiguousarray(big)})[0]
np.save(out_dir + "/ts.npy", ts)
np.save(out_dir + "/onnx.npy", onnx_out)
print(json.dumps({"onnx_big_shape": list(onnx_big.shape), "torch": torch.__version__}))
"""


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """An instance project on the demo data with model v1 trained from pseudo labels (a few steps)."""
    from resources.demo import write_demo_dataset
    from tests.conftest import make_fast

    base = tmp_path_factory.mktemp("export")
    images, truth = write_demo_dataset(base / "data", n_images=4, size=96, seed=1)
    project, _ = init_project(base / "proj", images, pseudo="otsu", task="instance")
    make_fast(project, steps=4)
    result = train_round(project, steps=4)
    assert result.accepted and result.version == 1
    # one corrected image with a known author and time, like a GUI session
    image = project.store.images()[0]
    mask = io.read_mask(truth / f"{image.name}.tif")
    apply_mask(project, image, mask, seconds=12.5, author="ana")
    project.store.log("time", image.id, seconds=30.0)
    project.close()
    return base / "proj"


@pytest.fixture
def proj(trained: Path, tmp_path: Path) -> Path:
    """A private copy of the trained project (tests may add model versions)."""
    dst = tmp_path / "proj"
    shutil.copytree(trained, dst)
    return dst


def test_model_exports_reproduce_the_engine_in_a_fresh_python(trained: Path, tmp_path: Path) -> None:
    with Project.open(trained) as project:
        reports = {fmt: export(project, fmt, tmp_path / fmt) for fmt in ("torchscript", "onnx", "bioimageio")}
        engine = Engine.load(checkpoint_path(project, 1), device="cpu")
        cfg = engine.config
        image = io.to_spatial(io.read_image(project.store.images()[1].path).data, 2)
    for fmt, report in reports.items():
        prov = json.loads((report.path / "provenance.json").read_text())
        assert prov["model"]["version"] == 1 and prov["model"]["status"] == "accepted"
        assert prov["training_set_hash"] and prov["rounds"] == 1 and "validation_metrics" in prov
        assert prov["n_corrected_images"] == 0 and prov["engine_version"] and prov["exported_at"]
        assert prov["config"]["task"]["kind"] == "instance", fmt
    rdf = yaml.safe_load((reports["bioimageio"].path / "rdf.yaml").read_text())
    assert rdf["config"]["im2im_active"]["provenance"]["training_set_hash"] == prov["training_set_hash"]

    crop = np.load(reports["torchscript"].path / "test_input.npy")[0]  # one inference window of a demo image
    ref = engine.predict(crop)
    np.save(tmp_path / "x.npy", normalize(crop, cfg.data)[None])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", FRESH, str(reports["torchscript"].path), str(reports["onnx"].path),
                           str(tmp_path / "x.npy"), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["onnx_big_shape"][-1] == 2 * crop.shape[-1]
    ic = cfg.task.instance
    for name in ("ts", "onnx"):
        out = np.load(tmp_path / f"{name}.npy")[0]
        diff = float(np.abs(out - ref.output).max())
        print(f"{name} max abs diff vs engine: {diff:.3g}")
        assert diff < 1e-4, name
        np.testing.assert_array_equal(classes_to_instances(out, ic.fg_threshold, ic.seed_threshold, ic.min_size),
                                      ref.labels)
    assert reports["onnx"].checks["onnx_vs_engine_max_abs_diff"] < 1e-4

    # whole image, several windows, watershed: the runner equals Engine.predict for every format
    want = engine.predict(image)
    for fmt, report in reports.items():
        got = ExportedModel(report.path).predict(image)
        assert np.abs(got.output - want.output).max() < 1e-4, fmt
        np.testing.assert_array_equal(got.labels, want.labels)


def test_model_version_and_import(proj: Path, tmp_path: Path) -> None:
    with Project.open(proj) as project:
        v1 = checkpoint_path(project, 1)
        version = import_model(project, v1)
        assert version == 2 and project.store.current_model == 2
        row = project.store.model(2)
        assert row["status"] == "imported" and row["parent"] == 1 and (proj / row["path"]).exists()
        assert Engine.load(proj / row["path"]).config.task.kind == "instance"
        current = export(project, "onnx", tmp_path / "cur")
        earlier = export(project, "onnx", tmp_path / "old", version=1)
        assert current.model_version == 2 and earlier.model_version == 1
        prov = json.loads((tmp_path / "old" / "provenance.json").read_text())
        assert prov["model"]["version"] == 1
        with pytest.raises(ExportFailed, match="no model version 9"):
            export(project, "onnx", tmp_path / "x", version=9)


def test_import_refuses_corrupt_and_mismatched_checkpoints(proj: Path, tmp_path: Path) -> None:
    with Project.open(proj) as project:
        corrupt = tmp_path / "corrupt.pt"  # a real checkpoint cut short, as by a failed copy
        data = checkpoint_path(project, 1).read_bytes()
        corrupt.write_bytes(data[: len(data) // 2])
        before = [m["version"] for m in project.store.models()]
        with pytest.raises(ExportFailed, match=r"corrupt\.pt: not a readable checkpoint"):
            import_model(project, corrupt)
        cfg = project.engine_config()
        other = Engine.from_config(cfg.model_copy(update={"model": cfg.model.model_copy(update={"head_features": 4})}),
                                   device="cpu")
        torch.save(other.net.state_dict(), tmp_path / "other.pt")  # a bare MONAI-style state dict
        with pytest.raises(ExportFailed, match=r"other.pt: checkpoint does not match the config at '[^']+': "
                                               r"checkpoint \(\d+.*\) vs config"):
            import_model(project, tmp_path / "other.pt")
        sem = cfg.model_copy(update={"task": cfg.task.model_copy(update={"kind": "semantic", "num_classes": 3})})
        Engine.from_config(sem, device="cpu").save(tmp_path / "sem" / "model.pt")
        with pytest.raises(ExportFailed, match="trained for task 'semantic'"):
            import_model(project, tmp_path / "sem" / "model.pt")
        assert [m["version"] for m in project.store.models()] == before and project.store.current_model == 1
        bare = Engine.load(checkpoint_path(project, 1)).net.state_dict()
        torch.save(bare, tmp_path / "bare.pt")
        assert import_model(project, tmp_path / "bare.pt") == 2


def test_labels_round_trip_with_csv(trained: Path, tmp_path: Path) -> None:
    with Project.open(trained) as project:
        store = project.store
        report = export(project, "labels", tmp_path / "labels")
        assert report.n_images == 1
        rows = read_csv(tmp_path / "labels" / "labels.csv")
        assert len(rows) == 1
        row = rows[0]
        image = store.find_image(row["image"])
        assert row["label_version"] == "corrected" and row["corrected_by"] == "ana" and row["corrected_at"]
        assert float(row["seconds_spent"]) == 30.0 and row["kind"] == "instance" and row["n_edits"] == "1"
        back = io.read_mask(tmp_path / "labels" / row["label_file"])
        np.testing.assert_array_equal(back, store.get_label(image.id, "corrected"))

        every = export(project, "labels", tmp_path / "all", versions="all")
        assert every.n_images == 4
        rows = read_csv(tmp_path / "all" / "labels.csv")
        chosen = {r.image.name: r for r in choose_labels(project, "all")}
        assert sorted(r["label_version"] for r in rows) == ["corrected", "pseudo", "pseudo", "pseudo"]
        for r in rows:
            back = io.read_mask(tmp_path / "all" / r["label_file"])
            np.testing.assert_array_equal(back, store.get_label(store.find_image(r["image"]).id, r["label_version"]))
            assert r["label_version"] == chosen[r["image"]].version
        prov = json.loads((tmp_path / "all" / "provenance.json").read_text())
        assert prov["label_versions"] == {"corrected": 1, "pseudo": 3} and prov["current_model"] == 1
        with pytest.raises(ExportFailed, match="already exists"):
            export(project, "labels", tmp_path / "all")


def test_training_pairs(trained: Path, tmp_path: Path) -> None:
    with Project.open(trained) as project:
        store = project.store
        with pytest.raises(ExportFailed, match="--format denoised is for denoise projects"):
            export(project, "denoised", tmp_path / "den")
        report = export(project, "pairs", tmp_path / "pairs", versions="all")
        assert report.n_images == 4
        corrected = store.images()[0]
        name = corrected.name
        im = io.read_image(tmp_path / "pairs" / f"{name}_IM.tiff").data
        np.testing.assert_array_equal(im, io.read_image(corrected.path).data)
        np.testing.assert_array_equal(io.read_mask(tmp_path / "pairs" / f"{name}_GT.tiff"),
                                      store.get_label(corrected.id, "corrected"))
        assert np.all(io.read_array(tmp_path / "pairs" / f"{name}_CM.tiff") == 1.0)
        pseudo = store.images()[1].name
        pseudo_weight = project.engine_config().training.weights.pseudo
        assert 0 < pseudo_weight < 1  # the cost map is the training weight, not a copy of the label
        assert np.allclose(io.read_array(tmp_path / "pairs" / f"{pseudo}_CM.tiff"), pseudo_weight)
        assert (tmp_path / "pairs" / "provenance.json").exists()


# ------------------------------------------------------------------------------ what other tools read
@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> Path:
    """A 2D project whose images state their pixel size three ways, and one that states none."""
    import tifffile

    from resources.demo import make_nuclei_2d

    base = tmp_path_factory.mktemp("calibrated")
    images = base / "images"
    images.mkdir()
    pics = [make_nuclei_2d(seed, size=64)[0] for seed in range(4)]
    tifffile.imwrite(images / "ome.ome.tif", pics[0], ome=True,
                     metadata={"axes": "YX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325})
    tifffile.imwrite(images / "nano.ome.tif", pics[1], ome=True, metadata={
        "axes": "YX", "PhysicalSizeX": 65.0, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 65.0,
        "PhysicalSizeYUnit": "nm"})
    tifffile.imwrite(images / "imagej.tif", pics[2], imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"unit": "um"})
    tifffile.imwrite(images / "plain.tif", pics[3])  # no calibration (tifffile's default 1/1, unit "none")
    project, _ = init_project(base / "proj", images, pseudo="otsu", task="semantic")
    project.close()
    return base / "proj"


#: name -> (y, x, unit) the export must carry; None: no calibration at all.
CALIBRATION = {"ome": (0.325, 0.325, "µm"), "nano": (65.0, 65.0, "nm"), "imagej": (0.5, 0.5, "µm"),
               "plain": None}


def assert_calibration(path: Path, want: tuple | None) -> None:
    """Read back with ome-types (the written OME-XML) and aicsimageio (what most readers report)."""
    import tifffile
    from aicsimageio import AICSImage
    from ome_types import from_xml

    pixels = from_xml(tifffile.TiffFile(path).ome_metadata).images[0].pixels
    if want is None:
        assert pixels.physical_size_x is None and pixels.physical_size_y is None, path
        assert AICSImage(path).physical_pixel_sizes.X is None, path  # nothing invented (was 1.0)
    else:
        y, x, unit = want
        assert (pixels.physical_size_y, pixels.physical_size_x) == pytest.approx((y, x)), path
        assert pixels.physical_size_x_unit.value == unit and pixels.physical_size_y_unit.value == unit, path
    assert pixels.physical_size_z is None, path  # 2D


def test_labels_and_pairs_keep_the_source_pixel_sizes_and_units(calibrated: Path, tmp_path: Path) -> None:
    with Project.open(calibrated) as project:
        export(project, "labels", tmp_path / "labels", versions="all")
        export(project, "pairs", tmp_path / "pairs", versions="all")
    rows = {r["image"]: r for r in read_csv(tmp_path / "labels" / "labels.csv")}
    assert set(rows) == set(CALIBRATION)
    for name, want in CALIBRATION.items():
        assert_calibration(tmp_path / "labels" / rows[name]["label_file"], want)
        for tag in ("IM", "GT", "CM"):
            assert_calibration(tmp_path / "pairs" / f"{name}_{tag}.tiff", want)
    assert rows["nano"]["pixel_size"] == "y 65 nm, x 65 nm"
    assert rows["plain"]["pixel_size"].startswith("none")


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_exported_files_follow_the_umask(calibrated: Path, tmp_path: Path, umask: int) -> None:
    """A colleague on the same server can read an export (it was 0700 folders and 0600 TIFFs)."""
    old = os.umask(umask)
    try:
        with Project.open(calibrated) as project:
            for fmt in ("labels", "pairs"):
                export(project, fmt, tmp_path / fmt, versions="all")
    finally:
        os.umask(old)
    for fmt in ("labels", "pairs"):
        paths = [tmp_path / fmt, *(tmp_path / fmt).rglob("*")]
        assert len(paths) > 5
        for path in paths:
            want = (0o777 if path.is_dir() else 0o666) & ~umask
            assert path.stat().st_mode & 0o777 == want, (oct(path.stat().st_mode & 0o777), path)


def test_pairs_csv_is_the_csv_mmv_im2im_reads(calibrated: Path, tmp_path: Path) -> None:
    with Project.open(calibrated) as project:
        export(project, "pairs", tmp_path / "pairs", versions="all")
        chosen = {r.image.name: r for r in choose_labels(project, "all", ("corrected", "pseudo", "prediction"))}
    rows = read_csv(tmp_path / "pairs" / "pairs.csv")
    assert list(rows[0]) == ["IM", "GT", "CM", "source_path", "target_path", "costmap_path"]
    for row in rows:
        name = Path(row["IM"]).name[: -len("_IM.tiff")]
        assert Path(row["IM"]).is_absolute() and Path(row["IM"]).parent == (tmp_path / "pairs").resolve()
        assert (row["source_path"], row["target_path"], row["costmap_path"]) == (row["IM"], row["GT"], row["CM"])
        np.testing.assert_array_equal(io.read_mask(row["GT"]), chosen[name].label)
    origin = {r["name"]: r for r in read_csv(tmp_path / "pairs" / "pairs_provenance.csv")}
    assert set(origin) == set(CALIBRATION) and origin["ome"]["label_version"] == "pseudo"
    assert origin["ome"]["pixel_size"] == "y 0.325 µm, x 0.325 µm"


def test_bioimageio_authors_and_maintainers_come_from_the_project_settings(proj: Path, tmp_path: Path) -> None:
    from annotation.project import ProjectError

    with Project.open(proj) as project:
        config = dict(project.config)
        with pytest.raises(ProjectError, match=r"config.yaml \(export\): authors.0.nme"):
            project.save_config({**config, "export": {"authors": [{"nme": "typo"}]}})
        project.save_config({**config, "export": {"license": "MIT", "authors": [
            {"name": "Ana Example", "github_user": "ana-example", "affiliation": "Lab"}, {"name": "Bo"}]}})
        export(project, "bioimageio", tmp_path / "pkg")
    rdf = yaml.safe_load((tmp_path / "pkg" / "rdf.yaml").read_text())
    assert rdf["authors"] == [{"name": "Ana Example", "github_user": "ana-example", "affiliation": "Lab"},
                              {"name": "Bo"}]
    assert rdf["maintainers"] == [{"name": "Ana Example", "github_user": "ana-example", "affiliation": "Lab"}]
    assert rdf["license"] == "MIT"
    assert {"source": "test_labels.npy"} in [{"source": a["source"]} for a in rdf["attachments"]]
