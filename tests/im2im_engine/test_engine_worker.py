import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from im2im_engine import Engine

ROOT = Path(__file__).resolve().parents[2]


def write_job(tmp: Path, disk_data, job_kind: str, **extra) -> Path:
    for i, (im, gt) in enumerate(disk_data):
        np.save(tmp / f"im{i}.npy", im)
        np.save(tmp / f"t{i}.npy", (gt > 0).astype(np.int32))
        np.save(tmp / f"w{i}.npy", np.ones(gt.shape, np.float32))
    cfg = {"data": {"patch_size": [32, 32]}, "inference": {"roi_size": [32, 32]},
           "model": {"params": {"channels": [8, 16], "strides": [2]}, "head_features": 8},
           "training": {"batch_size": 2, "val_every": 5}}
    spec = {"kind": job_kind, "config": cfg, "output_dir": "out", "steps": 10, "root": str(tmp),
            "train": [{"name": f"a{i}", "image": f"im{i}.npy", "target": f"t{i}.npy", "weight": f"w{i}.npy"}
                      for i in range(2)],
            "val": [{"name": "v", "image": "im2.npy", "target": "t2.npy"}],
            "images": [{"name": f"c{i}", "image": f"im{i}.npy"} for i in range(3)]}
    spec.update(extra)
    path = tmp / f"{job_kind}.json"
    path.write_text(json.dumps(spec))
    return path


def run_worker(job: Path) -> tuple[int, list[dict]]:
    proc = subprocess.run([sys.executable, "-m", "im2im_engine.worker", str(job)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.mark.slow
def test_train_then_score(tmp_path: Path, disk_data, capsys):
    rc, events = run_worker(write_job(tmp_path, disk_data, "train"))
    assert rc == 0, events
    assert events[0]["event"] == "start" and events[-1]["event"] == "result"
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["step"] for e in progress] == list(range(1, 11))
    assert any(e["event"] == "metrics" for e in events)
    out = tmp_path / "out"
    assert {"model.pt", "config.yaml", "metrics.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "metrics.json").read_text())["steps"] == 10

    rc, events = run_worker(write_job(tmp_path, disk_data, "score", checkpoint="out/model.pt",
                                      config="out/config.yaml", output_dir="scores"))
    assert rc == 0, events
    scored = [e for e in events if e["event"] == "scored"]
    assert [e["name"] for e in scored] == ["c0", "c1", "c2"]
    with np.load(scored[0]["file"]) as z:
        assert z["labels"].dtype == np.int32 and z["labels"].shape == (64, 64)
        assert z["output"].dtype == np.float16 and z["output"].shape == (2, 64, 64)
        assert z["uncertainty"].dtype == np.float16 and z["embedding"].dtype == np.float32
        assert float(z["score"]) == pytest.approx(scored[0]["score"])

    # predict in-process (same code path, saves a interpreter start-up)
    from im2im_engine.worker import main

    job = write_job(tmp_path, disk_data, "predict", checkpoint="out/model.pt", config="out/config.yaml",
                    output_dir="pred")
    assert main([str(job)]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len([e for e in events if e["event"] == "scored"]) == 3
    with np.load(tmp_path / "pred" / "c1.npz") as z:
        assert set(z.files) == {"labels", "output", "embedding"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"kind": "fly"}, "kind: must be one of train, score, predict"),
        ({"output_dir": "/elsewhere"}, "outside the job root"),
        ({"config": {"model": {"name": "Foo"}}}, "model.name: must be one of"),
        ({"checkpoint": "missing.pt"}, "does not exist"),
    ],
)
def test_errors_are_reported(tmp_path: Path, disk_data, extra, message):
    from im2im_engine.worker import Emitter, Job, JobError, run_job

    job_path = write_job(tmp_path, disk_data, "train", **extra)
    lines = []

    class Sink:
        def write(self, s):
            lines.append(s)

        def flush(self):
            pass

    with pytest.raises((JobError, ValueError)) as e:
        spec = json.loads(job_path.read_text())
        run_job(Job(spec, tmp_path), Emitter(Sink()), {"flag": False})
    assert message in str(e.value)


def test_error_exit_code_and_event(tmp_path: Path):
    job = tmp_path / "bad.json"
    job.write_text("{not json")
    rc, events = run_worker(job)
    assert rc == 1 and events[-1]["event"] == "error" and "invalid JSON" in events[-1]["message"]


@pytest.mark.slow
def test_sigterm_cancels_and_keeps_checkpoint(tmp_path: Path, disk_data):
    job = write_job(tmp_path, disk_data, "train", steps=100000)
    proc = subprocess.Popen([sys.executable, "-m", "im2im_engine.worker", str(job)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    events = []
    try:
        deadline = time.time() + 60
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "progress" and events[-1]["step"] >= 2:
                os.kill(proc.pid, signal.SIGTERM)
                break
            assert time.time() < deadline
        events += [json.loads(line) for line in proc.stdout]
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 130
    result = events[-1]
    assert result["event"] == "result" and result["cancelled"] is True
    assert result["steps"] <= 4  # stopped within about one step of the signal
    eng = Engine.load(tmp_path / "out" / "model.pt")
    assert eng.predict(disk_data[0][0]).labels.shape == (64, 64)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["cancelled"] is True
