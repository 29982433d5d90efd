"""Samples, per-image normalisation, patch sampling and light augmentation (numpy, seeded).

Why numpy with one ``np.random.Generator``: the whole batch stream (which image, which centre, which flip)
is a pure function of ``training.seed``, so two CPU runs give identical losses. Images are normalised
once per training run and kept in memory (the cache), patches are cut from those arrays.

Patch sampling prefers useful pixels: a ``data.foreground_fraction`` share of patches is centred on a
foreground pixel or on a corrected pixel (weight at the ``painted`` level); the rest anywhere with
weight > 0. Corrections are few and precious, so they must not be drowned by random background patches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import DataConfig, EngineConfig
from .targets import instances_to_classes, semantic_target

MAX_POOL = 200_000  # preferred-centre candidates kept per image (subsampled; bounds memory on huge stacks)


@dataclass
class Sample:
    """One training/validation image.

    ``image``: (C, *sp) any dtype (a (*sp) array is taken as one channel). ``target``: class ids (semantic),
    instance ids (instance) or float (C_out, *sp) (regression). ``weight``: float (*sp), 0 = ignore;
    None means all ones.
    """

    image: np.ndarray
    target: np.ndarray | None = None
    weight: np.ndarray | None = None
    name: str = ""


@dataclass
class Prepared:
    """A sample after normalisation and target conversion, ready for patch cutting."""

    image: np.ndarray  # float32 (C, *sp), padded to >= patch
    target: np.ndarray  # int64 (*sp) or float32 (C_out, *sp)
    weight: np.ndarray  # float32 (*sp)
    name: str
    pools: list[np.ndarray] = field(default_factory=list)  # flat indices of preferred centres


def as_channel_first(image: np.ndarray, cfg: EngineConfig) -> np.ndarray:
    """Accept (C, *sp) or, for one channel, (*sp); check channels and dimensions with a clear message."""
    arr = np.asarray(image)
    d = cfg.data.spatial_dims
    if arr.ndim == d and cfg.data.in_channels == 1:
        arr = arr[None]
    if arr.ndim != d + 1:
        raise ValueError(f"image of shape {arr.shape} does not fit a {d}D model (data.spatial_dims={d}): "
                         f"expected (C, {', '.join('ZYX'[3 - d:])})")
    if arr.shape[0] != cfg.data.in_channels:
        raise ValueError(f"image has {arr.shape[0]} channel{'s' if arr.shape[0] != 1 else ''} but the model "
                         f"takes {cfg.data.in_channels} (data.in_channels={cfg.data.in_channels})")
    return arr


def check_sample(sample: Sample, cfg: EngineConfig, with_target: bool = True) -> None:
    """Raise ValueError, in words, when a sample cannot be used with this model: dimensions, channels,
    target or weight shape. Called before training, so one bad image is named and skipped instead of
    failing the run half-way."""
    image = as_channel_first(sample.image, cfg)
    sp = tuple(image.shape[1:])
    if min(sp) < 1:
        raise ValueError(f"image has an empty axis {sp}")
    d = cfg.data.spatial_dims
    if with_target and sample.target is not None:
        target = np.asarray(sample.target)
        if tuple(target.shape[-d:]) != sp or target.ndim not in (d, d + 1):
            raise ValueError(f"its label has shape {target.shape}, the image {sp}")
    if sample.weight is not None and tuple(np.shape(sample.weight)) != sp:
        raise ValueError(f"its weight map has shape {np.shape(sample.weight)}, the image {sp}")


def normalize(image: np.ndarray, data: DataConfig) -> np.ndarray:
    """Per-image, per-channel normalisation to float32 (robust to camera offsets and bit depth)."""
    x = np.asarray(image, np.float32)
    if data.normalization == "none":
        return np.ascontiguousarray(x)
    out = np.empty_like(x)
    for c in range(x.shape[0]):
        ch = x[c]
        if data.normalization == "percentile":
            lo, hi = np.percentile(ch, data.percentiles)
        elif data.normalization == "minmax":
            lo, hi = float(ch.min()), float(ch.max())
        else:  # zscore
            lo, hi = float(ch.mean()), float(ch.mean() + ch.std())
        out[c] = (ch - lo) / max(float(hi - lo), 1e-6)
    return out


def prepare_target(target: np.ndarray, cfg: EngineConfig) -> np.ndarray:
    """Task target -> what the loss consumes: int64 class ids, or float32 (C_out, *sp)."""
    task = cfg.task
    t = np.asarray(target)
    if task.kind == "semantic":
        return semantic_target(t, task.num_classes)
    if task.kind == "instance":
        return instances_to_classes(t, task.instance.boundary_width).astype(np.int64)
    d = cfg.data.spatial_dims
    if t.ndim == d:
        t = t[None]
    if t.shape[0] != task.out_channels:
        raise ValueError(f"regression target has {t.shape[0]} channels, task.out_channels={task.out_channels}")
    t = t.astype(np.float32)
    if task.normalize_target:
        t = normalize(t, cfg.data.model_copy(update={"normalization": "percentile"}))
    return t


def _pad_to(arr: np.ndarray, size: list[int], mode: str) -> np.ndarray:
    d = len(size)
    sp = arr.shape[-d:]
    pads = [(0, 0)] * (arr.ndim - d) + [(0, max(0, s - n)) for s, n in zip(size, sp, strict=True)]
    if all(p == (0, 0) for p in pads):
        return arr
    return np.pad(arr, pads, mode=mode) if mode != "constant" else np.pad(arr, pads)


def training_patch(cfg: EngineConfig, shapes: list[tuple[int, ...]]) -> list[int]:
    """The patch size a run trains with: ``data.patch_size``, cut per axis to the largest training image
    rounded up to the network's stride — the same rule as the prediction window (see
    :func:`im2im_engine.inference.fit_window`), so a model trained and used on images smaller than the
    configured sizes sees the same kind of input both times. Smaller images of a mixed set are mirrored
    up to the patch, with weight 0 on the mirrored pixels."""
    from .networks import total_stride

    patch = list(cfg.data.patch_size)
    if not shapes:
        return patch
    return [min(p, -(-max(s[a] for s in shapes) // k) * k)
            for a, (p, k) in enumerate(zip(patch, total_stride(cfg), strict=True))]


def prepare(sample: Sample, cfg: EngineConfig, rng: np.random.Generator, patch: list[int] | None = None) -> Prepared:
    """Normalise, convert the target, pad to at least one patch (``patch``, default ``data.patch_size``),
    and index preferred patch centres."""
    image = normalize(as_channel_first(sample.image, cfg), cfg.data)
    sp = image.shape[1:]
    if cfg.task.kind == "denoise":  # blind-spot training: the image is its own target (see n2v.py)
        target = np.zeros((0, *sp), np.float32)
    elif sample.target is None:
        raise ValueError(f"sample {sample.name!r}: training needs a target")
    else:
        target = prepare_target(sample.target, cfg)
    if tuple(target.shape[-len(sp):]) != tuple(sp):
        raise ValueError(f"sample {sample.name!r}: target shape {target.shape} does not match image {sp}")
    weight = np.ones(sp, np.float32) if sample.weight is None else np.asarray(sample.weight, np.float32)
    if weight.shape != sp:
        raise ValueError(f"sample {sample.name!r}: weight shape {weight.shape} does not match image {sp}")
    patch = list(patch or cfg.data.patch_size)
    image = _pad_to(image, patch, "reflect")
    target = _pad_to(target, patch, "constant")
    weight = _pad_to(weight, patch, "constant")
    pools = []
    valid = weight > 0
    if cfg.task.classify:
        pools.append(np.flatnonzero(valid & (target > 0)))
    corrected = weight >= cfg.training.weights.painted
    n_corr = int(corrected.sum())
    if 0 < n_corr < int(valid.sum()):  # only a preference when corrections are a minority
        pools.append(np.flatnonzero(corrected))
    pools = [p if len(p) <= MAX_POOL else np.sort(rng.choice(p, MAX_POOL, replace=False)) for p in pools if len(p)]
    return Prepared(image, target, weight, sample.name, pools)


@dataclass(frozen=True)
class PatchPlan:
    """Every random decision about one patch, drawn in :meth:`PatchSampler.plan`; cutting it is pure."""

    sample: int  # index into the sampler's samples
    starts: tuple[int, ...]  # the patch's first pixel per spatial axis
    flips: tuple[int, ...]  # spatial axes (0-based) flipped, in order
    rot90: int  # quarter turns in the YX plane (after the flips)
    scale: float | None = None  # intensity: x * scale + shift in float32; None: no intensity change
    shift: float = 0.0


class PatchSampler:
    """Draws augmented patch batches from prepared samples with one seeded generator.

    Why two halves: :meth:`plan` draws every random decision of a batch from the one generator, in a fixed
    order (image, centre, flips, rotation, intensity — per patch), so the batch stream is a pure function of
    ``training.seed``; :meth:`make` cuts and augments the patches from a plan and uses no randomness, so it
    can run in background threads (:class:`im2im_engine.pipeline.BatchStream`) while the network trains,
    and the patches are the same as :meth:`batch` cuts in the calling thread. A subclass that needs more
    randomness draws it in ``plan`` (after these draws) and applies it in ``make``.
    """

    def __init__(self, samples: list[Prepared], cfg: EngineConfig, rng: np.random.Generator,
                 patch: list[int] | None = None):
        if not samples:
            raise ValueError("training needs at least one sample")
        self.samples = samples
        self.cfg = cfg
        self.rng = rng
        self.patch = list(patch or cfg.data.patch_size)

    def _centre(self, s: Prepared) -> tuple[int, ...]:
        rng = self.rng
        sp = s.weight.shape
        if s.pools and rng.random() < self.cfg.data.foreground_fraction:
            pool = s.pools[int(rng.integers(len(s.pools)))]
            return tuple(int(i) for i in np.unravel_index(pool[int(rng.integers(len(pool)))], sp))
        return tuple(int(rng.integers(n)) for n in sp)

    def _plan_one(self) -> PatchPlan:
        rng = self.rng
        index = int(rng.integers(len(self.samples)))
        s = self.samples[index]
        centre = self._centre(s)
        sp = s.weight.shape
        starts = tuple(min(max(c - p // 2, 0), n - p) for c, p, n in zip(centre, self.patch, sp, strict=True))
        aug = self.cfg.data.augmentation
        flips = tuple(ax for ax in range(len(sp)) if rng.random() < 0.5) if aug.flips else ()
        k = int(rng.integers(4)) if aug.rot90 and self.patch[-1] == self.patch[-2] else 0
        scale: float | None = None
        shift = 0.0
        if self.cfg.task.kind != "regression" and (aug.intensity_scale or aug.intensity_shift):
            scale = 1.0 + rng.uniform(-aug.intensity_scale, aug.intensity_scale)
            shift = float(rng.uniform(-aug.intensity_shift, aug.intensity_shift))
        return PatchPlan(index, starts, flips, k, scale, shift)

    def plan(self, batch_size: int) -> list[PatchPlan]:
        """The random decisions of the next batch (advances the generator; cheap)."""
        return [self._plan_one() for _ in range(batch_size)]

    def shapes(self, batch_size: int) -> tuple[tuple[tuple[int, ...], np.dtype], ...]:
        """Shapes and dtypes of ``(x, y, w)`` for a batch (what :meth:`make` fills)."""
        s = self.samples[0]
        d = len(self.patch)
        lead = s.target.shape[:-d]
        return (((batch_size, s.image.shape[0], *self.patch), np.dtype(np.float32)),
                ((batch_size, *lead, *self.patch), s.target.dtype),
                ((batch_size, *self.patch), np.dtype(np.float32)))

    def make(self, plans: list[PatchPlan], out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cut and augment the planned patches into ``out`` (fresh arrays when None); no randomness, no
        shared state written, and numpy releases the GIL for the copies, so threads run it in parallel."""
        if out is None:
            out = tuple(np.empty(shape, dtype) for shape, dtype in self.shapes(len(plans)))  # type: ignore[assignment]
        xo, yo, wo = out  # type: ignore[misc]
        d = len(self.patch)
        for i, pl in enumerate(plans):
            s = self.samples[pl.sample]
            sl = tuple(slice(a, a + p) for a, p in zip(pl.starts, self.patch, strict=True))
            x, y, w = s.image[(slice(None), *sl)], s.target[(..., *sl)], s.weight[sl]
            for ax in pl.flips:
                x, y, w = np.flip(x, ax - d), np.flip(y, ax - d), np.flip(w, ax - d)
            if pl.rot90:
                x, y, w = (np.rot90(a, pl.rot90, axes=(-2, -1)) for a in (x, y, w))
            if pl.scale is not None:  # bit for bit ``x * float32(scale) + float32(shift)``
                np.multiply(x, np.float32(pl.scale), out=xo[i])
                np.add(xo[i], np.float32(pl.shift), out=xo[i])
            else:
                xo[i] = x
            yo[i] = y
            wo[i] = w
        return xo, yo, wo

    def batch(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x (B, C, *patch) float32, y (B, *patch) int64 | (B, C_out, *patch) float32, w (B, *patch))."""
        return self.make(self.plan(batch_size))
