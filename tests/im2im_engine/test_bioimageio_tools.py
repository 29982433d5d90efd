"""A bioimage.io package, checked by the tools its users load it with: ``bioimageio.core`` (pinned, in its
own environment, see ``tests/toolenv.py``) validates it, runs ``bioimageio test`` on both weight formats, and
predicts images of ordinary sizes whole and blockwise, which must agree with the app.

Fails on an export without the padded graph (390×382 is no multiple of the stride), without the real
minimum (200×200 under the window), or with the validator's complaints (missing files, no maintainer).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from im2im_engine import Engine, Sample, load_config
from im2im_engine.export import export_model
from tests.toolenv import BIOIMAGEIO, run_tool, tool_python

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]  # first run builds the tool env (PyPI)

#: Sizes a user has: under the app's window, not a multiple of the network's stride (4), a few windows.
SIZES = {"s200": (200, 200), "s390": (390, 382), "s384": (384, 384)}

#: In the tool env: validate, test, and predict every image whole and in blocks of the app's window.
PREDICT = """
import json, sys, numpy as np
from pathlib import Path
from loguru import logger
logger.remove()
from bioimageio.spec import load_description
from bioimageio.core import predict, test_model
pkg, work = Path(sys.argv[1]), Path(sys.argv[2])
names = json.loads(sys.argv[3])
descr = load_description(pkg / "rdf.yaml")
summary = test_model(pkg / "rdf.yaml")
report = {"status": summary.status, "failed": [
    [d.name, [e.msg for e in d.errors]] for d in summary.details if d.status != "passed"],
    "warnings": [w.msg for d in summary.details for w in (d.warnings or []) if "agree" not in w.msg],
    "tests": [d.name for d in summary.details]}
block = int(descr.config["im2im_active"]["blockwise"])
for name in names:
    x = np.load(work / f"{name}_x.npy")[None]
    for mode, kw in (("whole", {}), ("block", {"blocksize_parameter": block})):
        out = predict(model=descr, inputs={"raw": x}, **kw)
        np.save(work / f"{name}_{mode}.npy", next(iter(out.members.values())).data.values[0])
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def engine(make_disks) -> Engine:
    """Instance segmentation with the default network family: UNet with instance norm, stride 4."""
    cfg = load_config({
        "data": {"patch_size": [64, 64]}, "task": {"kind": "instance"},
        "model": {"params": {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}, "head_features": 8},
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


def test_bioimageio_core_validates_tests_and_predicts_like_the_app(engine, make_disks, tmp_path: Path,
                                                                  request) -> None:
    meta = {"authors": [{"name": "Ana Example", "github_user": "ana-example"}]}
    result = export_model(engine, "bioimageio", tmp_path / "pkg", sample=image("s384", make_disks), meta=meta)
    rdf = yaml.safe_load((tmp_path / "pkg" / "rdf.yaml").read_text())
    listed = {rdf["documentation"], *rdf["covers"], *(a["source"] for a in rdf["attachments"]),
              *(w["source"] for w in rdf["weights"].values()),
              *(t[k]["source"] for t in rdf["inputs"] + rdf["outputs"] for k in ("test_tensor", "sample_tensor"))}
    assert listed | {"rdf.yaml"} == set(result.files)  # `bioimageio package` keeps exactly what is listed
    assert rdf["maintainers"] == [{"name": "Ana Example", "github_user": "ana-example"}]
    tile = rdf["config"]["im2im_active"]["tiling"]
    assert tile["step"] == [1, 1] and tile["min_size"][0] <= 200 and tile["halo"][0] >= tile["receptive_radius"][0]

    for name in SIZES:
        np.save(tmp_path / f"{name}_x.npy", image(name, make_disks))
    python = tool_python(request.config.cache.mkdir("toolenv"), "bioimageio", BIOIMAGEIO)
    proc = run_tool(python, PREDICT, str(tmp_path / "pkg"), str(tmp_path), json.dumps(list(SIZES)))
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["status"] == "passed", report["failed"]
    assert any("torchscript" in t for t in report["tests"]) and any("onnx" in t for t in report["tests"])
    assert not report["warnings"], report["warnings"]

    for name in SIZES:
        x = np.load(tmp_path / f"{name}_x.npy")
        app = engine.predict(x).output
        # the app's own dependence on where its windows fall: the same model, windows shifted by half a window
        cfg = engine.config
        shifted = Engine(cfg.model_copy(update={"inference": cfg.inference.model_copy(update={"overlap": 0.5})}),
                         engine.net, engine.device).predict(x).output
        self_diff = np.abs(shifted - app)
        for mode in ("whole", "block"):
            got = np.load(tmp_path / f"{name}_{mode}.npy")
            assert got.shape == app.shape, (name, mode)
            diff = np.abs(got - app)
            agree = float((got.argmax(0) == app.argmax(0)).mean())
            print(f"{name} {mode}: max {diff.max():.3f} mean {diff.mean():.4f} labels agree {agree:.4f}; app vs "
                  f"app shifted: max {self_diff.max():.3f} mean {self_diff.mean():.4f}")
