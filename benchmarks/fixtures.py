"""Fixtures the store and GUI benchmarks share: a bare project database, an offscreen Qt app, and a
stand-in training job.

Why a separate *process* doing torch work for "while training": the app runs training in a worker
subprocess (design: jobs never run in the GUI process), so what competes with the GUI is another process
keeping the cores busy, not a thread holding the GIL.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

BUSY_SCRIPT = r"""
import signal, sys, torch
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
from im2im_engine import load_config
from im2im_engine.networks import build_network
from im2im_engine.losses import compute_loss
cfg = load_config("resources/configs/semantic_2d.yaml")
net = build_network(cfg); net.train()
opt = torch.optim.AdamW(net.parameters(), 1e-3)
x = torch.randn(4, 1, 128, 128); y = (x[:, 0] > 0).long(); w = torch.ones_like(x[:, 0])
print("ready", flush=True)
while True:
    opt.zero_grad(); compute_loss(cfg, net(x), y, w).backward(); opt.step()
"""


@contextlib.contextmanager
def training_job() -> Iterator[subprocess.Popen]:
    """A subprocess running a training loop (the same network/loss as the engine) until the block ends."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", BUSY_SCRIPT], cwd=root, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(root)}, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready": the loop is about to start
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def image_row(path: str, shape_zyx: tuple[int, int, int], name: str | None = None) -> dict:
    """An ``images`` row for ``Store.add_image`` (no file is read)."""
    return {"path": path, "name": name or Path(path).stem, "shape": [1, 1, *shape_zyx], "dims": "TCZYX",
            "dtype": "uint16", "channel_names": ["c0"], "content_hash": f"h-{path}", "size_bytes": 0,
            "mtime": 0.0}


@contextlib.contextmanager
def store_with_image(shape_yx: tuple[int, int]) -> Iterator[tuple[object, int]]:
    """A fresh project database in a temp folder with one registered 2D image: ``(store, image_id)``."""
    from annotation.store.db import Store

    with tempfile.TemporaryDirectory(prefix="im2im-bench-") as tmp:
        store = Store(Path(tmp) / "project.db", create=True)
        image_id = store.add_image(image_row(f"{tmp}/img.tif", (1, *shape_yx)))
        try:
            yield store, image_id
        finally:
            store.close()


def qt_app():
    """The QApplication (offscreen unless a display is configured)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication([])


def blobs(shape_yx: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A semantic mask with round objects covering ~20 % (what a prediction to correct looks like)."""
    from .data import semantic_2d

    return semantic_2d(max(shape_yx), seed)[1][: shape_yx[0], : shape_yx[1]].astype(np.int32)


def fast_config(project, steps: int, finetune_steps: int, patch: int = 64, roi: int = 128) -> None:
    """Shrink a project's engine config so a round takes seconds to a minute on 2 CPU cores."""
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in project.config.items()}
    config.setdefault("training", {}).update({"steps": steps, "batch_size": 4, "val_every": max(steps, 1)})
    config.setdefault("data", {})["patch_size"] = [patch, patch]
    config.setdefault("inference", {}).update({"roi_size": [roi, roi], "sw_batch_size": 2})
    config.setdefault("loop", {}).update({"finetune_steps": finetune_steps, "retrain_every": 1})
    project.save_config(config)


@contextlib.contextmanager
def demo_project(n_images: int, size: int, steps: int, finetune_steps: int) -> Iterator[Path]:
    """A demo project (synthetic nuclei, Otsu pseudo labels, semantic task) with a fast config."""
    from annotation.demo_project import ensure_demo_project
    from annotation.project import Project

    with tempfile.TemporaryDirectory(prefix="im2im-bench-") as tmp:
        root = ensure_demo_project(Path(tmp) / "demo", n_images=n_images, size=size, task="semantic")
        project = Project.open(root)
        fast_config(project, steps, finetune_steps)
        project.close()
        yield root
