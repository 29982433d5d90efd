"""Settings fitted to the data at ``init``: window and patch sizes from the image and object sizes.

The presets are one size for all; two facts about the data change what works:

* **Image size** (:func:`fit_windows`): a patch larger than the smallest image is mostly padding, and a
  window larger than every image only adds padding to predict on.
* **Object size** (:func:`fit_patch_to_objects`): a model trained on whole 128² tiles from Otsu pseudo
  labels learns the tiles' pseudo labels, mistakes included, and scored below them (Dice 0.848 vs 0.854 on
  the realistic recipe); trained on patches of about 2.5 object diameters (48² for nuclei ~19 px across) it
  scored 0.878, and 0.882 vs 0.845 on the demo. Small patches are many different crops of the same images,
  and the instance normalisation of the UNet then sees local contrast, so what the pseudo labels taught on
  bright nuclei carries over to dim ones the threshold missed. The patch never goes below 32 px in-plane
  (8 along a stride-2 Z axis), and the batch grows to 8 so a step still sees enough pixels.

  The prediction window follows the patch: instance normalisation must see the same context in training
  and prediction. Trained on true masks in 52² patches and predicted in 256² windows, a model covered 30% of
  the demo images where 12% are nuclei (Dice 0.58); predicted in 52² windows it scored 0.988.
"""

from __future__ import annotations

import numpy as np

from .project import APP_SECTIONS, Project, validate_engine_config

#: In-plane patch side in object diameters, the smallest patch, and the batch used with small patches.
CONTEXT_DIAMETERS = 2.5
MIN_PATCH_YX = 32
MIN_PATCH_Z = 8
SMALL_PATCH_BATCH = 8


def _engine_config(config: dict):
    return validate_engine_config({k: v for k, v in config.items() if k not in APP_SECTIONS}, "config")


def fit_windows(config: dict, spatial_shapes: list[tuple[int, ...]]) -> list[str]:
    """Cut ``data.patch_size`` and ``inference.roi_size`` to the images, in place; return what changed.

    A training patch larger than the smallest image is mostly padding, and a window larger than every
    image only adds padding to predict on: per axis, the patch becomes at most the smallest image and the
    window at most the largest, both rounded to the network's stride (which sizes must be divisible by).
    """
    from im2im_engine.networks import total_stride

    shapes = [tuple(int(v) for v in s) for s in spatial_shapes]
    cfg = validate_engine_config({k: v for k, v in config.items() if k not in APP_SECTIONS}, "config")
    d = cfg.data.spatial_dims
    shapes = [s[-d:] for s in shapes if len(s) >= d]
    if not shapes:
        return []
    stride = total_stride(cfg)
    smallest = [min(s[a] for s in shapes) for a in range(d)]
    largest = [max(s[a] for s in shapes) for a in range(d)]
    notes = []
    for section, key, limit, rounding in (("data", "patch_size", smallest, "down"),
                                          ("inference", "roi_size", largest, "up")):
        old = list(getattr(getattr(cfg, section), key))
        new = []
        for size, lim, k in zip(old, limit, stride, strict=True):
            fitted = (lim // k) * k if rounding == "down" else -(-lim // k) * k
            least = -(-4 // k) * k  # the config's smallest allowed size, on the stride
            new.append(min(size, max(least, fitted)))
        if new != old:
            config.setdefault(section, {})[key] = new
            what = "smallest" if rounding == "down" else "largest"
            notes.append(f"{section}.{key}: {old} -> {new} (the {what} image is {'×'.join(map(str, limit))})")
    return notes



def fit_patch_to_objects(config: dict, labels: list[np.ndarray], task: str) -> list[str]:
    """Cut ``data.patch_size`` to about :data:`CONTEXT_DIAMETERS` median object extents per axis (rounded
    up to the network's stride, never below the minimum, never above the current patch), in place; raise
    ``training.batch_size`` to :data:`SMALL_PATCH_BATCH` when the patch shrank. Return what changed."""
    from im2im_engine.auto import object_extents
    from im2im_engine.networks import total_stride

    if task not in ("semantic", "instance") or not labels:
        return []
    extents = [e for lab in labels if lab is not None and lab.any() for e in object_extents(lab, task)]
    if len(extents) < 3:
        return []
    cfg = _engine_config(config)
    d = cfg.data.spatial_dims
    median = np.median(np.array([e[-d:] for e in extents], np.float64), axis=0)
    median[-2:] = median[-2:].max()  # square in-plane, so rot90 augmentation stays on
    stride = total_stride(cfg)
    old = list(cfg.data.patch_size)
    least = [MIN_PATCH_Z] * (d - 2) + [MIN_PATCH_YX, MIN_PATCH_YX]
    new = []
    for size, m, k, lo in zip(old, median, stride, least, strict=True):
        want = max(lo, int(np.ceil(CONTEXT_DIAMETERS * m)))
        new.append(min(size, -(-want // k) * k))
    if new == old:
        return []
    config.setdefault("data", {})["patch_size"] = new
    notes = [f"data.patch_size: {old} -> {new} (about {CONTEXT_DIAMETERS:g} objects across: the median object "
             f"is {'×'.join(f'{v:.0f}' for v in median)} px in the labels)"]
    roi = list(cfg.inference.roi_size)
    window = [min(r, p) for r, p in zip(roi, new, strict=True)]
    if window != roi:
        config.setdefault("inference", {})["roi_size"] = window
        notes.append(f"inference.roi_size: {roi} -> {window} (predict in windows of the training patch)")
    batch = cfg.training.batch_size
    if batch < SMALL_PATCH_BATCH:
        config.setdefault("training", {})["batch_size"] = SMALL_PATCH_BATCH
        notes.append(f"training.batch_size: {batch} -> {SMALL_PATCH_BATCH} (smaller patches, more of them)")
    return notes


def fit_project_to_labels(project: Project) -> list[str]:
    """:func:`fit_patch_to_objects` on a project's pseudo (or imported) labels; saves the config."""
    store = project.store
    labels = [store.get_label(im.id, "pseudo") for im in store.images()[:200]]
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in project.config.items()}
    notes = fit_patch_to_objects(config, [lab for lab in labels if lab is not None], project.task)
    if notes:
        project.save_config(config)
    return notes
