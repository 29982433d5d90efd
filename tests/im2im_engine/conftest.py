"""Fixtures for the engine tests: tiny configs and synthetic 'bright disks' images with exact truth.

Everything is small (64² images, 8/16-channel UNets, tens of steps) so the whole suite runs in well under
a minute on two CPU cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from im2im_engine import load_config


def disks(seed: int, size: int = 64, n: int = 4, three_d: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(image (1, *sp) float32, instances (*sp) int32): separated bright disks/balls on a noisy background."""
    rng = np.random.default_rng(seed)
    shape = (16, size, size) if three_d else (size, size)
    scale = np.array([2.0, 1.0, 1.0] if three_d else [1.0, 1.0])  # Z is sampled coarser
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    inst = np.zeros(shape, np.int32)
    placed: list[tuple[np.ndarray, float]] = []
    for _ in range(200):
        if len(placed) == n:
            break
        r = rng.uniform(5, 8)
        c = np.array([rng.uniform(r / sc, s - r / sc) for s, sc in zip(shape, scale, strict=False)])
        if any(np.linalg.norm((c - c2) * scale) < r + r2 + 3 for c2, r2 in placed):
            continue
        placed.append((c, r))
        d2 = sum(((g - ci) * sc) ** 2 for g, ci, sc in zip(grids, c, scale, strict=False))
        inst[d2 <= r * r] = len(placed)
    image = (inst > 0).astype(np.float32) + rng.normal(0, 0.3, shape).astype(np.float32) + 0.2
    return image[None], inst


def tiny_overrides(spatial_dims: int = 2, **extra) -> dict:
    patch = [32, 32] if spatial_dims == 2 else [8, 32, 32]
    base = {
        "data": {"spatial_dims": spatial_dims, "patch_size": patch},
        "model": {"name": "UNet", "params": {"channels": [8, 16], "strides": [2], "num_res_units": 1},
                  "head_features": 8, "dropout": 0.2},
        "training": {"steps": 20, "batch_size": 4, "lr": 0.01, "val_every": 10, "warmup_steps": 0,
                     "early_stopping_patience": 0},
        "inference": {"roi_size": patch, "sw_batch_size": 4, "overlap": 0.25},
        "uncertainty": {"passes": 4},
    }
    from im2im_engine.config import deep_merge

    return deep_merge(base, extra)


@pytest.fixture
def tiny_cfg():
    """Factory: ``tiny_cfg(kind="semantic", spatial_dims=2, **overrides)`` -> validated config."""

    def make(kind: str = "semantic", spatial_dims: int = 2, **extra):
        ov = tiny_overrides(spatial_dims, **extra)
        ov = {**ov, "task": {"kind": kind, **ov.get("task", {})}}
        return load_config(ov)

    return make


@pytest.fixture(scope="session")
def disk_data():
    """Four 2D samples: (image, instances)."""
    return [disks(s) for s in range(4)]


@pytest.fixture(scope="session")
def make_disks():
    """The :func:`disks` generator, as a fixture (test folders are not packages, so no imports)."""
    return disks
