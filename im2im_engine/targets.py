"""Task targets: instance labels <-> 3-class (background / interior / boundary) maps, and back by watershed.

Why 3 classes for instances: a plain foreground mask merges touching nuclei; learning an explicit boundary
class lets the interior probability act as watershed seeds that split them again, while training stays an
ordinary weighted segmentation problem (same loss, same uncertainty measures as the semantic task).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage as ndi

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2


def instances_to_classes(instances: np.ndarray, boundary_width: int = 1) -> np.ndarray:
    """Instance ids (*sp) -> uint8 class map: 0 background, 1 interior, 2 boundary (inner border of objects).

    Where two objects touch, both sides get boundary pixels, so the interiors are separated.
    """
    from skimage.segmentation import find_boundaries

    inst = np.asarray(instances)
    boundary = find_boundaries(inst, mode="inner", connectivity=1) & (inst > 0)
    if boundary_width > 1:
        # Grow the border inward only (never into the background or another object).
        grown = ndi.binary_dilation(boundary, iterations=boundary_width - 1) & (inst > 0)
        boundary = grown
    out = np.zeros(inst.shape, np.uint8)
    out[inst > 0] = INTERIOR
    out[boundary] = BOUNDARY
    return out


def classes_to_instances(
    probs: np.ndarray,
    fg_threshold: float = 0.5,
    seed_threshold: float = 0.5,
    min_size: int = 8,
) -> np.ndarray:
    """3-class probabilities (3, *sp) -> int32 instance image by seeded watershed.

    Seeds are connected components of P(interior) > ``seed_threshold``; the flooding surface is
    ``1 - P(interior)``, restricted to the foreground ``P(interior) + P(boundary) > fg_threshold``. Foreground
    not reached by any seed (an object whose interior was missed) becomes its own object.
    """
    from skimage.measure import label as cc_label
    from skimage.segmentation import watershed

    probs = np.asarray(probs, np.float32)
    interior = probs[INTERIOR]
    fg = (probs[INTERIOR] + probs[BOUNDARY]) > fg_threshold
    seeds_mask = (interior > seed_threshold) & fg
    seeds = cc_label(seeds_mask, connectivity=1)
    seeds = remove_small(seeds, seed_min_size(min_size))  # specks of interior are not objects
    inst = watershed(1.0 - interior, markers=seeds, mask=fg) if seeds.max() > 0 else np.zeros(fg.shape, np.int64)
    orphans = fg & (inst == 0)
    if orphans.any():
        extra = cc_label(orphans, connectivity=1)
        inst = np.where(extra > 0, extra + inst.max(), inst)
    inst = remove_small(inst, min_size)
    return relabel_sequential(inst)


def seed_min_size(min_size: int) -> int:
    """Smallest seed kept by :func:`classes_to_instances`: a quarter of ``min_size`` (an object's interior
    is smaller than the object), at least 1 px. Exports state it, so it has one home."""
    return max(min_size // 4, 1)


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Zero labelled objects with fewer than ``min_size`` pixels (scikit-image's ``remove_small_objects``)."""
    from skimage.morphology import remove_small_objects

    if min_size <= 1:
        return labels
    with warnings.catch_warnings():  # "Only one label was provided": one object is a fine label image
        warnings.filterwarnings("ignore", "Only one label", UserWarning)
        return remove_small_objects(labels, max_size=min_size - 1)


def relabel_sequential(inst: np.ndarray) -> np.ndarray:
    """Instance ids renumbered 1..N (background 0), as int32 (scikit-image's ``relabel_sequential``)."""
    from skimage.segmentation import relabel_sequential as sk_relabel

    return sk_relabel(np.asarray(inst))[0].astype(np.int32, copy=False)


def semantic_target(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Validate class ids (0..N-1) and return them as int64 (what cross-entropy wants)."""
    lab = np.asarray(labels)
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise ValueError(f"target has class ids {int(lab.min())}..{int(lab.max())}; task.num_classes={num_classes}"
                         f" allows 0..{num_classes - 1}")
    return lab.astype(np.int64)


def labels_from_output(output: np.ndarray, task) -> np.ndarray | None:
    """The label image of a stitched network output (``task``: the config's ``task`` section).

    One rule for the engine and for exported models: argmax for semantic tasks, seeded watershed of the
    background/interior/boundary classes for instances, none for regression.
    """
    if not task.classify:  # regression, denoise
        return None
    if task.kind == "instance":
        ic = task.instance
        return classes_to_instances(output, ic.fg_threshold, ic.seed_threshold, ic.min_size)
    return np.argmax(output, axis=0).astype(np.int32)
