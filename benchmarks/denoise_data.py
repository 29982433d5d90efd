"""Denoising test images with known clean truth: the demo renderer without its noise, and skimage's cell.

Why a noise-free demo render: ``resources.demo.make_nuclei`` draws the nuclei, texture, blur and uneven
background, then adds Poisson shot noise and Gaussian read noise from the same generator. Rendering it
through a generator whose ``poisson`` returns the rate and whose ``normal`` returns the mean gives the
exact clean image of the same scene (uint16 rounding aside) without copying the recipe. Our own
Poisson–Gaussian noise is then added at a chosen photon level, so the truth is known exactly.
"""

from __future__ import annotations

from unittest import mock

import numpy as np


class _NoiselessGenerator:
    """A ``numpy.random.Generator`` whose shot and read noise are switched off; everything else delegates."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng

    def __getattr__(self, name: str):
        return getattr(self._rng, name)

    def poisson(self, lam, size=None):
        return np.asarray(lam, np.float64)

    def normal(self, loc=0.0, scale=1.0, size=None):
        return np.broadcast_to(np.asarray(loc, np.float64), size if size is not None else np.shape(loc)).copy()


def demo_clean(seed: int = 0, size: int = 256) -> np.ndarray:
    """The demo recipe's 2D nuclei field without noise, as float32 (camera units, offset removed)."""
    from resources import demo

    real = np.random.default_rng
    with mock.patch.object(demo.np.random, "default_rng", lambda s=None: _NoiselessGenerator(real(s))):
        image, _ = demo.make_nuclei_2d(seed, size)
    return image.astype(np.float32) - 100.0


def demo_clean_3d(seed: int = 0, shape: tuple[int, int, int] = (16, 96, 96)) -> np.ndarray:
    """A 3D demo stack without noise (float32, offset removed)."""
    from resources import demo

    real = np.random.default_rng
    with mock.patch.object(demo.np.random, "default_rng", lambda s=None: _NoiselessGenerator(real(s))):
        image, _ = demo.make_nuclei_3d(seed, shape)
    return image.astype(np.float32) - 100.0


def cell_clean() -> np.ndarray:
    """scikit-image's bundled ``cell`` (660x550, 8 bit), as float32: the natural-image test case."""
    from skimage import data

    return data.cell().astype(np.float32)


def add_poisson_gaussian(clean: np.ndarray, peak_photons: float, read_noise: float, seed: int = 0
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Scale ``clean`` to ``peak_photons`` at its maximum, draw shot noise, add Gaussian read noise.

    Returns ``(noisy, truth)`` in photons (float32): the truth is the scaled clean image itself.
    """
    rng = np.random.default_rng(seed)
    truth = np.clip(clean, 0, None).astype(np.float64) * (peak_photons / max(float(clean.max()), 1e-6))
    noisy = rng.poisson(truth) + rng.normal(0.0, read_noise, truth.shape)
    return noisy.astype(np.float32), truth.astype(np.float32)


def best_gaussian(noisy: np.ndarray, truth: np.ndarray, sigmas: np.ndarray | None = None) -> tuple[float, float]:
    """The Gaussian filter tuned on the truth: ``(psnr, sigma)`` of the best sigma (a baseline that cheats)."""
    from scipy import ndimage as ndi

    from im2im_engine.metrics import psnr

    rng = float(truth.max() - truth.min())
    sigmas = np.arange(0.25, 4.01, 0.125) if sigmas is None else sigmas
    scores = [(psnr(ndi.gaussian_filter(noisy.astype(np.float64), s), truth, rng), float(s)) for s in sigmas]
    return max(scores)
