"""Pseudo labels from classical image processing, the starting point when a user has no annotations.

Otsu threshold (on a lightly smoothed image), small-object and hole removal, connected components. For
instance tasks, touching objects are split by a watershed on the distance transform — the classical
pipeline many labs already run in Fiji. Its typical mistakes (merged nuclei, missed dim ones, ragged
borders) are exactly what the active-learning loop is for.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import filters, measure, morphology, segmentation

#: Pseudo-label methods, in words (what the CLI's ``--pseudo`` and the wizard offer).
METHODS = {
    "otsu": "Otsu threshold + connected components",
    "watershed": "Otsu threshold + distance-transform watershed (splits touching objects)",
}


def _as_intensity(image: np.ndarray) -> np.ndarray:
    """(C, Z, Y, X) or (C, Y, X) -> one float channel (mean over channels) with spatial dims only."""
    data = np.asarray(image, dtype=np.float32)
    data = data.mean(axis=0)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    return data


def otsu_foreground(intensity: np.ndarray, min_size: int | None = None) -> np.ndarray:
    """Boolean foreground: Otsu on a smoothed image, then small objects and holes removed."""
    smooth = filters.gaussian(intensity, sigma=1.0, preserve_range=True)
    finite = smooth[np.isfinite(smooth)]
    if finite.size == 0 or finite.min() == finite.max():
        return np.zeros(intensity.shape, bool)
    fg = smooth > filters.threshold_otsu(finite)
    if min_size is None:
        min_size = 30 if intensity.ndim == 2 else 100
    fg = morphology.remove_small_objects(fg, max_size=min_size)
    return ndi.binary_fill_holes(fg) if intensity.ndim == 2 else fg


def split_instances(foreground: np.ndarray, min_distance: int = 5) -> np.ndarray:
    """Distance-transform watershed: one seed per distance maximum, so touching blobs come apart."""
    distance = ndi.distance_transform_edt(foreground)
    smooth = filters.gaussian(distance, sigma=1.0, preserve_range=True)
    footprint = np.ones((2 * min_distance + 1,) * foreground.ndim, bool)
    peaks = (smooth == ndi.maximum_filter(smooth, footprint=footprint)) & foreground & (distance > 1.5)
    markers = measure.label(peaks)
    if markers.max() == 0:
        return measure.label(foreground).astype(np.int32)
    return segmentation.watershed(-smooth, markers, mask=foreground).astype(np.int32)


def methods_for(task: str) -> list[str]:
    """The pseudo-label methods that make sense for ``task`` (the watershed only splits instances)."""
    if task == "instance":
        return ["watershed", "otsu"]
    return ["otsu"] if task == "semantic" else []


def pseudo_labels(image: np.ndarray, task: str, method: str = "otsu") -> np.ndarray:
    """Label image for ``task`` by ``method`` (see :data:`METHODS`): class 1 on foreground for 'semantic';
    instance ids for 'instance': one per connected component (``otsu``) or split by a distance-transform
    watershed (``watershed``)."""
    if method not in METHODS:
        raise ValueError(f"pseudo-label method must be one of {', '.join(METHODS)}, got {method!r}")
    fg = otsu_foreground(_as_intensity(image))
    if task == "instance":
        return split_instances(fg) if method == "watershed" else measure.label(fg).astype(np.int32)
    return fg.astype(np.int32)


def otsu_pseudo_labels(image: np.ndarray, task: str) -> np.ndarray:
    """The default classical pipeline for ``task``: touching instances split by the watershed."""
    return pseudo_labels(image, task, "watershed" if task == "instance" else "otsu")
