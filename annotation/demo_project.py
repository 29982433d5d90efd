"""The demo project behind ``im2im-active demo`` and ``make run``: synthetic nuclei with Otsu pseudo labels.

Two recipes (``resources/demo.py``): ``nuclei``, 256² images of well-separated nuclei (quick to look at),
and ``realistic``, 128² tiles (smaller than the default window) with a threefold brightness spread, touching
clumps, an uneven background and Poisson noise: the data that showed where the loop failed on real
microscopy, for trying the loop (and ``simulate``) on something that is not easy.

The images and their ground truth live inside the project folder (``PROJECT/data/``) so the demo is one
self-contained folder a user can delete; ground truth is kept for ``simulate`` and tests, never shown as a
label.
"""

from __future__ import annotations

import os
from pathlib import Path

from resources.demo import write_demo_dataset, write_realistic_dataset

from .importer import Progress
from .project import Project
from .setup import init_project


def ensure_demo_project(
    root: str | os.PathLike, *, progress: Progress | None = None, n_images: int = 12, size: int = 256,
    three_d: bool = False, task: str = "instance", seed: int = 0, recipe: str = "nuclei",
) -> Path:
    """Create the demo project at ``root`` unless one is already there; return its folder."""
    root = Path(root)
    if (root / Project.DB).exists():
        return root
    data = root / "data"
    if recipe == "realistic":
        write_realistic_dataset(data, n_images=n_images, seed=seed, three_d=three_d)
    elif recipe == "nuclei":
        write_demo_dataset(data, n_images=n_images, size=size, seed=seed, three_d=three_d)
    else:
        raise ValueError(f"unknown demo recipe {recipe!r}: nuclei or realistic")
    pseudo = "watershed" if task == "instance" else "otsu"  # touching nuclei split apart
    project, _ = init_project(root, data / "images", pseudo=pseudo, task=task, progress=progress)
    project.store.set_meta("demo_truth", str((data / "truth").resolve()))
    project.close()
    return root
