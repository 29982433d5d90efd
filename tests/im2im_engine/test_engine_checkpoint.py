import os
from pathlib import Path

import numpy as np
import pytest
import torch

from im2im_engine import ConfigError, Engine, Sample
from im2im_engine.checkpoint import CheckpointError, atomic_write_bytes, load_checkpoint


def test_save_load_round_trip_equal_predictions(tiny_cfg, disk_data, tmp_path: Path):
    eng = Engine.from_config(tiny_cfg(training={"steps": 5}))
    eng.train([Sample(im, (gt > 0).astype(np.int32)) for im, gt in disk_data[:2]])
    path = eng.save(tmp_path / "v1" / "model.pt", meta={"note": "x"})
    assert (tmp_path / "v1" / "config.yaml").exists()
    assert not [p for p in (tmp_path / "v1").iterdir() if p.name.endswith(".tmp")]
    eng2 = Engine.load(path)
    assert eng2.config == eng.config
    image = disk_data[3][0]
    np.testing.assert_array_equal(eng.predict(image).output, eng2.predict(image).output)
    eng3 = Engine.from_config(tmp_path / "v1" / "config.yaml", checkpoint=path)
    np.testing.assert_array_equal(eng.predict(image).output, eng3.predict(image).output)
    assert load_checkpoint(path)["meta"] == {"note": "x"}


class Evil:
    """Unpickling this would create a file (stand-in for arbitrary code)."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_pickle_is_refused(tmp_path: Path):
    marker = tmp_path / "pwned.txt"
    bad = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "config": Evil(str(marker))}, bad)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused") as e:
        Engine.load(bad)
    assert str(bad) in str(e.value)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        Engine.from_config({}, checkpoint=bad)
    assert not marker.exists()


def test_mismatched_checkpoint_names_file_and_key(tiny_cfg, tmp_path: Path):
    path = Engine.from_config(tiny_cfg()).save(tmp_path / "m.pt")
    with pytest.raises(CheckpointError) as e:
        Engine.from_config(tiny_cfg(task={"num_classes": 3}), checkpoint=path)
    msg = str(e.value)
    assert str(path) in msg and "out.weight" in msg and "(3, 8, 1, 1)" in msg
    assert isinstance(e.value, ConfigError)
    with pytest.raises(CheckpointError, match=r"missing keys"):
        Engine.from_config({"data": {"patch_size": [32, 32]}, "inference": {"roi_size": [32, 32]},
                            "model": {"name": "SegResNet", "params": {"init_filters": 8}}}, checkpoint=path)


def test_unreadable_and_missing_checkpoint(tmp_path: Path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        Engine.load(junk)
    with pytest.raises(CheckpointError, match="does not exist"):
        Engine.load(tmp_path / "none.pt")


def test_atomic_write_replaces(tmp_path: Path):
    p = tmp_path / "a.bin"
    atomic_write_bytes(p, b"1")
    atomic_write_bytes(p, b"22")
    assert p.read_bytes() == b"22"
    assert os.listdir(tmp_path) == ["a.bin"]


def test_weights_only_everywhere():
    """Every torch.load in the engine passes weights_only=True (the repository hook checks the same)."""
    root = Path(__file__).resolve().parents[2] / "im2im_engine"
    call = "torch" + ".load("  # spelled apart so this scan does not find itself
    for f in root.glob("*.py"):
        for line in f.read_text().splitlines():
            if call in line and not line.strip().startswith(("#", '"', "`")):
                assert "weights_only=True" in line, f"{f.name}: {line.strip()}"
