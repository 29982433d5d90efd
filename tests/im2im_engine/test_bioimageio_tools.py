"""bioimage.io packages, checked by the tool their users load them with: ``bioimageio.core`` 0.11.0 (pinned,
in its own environment, see ``tests/toolenv.py``) validates them, runs ``bioimageio test`` on both weight
formats, and predicts images of ordinary sizes whole and blockwise, which must agree with the app.

Fails on an export without the padded graph (390×382 is no multiple of the stride), without the real
minimum (200×200 is under the app's window), with the validator's complaints (a file not listed in
``rdf.yaml``, no maintainer with a GitHub name), or without a halo (seams between blocks).

Two models, because of what a halo can and cannot fix. With batch norm the network is a pure convolution
at inference, so blockwise prediction with a halo covering the receptive field equals the app exactly up
to the app's own blending of window edges; without the halo the block seams show. With instance norm (the
default networks) every window's statistics reach every pixel, so any tiling (the app's own too) depends on
where the windows fall; there the bound is the app against itself with its windows moved.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from im2im_engine import Engine, Sample, load_config
from im2im_engine.export import export_model
from tests.toolenv import BIOIMAGEIO, cache_dir, run_tool, tool_python

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # first run builds the tool env (PyPI)

#: Sizes a user has: under the app's window (64), not a multiple of the network's stride (4), many windows.
SIZES = {"s200": (200, 200), "s390": (390, 382), "s384": (384, 384)}
#: A maintainer bioimageio.spec knows offline (it checks others against api.github.com).
MAINTAINER = {"name": "Ana Example", "github_user": "githubuser2"}

#: In the tool env: for each package, ``bioimageio test``, then predict images whole and/or in blocks of the
#: app's window (the ``--blockwise`` value the package documents).
TOOL = """
import json, sys, numpy as np, yaml
from pathlib import Path
from loguru import logger
logger.remove()
from bioimageio.spec import load_description
from bioimageio.core import predict, test_model
work, jobs = Path(sys.argv[1]), json.loads(sys.argv[2])
reports = {}
for job in jobs:
    pkg = work / job["package"]
    summary = test_model(pkg / "rdf.yaml")
    reports[job["package"]] = {"status": summary.status, "tests": [d.name for d in summary.details],
        "failed": [[d.name, [e.msg for e in d.errors]] for d in summary.details if d.status != "passed"],
        "warnings": [w.msg for d in summary.details for w in (d.warnings or []) if "agree" not in w.msg]}
    descr = load_description(pkg / "rdf.yaml")
    extra = yaml.safe_load((pkg / "rdf.yaml").read_text())["config"]["im2im_active"]
    block = int(extra.get("blockwise", 10))  # 10: bioimageio.core's own default
    for name in job["images"]:
        x = np.load(work / f"{name}_x.npy")[None]
        for mode in job["modes"]:
            kw = {"blocksize_parameter": block} if mode == "block" else {}
            out = predict(model=descr, inputs={"raw": x}, **kw)
            np.save(work / f"{job['package']}_{name}_{mode}.npy", next(iter(out.members.values())).data.values[0])
print(json.dumps(reports))
"""


def train(norm: str, make_disks) -> Engine:
    """3-class instance segmentation, UNet of stride 4 with ``norm`` (MONAI's default is instance norm)."""
    cfg = load_config({
        "data": {"patch_size": [64, 64]}, "task": {"kind": "instance"},
        "model": {"params": {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1, "norm": norm},
                  "head_features": 8},
        "training": {"steps": 40, "batch_size": 4, "lr": 0.01, "val_every": 100, "warmup_steps": 0},
        "inference": {"roi_size": [64, 64], "overlap": 0.25, "sw_batch_size": 4},
    })
    eng = Engine.from_config(cfg, device="cpu")
    eng.train([Sample(im, gt) for im, gt in (make_disks(s, size=96, n=6) for s in range(4))])
    return eng


def image(name: str, make_disks) -> np.ndarray:
    h, w = SIZES[name]
    big, _ = make_disks(11, size=max(h, w), n=max(4, h * w // 2500))
    return np.ascontiguousarray(big[:, :h, :w])


def app_with_windows_moved(engine: Engine, x: np.ndarray) -> np.ndarray:
    """The app's prediction with overlap 0.5 instead of 0.25: same model, windows elsewhere."""
    cfg = engine.config
    moved = cfg.model_copy(update={"inference": cfg.inference.model_copy(update={"overlap": 0.5})})
    return Engine(moved, engine.net, engine.device).predict(x).output


@pytest.fixture(scope="module")
def core(make_disks, tmp_path_factory, request) -> dict:
    """Both packages exported, tested and run by bioimageio.core once; the tests read what it left."""
    work = tmp_path_factory.mktemp("bioimageio")
    engines = {"instance_norm": train("instance", make_disks), "batch_norm": train("batch", make_disks)}
    results = {pkg: export_model(eng, "bioimageio", work / pkg, sample=image("s384", make_disks),
                                 meta={"authors": [MAINTAINER]}) for pkg, eng in engines.items()}
    for name in SIZES:
        np.save(work / f"{name}_x.npy", image(name, make_disks))
    jobs = [{"package": "instance_norm", "images": list(SIZES), "modes": ["whole", "block"]},
            {"package": "batch_norm", "images": ["s390", "s384"], "modes": ["block"]}]
    python = tool_python(cache_dir(request.config), "bioimageio", BIOIMAGEIO)
    proc = run_tool(python, TOOL, str(work), json.dumps(jobs))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"work": work, "engines": engines, "results": results,
            "reports": json.loads(proc.stdout.strip().splitlines()[-1])}


def test_bioimageio_core_validates_and_tests_the_packages(core: dict) -> None:
    for pkg, result in core["results"].items():
        rdf = yaml.safe_load((result.path / "rdf.yaml").read_text())
        listed = {rdf["documentation"], *rdf["covers"], *(a["source"] for a in rdf["attachments"]),
                  *(w["source"] for w in rdf["weights"].values()),
                  *(t[k]["source"] for t in rdf["inputs"] + rdf["outputs"] for k in ("test_tensor", "sample_tensor"))}
        assert listed | {"rdf.yaml"} == set(result.files), pkg  # `bioimageio package` keeps only what is listed
        assert rdf["maintainers"] == [MAINTAINER]
        tile = rdf["config"]["im2im_active"]["tiling"]
        assert tile["step"] == [1, 1] and tile["min_size"][0] < 200, tile
        assert tile["halo"][0] >= tile["receptive_radius"][0] > 0, tile
        report = core["reports"][pkg]
        assert report["status"] == "passed", report["failed"]
        assert any("torchscript" in t for t in report["tests"]) and any("onnx" in t for t in report["tests"])
        assert not report["warnings"], report["warnings"]


def test_ordinary_sizes_predict_whole_and_blockwise_close_to_the_app(core: dict) -> None:
    """Default network (instance norm): within what the app itself varies when its windows move."""
    engine = core["engines"]["instance_norm"]
    for name in SIZES:
        x = np.load(core["work"] / f"{name}_x.npy")
        app = engine.predict(x).output
        own = np.abs(app_with_windows_moved(engine, x) - app).mean()
        for mode in ("whole", "block"):
            got = np.load(core["work"] / f"instance_norm_{name}_{mode}.npy")
            assert got.shape == app.shape, (name, mode)
            diff, agree = np.abs(got - app).mean(), (got.argmax(0) == app.argmax(0)).mean()
            print(f"{name} {mode}: mean |Δp| {diff:.4f} (app vs itself {own:.4f}), labels agree {agree:.4f}")
            assert diff <= 4 * own and agree >= 0.975, (name, mode, diff, own, agree)


def test_blockwise_with_the_halo_equals_the_app_away_from_the_image_border(core: dict) -> None:
    """Batch norm: no window statistics, so a block's kept pixels see their whole receptive field. Inside
    the image (a halo away from its border, where bioimage.io mirrors and the app zero-pads) the blocks agree
    with the app as closely as the app agrees with itself; without the halo the seams exceed that."""
    engine = core["engines"]["batch_norm"]
    halo = yaml.safe_load((core["results"]["batch_norm"].path / "rdf.yaml").read_text())["outputs"][0]["axes"][2]
    h = halo["halo"]
    for name in ("s390", "s384"):
        x = np.load(core["work"] / f"{name}_x.npy")
        app = engine.predict(x).output
        inner = (slice(None), slice(h, -h), slice(h, -h))
        own = np.abs(app_with_windows_moved(engine, x) - app)[inner]
        got = np.load(core["work"] / f"batch_norm_{name}_block.npy")
        diff = np.abs(got - app)[inner]
        print(f"{name}: interior max |Δp| {diff.max():.3f} mean {diff.mean():.5f}; app vs itself max "
              f"{own.max():.3f} mean {own.mean():.5f}")
        assert diff.max() <= own.max() + 0.05 and diff.mean() <= 1.5 * own.mean() + 1e-5, name
