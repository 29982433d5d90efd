"""The demo-data recipe: deterministic synthetic fluorescence nuclei with exact ground truth.

Why synthetic: tests, benchmarks and `make run` need data with a known answer that ships in a few lines of
code instead of megabytes. The images are built to break a global Otsu threshold the way real nuclear
stains do, so pseudo labels are visibly imperfect and a learned model has something to fix:

* nuclei of varied size, shape (ellipses/ellipsoids) and brightness, some in touching clusters (Otsu +
  connected components merges them);
* a share of dim nuclei (a global threshold misses them) on an uneven, smoothly varying background;
* optical blur, Poisson shot noise and Gaussian read noise, stored as uint16 like a camera would.

Everything depends only on ``seed``: the same call gives the same pixels on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class NucleiRecipe:
    """Knobs of the generator. Defaults give a 2D field like a 20x widefield DAPI image."""

    shape: tuple[int, ...] = (256, 256)
    n_nuclei: int = 28
    radius: tuple[float, float] = (7.0, 14.0)
    cluster_fraction: float = 0.45  # share of nuclei placed touching a previous one
    dim_fraction: float = 0.25  # share of nuclei at a fraction of the typical brightness
    dim_factor: tuple[float, float] = (0.18, 0.35)
    background: float = 180.0  # mean background in photons
    background_gradient: float = 0.9  # relative amplitude of the smooth background variation
    signal: float = 900.0  # typical nucleus brightness above background, photons
    blur_sigma: float = 1.4
    read_noise: float = 6.0
    z_anisotropy: float = 2.0  # 3D only: Z is sampled this much coarser than XY


def _ellipsoid_mask(shape, center, radii, rotation) -> np.ndarray:
    """Boolean mask of an ellipse (2D) or ellipsoid (3D); rotation is in the YX plane."""
    grids = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    d = [g - c for g, c in zip(grids, center, strict=True)]
    cy, sy = np.cos(rotation), np.sin(rotation)
    y, x = d[-2], d[-1]
    d[-2], d[-1] = cy * y + sy * x, -sy * y + cy * x
    return sum((di / r) ** 2 for di, r in zip(d, radii, strict=True)) <= 1.0


def _smooth_field(rng: np.random.Generator, shape, scale: float) -> np.ndarray:
    """Smooth random field in [0, 1] varying over ``scale`` pixels (uneven illumination, texture)."""
    field = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), scale, mode="reflect")
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


def make_nuclei(seed: int = 0, recipe: NucleiRecipe | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image and its instance ground truth.

    Returns ``(image uint16, instances int32)`` of ``recipe.shape`` (2D ``(Y, X)`` or 3D ``(Z, Y, X)``).
    """
    recipe = recipe or NucleiRecipe()
    rng = np.random.default_rng(seed)
    shape = tuple(recipe.shape)
    ndim = len(shape)
    instances = np.zeros(shape, np.int32)
    brightness = np.zeros(shape, np.float32)
    centers: list[np.ndarray] = []
    radii_list: list[float] = []
    zscale = recipe.z_anisotropy if ndim == 3 else 1.0
    label = 0
    for _attempt in range(recipe.n_nuclei * 20):
        if label >= recipe.n_nuclei:
            break
        r = rng.uniform(*recipe.radius)
        if centers and rng.random() < recipe.cluster_fraction:
            # Touch a previous nucleus: centre at about the sum of radii in a random direction.
            j = rng.integers(len(centers))
            direction = rng.standard_normal(ndim)
            if ndim == 3:
                direction[0] *= 0.3
            direction /= np.linalg.norm(direction) + 1e-9
            dist = (radii_list[j] + r) * rng.uniform(0.8, 0.95)
            step = direction * dist
            if ndim == 3:
                step[0] /= zscale
            center = centers[j] + step
        else:
            center = np.array([rng.uniform(0, s) for s in shape])
        if any(c < 0 or c >= s for c, s in zip(center, shape, strict=True)):
            continue
        # Reject heavy overlaps so touching nuclei stay separable by eye.
        too_close = any(
            np.linalg.norm((center - c) * ([zscale, 1, 1] if ndim == 3 else 1)) < 0.75 * (r + rc)
            for c, rc in zip(centers, radii_list, strict=True)
        )
        if too_close:
            continue
        elong = rng.uniform(0.7, 1.0)
        radii = [r, r * elong] if ndim == 2 else [r / zscale, r, r * elong]
        mask = _ellipsoid_mask(shape, center, radii, rng.uniform(0, np.pi)) & (instances == 0)
        if mask.sum() < 10:
            continue
        label += 1
        instances[mask] = label
        level = recipe.signal * rng.lognormal(0.0, 0.25)
        if rng.random() < recipe.dim_fraction:
            level *= rng.uniform(*recipe.dim_factor)
        brightness[mask] = level
        centers.append(center)
        radii_list.append(r)

    texture = 0.75 + 0.5 * _smooth_field(rng, shape, 2.0)
    signal = brightness * texture
    sigma = recipe.blur_sigma if ndim == 2 else (recipe.blur_sigma * 1.5, recipe.blur_sigma, recipe.blur_sigma)
    signal = ndi.gaussian_filter(signal, sigma)
    bg = recipe.background * (1.0 + recipe.background_gradient * (_smooth_field(rng, shape, max(shape) / 4) - 0.5) * 2)
    bg = np.clip(bg, recipe.background * 0.1, None)
    photons = rng.poisson(np.clip(signal + bg, 0, None)).astype(np.float32)
    image = photons + rng.normal(0, recipe.read_noise, shape).astype(np.float32) + 100.0  # camera offset
    image = np.clip(image, 0, 65535).astype(np.uint16)
    return image, instances


def make_nuclei_2d(seed: int = 0, size: int = 256, **kw) -> tuple[np.ndarray, np.ndarray]:
    """2D field; ``n_nuclei`` scales with area unless given."""
    kw.setdefault("n_nuclei", max(4, round(28 * (size / 256) ** 2)))
    return make_nuclei(seed, NucleiRecipe(shape=(size, size), **kw))


def make_nuclei_3d(seed: int = 0, shape: tuple[int, int, int] = (16, 96, 96), **kw) -> tuple[np.ndarray, np.ndarray]:
    """3D stack (Z, Y, X) with anisotropic sampling, for tests of the 3D paths."""
    area = shape[1] * shape[2]
    kw.setdefault("n_nuclei", max(4, round(12 * area / 96**2)))
    return make_nuclei(seed, NucleiRecipe(shape=shape, **kw))


def write_demo_dataset(
    folder: str | Path,
    n_images: int = 12,
    size: int = 256,
    seed: int = 0,
    three_d: bool = False,
) -> tuple[Path, Path]:
    """Write ``folder/images/*.tif`` and ``folder/truth/*.tif`` (instance masks, same stems).

    Returns ``(images_dir, truth_dir)``. Existing files with the same names are overwritten, so calling it
    twice gives the same dataset.
    """
    import tifffile

    folder = Path(folder)
    images_dir, truth_dir = folder / "images", folder / "truth"
    images_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        if three_d:
            image, truth = make_nuclei_3d(seed * 1000 + i, shape=(16, size, size))
        else:
            image, truth = make_nuclei_2d(seed * 1000 + i, size=size)
        name = f"nuclei_{i:03d}.tif"
        tifffile.imwrite(images_dir / name, image)
        tifffile.imwrite(truth_dir / name, truth.astype(np.uint16))
    return images_dir, truth_dir


# ------------------------------------------------------------------------------------------ realistic
@dataclass(frozen=True)
class RealisticRecipe:
    """Knobs of the *realistic* recipe: what broke the loop on real microscopy and the demo did not show.

    Tiles smaller than the default 256² prediction window (a real set had sixteen 128² tiles with about
    eight nuclei each, ~20% foreground); brightness that varies threefold between images (staining and
    exposure differ between fields); nuclei clumped into touching groups, of varied size, some dim, some
    cut by the tile border; an uneven background; few photons, so Poisson noise matters.
    """

    shape: tuple[int, ...] = (128, 128)
    n_nuclei: int = 13
    radius: tuple[float, float] = (6.5, 12.5)
    cluster_fraction: float = 0.65
    dim_fraction: float = 0.3
    dim_factor: tuple[float, float] = (0.25, 0.45)
    background: float = 60.0
    background_gradient: float = 0.8
    signal: float = 200.0
    gain: tuple[float, float] = (0.55, 1.65)  # per image: a threefold spread of brightness
    blur_sigma: float = 1.2
    read_noise: float = 4.0
    z_anisotropy: float = 2.0


def make_realistic(seed: int = 0, recipe: RealisticRecipe | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One realistic image (uint16) and its instance ground truth, 2D ``(Y, X)`` or 3D ``(Z, Y, X)``."""
    recipe = recipe or RealisticRecipe()
    gain = np.random.default_rng([seed, 7]).uniform(*recipe.gain)
    base = NucleiRecipe(
        shape=recipe.shape, n_nuclei=recipe.n_nuclei, radius=recipe.radius,
        cluster_fraction=recipe.cluster_fraction, dim_fraction=recipe.dim_fraction, dim_factor=recipe.dim_factor,
        background=recipe.background * gain, background_gradient=recipe.background_gradient,
        signal=recipe.signal * gain, blur_sigma=recipe.blur_sigma, read_noise=recipe.read_noise,
        z_anisotropy=recipe.z_anisotropy,
    )
    return make_nuclei(seed, base)


def write_realistic_dataset(folder: str | Path, n_images: int = 16, seed: int = 0, three_d: bool = False,
                            shapes: list[tuple[int, ...]] | None = None) -> tuple[Path, Path]:
    """Write ``folder/images`` and ``folder/truth`` like :func:`write_demo_dataset`, from the realistic
    recipe. 2D: 128² tiles (``shapes`` overrides, cycled); 3D: stacks of 31×61×57 with ~50 nuclei."""
    import tifffile

    folder = Path(folder)
    images_dir, truth_dir = folder / "images", folder / "truth"
    images_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    default = [(31, 61, 57)] if three_d else [(128, 128)]
    shapes = shapes or default
    for i in range(n_images):
        shape = tuple(shapes[i % len(shapes)])
        if len(shape) == 3:
            recipe = RealisticRecipe(shape=shape, n_nuclei=50, radius=(4.0, 7.0), cluster_fraction=0.55)
        else:
            area = shape[0] * shape[1] / 128**2
            recipe = RealisticRecipe(shape=shape, n_nuclei=max(3, round(13 * area)))
        image, truth = make_realistic(seed * 1000 + i, recipe)
        name = f"tile_{i:03d}.tif"
        tifffile.imwrite(images_dir / name, image)
        tifffile.imwrite(truth_dir / name, truth.astype(np.uint16))
    return images_dir, truth_dir
