"""The worker under torchrun: 2 CPU processes (gloo) give the results of 1 process.

The check runs on the CPU on every machine: the ranks are started with no GPU visible (a machine with one GPU
cannot give two NCCL ranks a GPU each, and the engine refuses to share one), and the single-process reference
is built on the CPU too, so both sides compute in float32 with the same kernels.

Training: same seed, same global batch (each rank runs half of it; the loss is taken on the gathered
batch), so the loss curve and the weights match a single process within float rounding. Scoring: images are
dealt out to the ranks and the scores gathered; MC dropout is seeded per image, so 2 ranks equal 1 rank.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from im2im_engine import Engine, Sample, load_config
from im2im_engine.config import deep_merge
from im2im_engine.distributed import DistInfo, from_env, shard, split_sizes

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {
    "data": {"patch_size": [32, 32]},
    "inference": {"roi_size": [32, 32], "sw_batch_size": 4},
    "model": {"params": {"channels": [8, 16], "strides": [2], "num_res_units": 1}, "head_features": 8,
              "dropout": 0.0},
    "training": {"batch_size": 4, "val_every": 3, "lr": 0.01, "warmup_steps": 0, "early_stopping_patience": 0},
}


def _write(tmp: Path, disk_data) -> None:
    for i, (im, gt) in enumerate(disk_data):
        np.save(tmp / f"im{i}.npy", im)
        np.save(tmp / f"t{i}.npy", (gt > 0).astype(np.int32))


def _spec(tmp: Path, name: str, **extra) -> Path:
    spec = {"config": CONFIG, "root": str(tmp), "steps": 6,
            "train": [{"name": f"a{i}", "image": f"im{i}.npy", "target": f"t{i}.npy"} for i in range(3)],
            "val": [{"name": "v", "image": "im3.npy", "target": "t3.npy"}], **extra}
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def _run(spec: Path, nproc: int) -> list[dict]:
    if nproc == 1:
        cmd = [sys.executable, "-m", "im2im_engine.worker", str(spec)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               "-m", "im2im_engine.worker", str(spec)]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env={**env, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})  # gloo on the CPU
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, (events, proc.stderr[-3000:])
    return events


def test_layout_helpers() -> None:
    assert from_env({}) == DistInfo(0, 1, 0) and not from_env({}).active
    two = from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert two.active and not two.is_main
    assert from_env({"RANK": "5", "WORLD_SIZE": "2"}) == DistInfo()  # nonsense: a plain process
    assert shard(list(range(5)), two) == [1, 3] and shard(list(range(5)), DistInfo()) == [0, 1, 2, 3, 4]
    assert split_sizes(5, 2) == [3, 2] and split_sizes(4, 2) == [2, 2]


def _one_process_train(tmp: Path, disk_data) -> tuple[Engine, list[float]]:
    """The reference: the same job trained in this process (saves a worker start-up)."""
    eng = Engine.from_config(load_config(CONFIG, {"training": {"steps": 6}}), device="cpu")
    train = [Sample(im, (gt > 0).astype(np.int32), None, f"a{i}") for i, (im, gt) in enumerate(disk_data[:3])]
    im, gt = disk_data[3]
    res = eng.train(train, [Sample(im, (gt > 0).astype(np.int32), None, "v")])
    return eng, [h["loss"] for h in res.history]


@pytest.mark.slow
def test_two_ranks_match_one(tmp_path: Path, disk_data) -> None:
    _write(tmp_path, disk_data)
    two = _run(_spec(tmp_path, "train2", kind="train", output_dir="two"), 2)
    one, h1 = _one_process_train(tmp_path, disk_data)

    assert two[0]["ranks"] == 2 and two[-1]["event"] == "result" and two[-1]["steps"] == 6
    assert [e["step"] for e in two if e["event"] == "progress"] == list(range(1, 7))  # rank 0 alone speaks
    h2 = [h["loss"] for h in json.loads((tmp_path / "two" / "metrics.json").read_text())["history"]]
    np.testing.assert_allclose(h2, h1, rtol=1e-3)
    # the trained models compute the same function (weights are not compared one by one: a conv bias
    # before instance norm has a zero gradient, and Adam blows its rounding noise up to full-size steps)
    m2 = Engine.load(tmp_path / "two" / "model.pt", device="cpu")
    image = disk_data[0][0]
    np.testing.assert_allclose(m2.predict(image).output, one.predict(image).output, atol=1e-3)

    # scoring: 5 images dealt out to 2 ranks (uneven), MC dropout (bald) seeded per image name
    images = [{"name": f"c{i}", "image": f"im{i % 4}.npy"} for i in range(5)]
    score_cfg = deep_merge(CONFIG, {"model": {"dropout": 0.2}, "uncertainty": {"method": "bald", "passes": 3}})
    events = _run(_spec(tmp_path, "score2", kind="score", config=score_cfg, checkpoint="two/model.pt",
                        output_dir="s2", images=images), 2)
    scored = {e["name"]: e["score"] for e in events if e["event"] == "scored"}
    assert sorted(scored) == [f"c{i}" for i in range(5)]
    assert [e["done"] for e in events if e["event"] == "progress"] == [1, 2, 3, 4, 5]
    assert events[-1]["event"] == "result" and events[-1]["done"] == 5 and not events[-1]["cancelled"]
    ref = Engine.from_config(load_config(score_cfg), checkpoint=tmp_path / "two" / "model.pt", device="cpu")
    for item in images:
        torch.manual_seed(ref.config.training.seed + zlib.crc32(item["name"].encode()))  # as the worker does
        unc = ref.uncertainty(np.load(tmp_path / item["image"]))
        assert scored[item["name"]] == pytest.approx(unc.score, rel=1e-5, abs=1e-7)
        with np.load(tmp_path / "s2" / f"{item['name']}.npz") as z:
            np.testing.assert_array_equal(z["labels"], unc.prediction.labels)


def test_one_gpu_refuses_two_nccl_ranks_before_joining(monkeypatch) -> None:
    """Simulated one-GPU machine: rank 1 of 2 has no GPU of its own, and says so instead of hanging in NCCL."""
    import im2im_engine.distributed as dd

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(dd, "_die_with_parent", lambda: None)
    monkeypatch.setattr(dd.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dd.dist, "init_process_group", lambda **kw: pytest.fail("joined a process group"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(RuntimeError, match="1 visible; run at most one process per GPU"):
        dd.setup()
    assert dd.info() == DistInfo()  # still a plain process
