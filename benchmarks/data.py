"""Synthetic inputs shared by the benchmarks (deterministic, no downloads).

Why synthetic demo nuclei rather than noise: training and uncertainty behave differently on images with
structure, and the demo recipe gives realistic foreground fractions and known masks in milliseconds.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def nuclei_2d(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(image uint16 (Y, X), instance truth (Y, X)) from the demo recipe, tiled up to ``size``."""
    from resources.demo import make_nuclei

    image, truth = make_nuclei(seed)
    reps = -(-size // image.shape[0])
    big = np.tile(image, (reps, reps))[:size, :size]
    lab = np.tile(truth, (reps, reps))[:size, :size]
    return np.ascontiguousarray(big), np.ascontiguousarray(lab)


def semantic_2d(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    image, truth = nuclei_2d(size, seed)
    return image, (truth > 0).astype(np.int32)


def volume(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (Z, Y, X) stack of demo planes with a binary mask: cheap to make at any size."""
    z, y, x = shape
    image, truth = semantic_2d(max(y, x), seed)
    image, truth = image[:y, :x], truth[:y, :x]
    shift = np.arange(z)[:, None, None] % 7
    vol = (image[None].astype(np.float32) * (1.0 + 0.05 * shift)).astype(np.uint16)
    lab = np.broadcast_to(truth[None], (z, y, x)).copy()
    return vol, lab
