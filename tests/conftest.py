"""Shared fixtures: small synthetic data written the way a user's folder looks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def demo_folder(tmp_path: Path) -> tuple[Path, Path]:
    """Four 96² demo images with their true instance masks: ``(images_dir, truth_dir)``."""
    from resources.demo import write_demo_dataset

    return write_demo_dataset(tmp_path / "data", n_images=4, size=96, seed=1)


@pytest.fixture
def image_record():
    """A minimal image row for the store (no file needed)."""

    def make(name: str = "a", shape: tuple[int, ...] = (1, 1, 1, 64, 64)) -> dict:
        return {
            "path": f"/data/{name}.tif", "name": name, "shape": list(shape), "dims": "TCZYX",
            "dtype": "uint16", "channel_names": ["c0"], "content_hash": f"hash-{name}",
            "size_bytes": 0, "mtime": 0.0,
        }

    return make


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)
