"""Corrections that arrive as whole masks: ``im2im-active correct`` and the simulated annotator.

A mask replaces the image's ``corrected`` label as one recorded edit (kind ``mask``), so it shows in the
history, can be undone, and counts for the loop exactly like corrections painted in the GUI.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from im2im_engine import io

from .importer import fit_mask_to_task
from .project import Project, ProjectError
from .store import ImageRecord


def apply_mask(project: Project, image: ImageRecord, mask: np.ndarray, *, seconds: float = 0.0,
               author: str | None = None, kind: str = "mask", done: bool = True) -> int:
    """Store ``mask`` as the corrected label of ``image`` (semantic tasks: ``> 0`` becomes class 1 unless the
    config has several classes).

    A whole mask is the person's answer for every pixel: all of it counts as painted, and the image is
    marked ``done`` (unless ``done=False``), in the same transaction as the pixels.
    """
    mask = np.asarray(mask)
    if mask.shape != tuple(image.spatial_shape):
        raise ProjectError(f"mask of shape {mask.shape} does not fit {image.name} of shape {image.spatial_shape}")
    n_classes = int((project.engine_config_dict().get("task") or {}).get("num_classes", 2))
    mask = fit_mask_to_task(mask, project.task, n_classes)
    zyx = mask if mask.ndim == 3 else mask[None]
    box = (0, zyx.shape[0], 0, zyx.shape[1], 0, zyx.shape[2])
    store = project.store
    with store.write():
        cid = store.apply_edit(image.id, box, zyx.astype(np.int32), kind=kind, seconds=seconds,
                               model_version=store.current_model, author=author,
                               touched=np.ones(zyx.shape, bool))
        if done:
            store.mark_done(image.id, author=author)
    return cid


def correct_from_file(project: Project, image_key: str, mask_path: str | os.PathLike, *,
                      author: str | None = None) -> ImageRecord:
    """``im2im-active correct PROJECT IMAGE --mask FILE``."""
    image = project.store.find_image(image_key)
    mask = io.read_mask(Path(mask_path), expected_spatial=tuple(image.spatial_shape))
    apply_mask(project, image, mask, author=author or os.environ.get("USER"))
    return image
