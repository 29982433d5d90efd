"""Configurations derived from the data: a fingerprint, rule-based candidates, and cross-validation helpers.

Why rules and not a search over every knob: a handful of facts about the data (image and object sizes,
pixel spacing, channels, intensities, how much is foreground) decide most of what a good configuration
looks like, as nnU-Net showed. So the data is summarised once (:func:`fingerprint`), a few configurations
are derived from it by fixed, stated rules (:func:`plan`, the rules are in ``docs/auto.md``), and only
those few are compared empirically by k-fold cross-validation (:func:`kfold`, :func:`summarize`,
:func:`choose`). The configuration in use today is always one of the candidates, so the choice is never
worse than today on the cross-validation score.

This module is the engine's part: it knows nothing of projects, databases or job backends. The caller
reads the images and labels, runs one training per candidate and fold, and hands the scores back.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .config import EngineConfig, config_to_dict, deep_merge, load_config

#: Per training step, how many patch voxels (batch x patch) the device is given. On a CPU compute, not
#: memory, is the limit: these are the cost of the bundled presets (4 x 128^2 in 2D, 2 x 16 x 64^2 in 3D),
#: so a rule-derived candidate costs about what the preset costs per step. On a GPU, nnU-Net-like sizes.
VOXELS_PER_STEP = {("cpu", 2): 4 * 128 * 128, ("cpu", 3): 2 * 16 * 64 * 64,
                   ("cuda", 2): 12 * 512 * 512, ("cuda", 3): 2 * 128 * 128 * 128}
#: Deepest U-Net per device (pooling operations); each level costs about the same in 2D, so depth is time.
MAX_POOLS = {"cpu": 4, "cuda": 5}
#: First-level width and the cap on any level's width (nnU-Net: 32 and 320/512 on a GPU).
BASE_WIDTH = {"cpu": 16, "cuda": 32}
MAX_WIDTH = {"cpu": 128, "cuda": 320}
MIN_BATCH, MAX_BATCH = 2, 32
#: An axis is pooled while it is at least this many voxels (the bottleneck keeps >= 4), as in nnU-Net.
POOL_MIN_SIZE = 8
#: Floats kept per feature voxel for one training sample (forward activations + gradients, a U-Net with
#: one residual unit per level); a deliberately rough constant, used with a quarter of the memory.
FLOATS_PER_FEATURE_VOXEL = 16
MEMORY_SHARE = 0.25
#: A batch covers at most this share of all the data's voxels (nnU-Net), so tiny data sets are not
#: over-sampled into one batch.
DATASET_SHARE = 0.05
MAX_FINGERPRINT_PIXELS = 200_000  # intensity samples kept per image and channel


# ------------------------------------------------------------------------------------------ fingerprint
@dataclass
class Fingerprint:
    """What the rules need to know about a data set; JSON-safe (:meth:`to_dict` / :meth:`from_dict`).

    Sizes are in voxels, spatial axes only ((Y, X) or (Z, Y, X)); ``spacing`` is the physical size of a
    voxel per axis (1 where unknown), ``object_size`` the median object extent per axis (None without
    labels), ``intensity`` per channel: percentiles 0.5/50/99.5, min, max, mean, std.
    """

    spatial_dims: int
    n_images: int
    channels: int
    median_shape: list[int]
    min_shape: list[int]
    max_shape: list[int]
    total_voxels: int
    spacing: list[float]
    dtype: str = "float32"
    intensity: list[dict[str, float]] = field(default_factory=list)
    distinct_levels: int = 0  # distinct intensity values seen (capped at 4096)
    object_size: list[float] | None = None
    n_objects: int = 0
    foreground_fraction: float | None = None
    n_labelled: int = 0
    label_source: str | None = None  # e.g. corrected, pseudo: what the object sizes were measured on
    task: str = "semantic"

    @property
    def anisotropy(self) -> float:
        """Coarsest over finest voxel spacing (1 for isotropic data)."""
        return max(self.spacing) / max(min(self.spacing), 1e-12)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Fingerprint:
        return cls(**data)


def _intensity_stats(images: Sequence[np.ndarray], rng: np.random.Generator) -> tuple[list[dict], int]:
    channels = images[0].shape[0]
    stats = []
    levels: set = set()
    for c in range(channels):
        pools = []
        for im in images:
            flat = np.asarray(im[c]).ravel()
            if flat.size > MAX_FINGERPRINT_PIXELS:
                flat = flat[rng.choice(flat.size, MAX_FINGERPRINT_PIXELS, replace=False)]
            pools.append(flat.astype(np.float64))
        v = np.concatenate(pools)
        p = np.percentile(v, [0.5, 50.0, 99.5])
        stats.append({"p0_5": float(p[0]), "p50": float(p[1]), "p99_5": float(p[2]), "min": float(v.min()),
                      "max": float(v.max()), "mean": float(v.mean()), "std": float(v.std())})
        if len(levels) <= 4096:
            levels.update(np.unique(v[: 100_000]).tolist()[:4097])
    return stats, min(len(levels), 4096)


def object_extents(label: np.ndarray, task: str) -> list[tuple[int, ...]]:
    """Extent (voxels per axis) of every object: instance ids as they are, semantic foreground split into
    connected components."""
    from scipy import ndimage as ndi

    lab = np.asarray(label)
    if task != "instance":
        lab, _ = ndi.label(lab > 0)
    return [tuple(s.stop - s.start for s in sl) for sl in ndi.find_objects(lab) if sl is not None]


def fingerprint(
    images: Sequence[np.ndarray], labels: Sequence[np.ndarray | None] | None = None, *,
    spacings: Sequence[Sequence[float | None] | None] | None = None,
    shapes: Sequence[Sequence[int]] | None = None, task: str = "semantic", label_source: str | None = None,
    seed: int = 0,
) -> Fingerprint:
    """Summarise a data set from a sample of its images (channel-first, ``(C, *spatial)``).

    ``labels``: the best label of each image (instance or class ids; None where none), used for object
    sizes and the foreground fraction (not for regression). ``shapes``: the spatial shapes of *all* the
    images when only a sample was read (default: the sample's). ``spacings``: physical voxel sizes per
    image, None or None entries where unknown.
    """
    if not images:
        raise ValueError("fingerprint: no images")
    images = [np.asarray(im) for im in images]
    spatial_dims = images[0].ndim - 1
    if spatial_dims not in (2, 3):
        raise ValueError(f"fingerprint: images must be (C, Y, X) or (C, Z, Y, X), got shape {images[0].shape}")
    for im in images:
        if im.ndim != spatial_dims + 1 or im.shape[0] != images[0].shape[0]:
            raise ValueError(f"fingerprint: images differ in dimensions or channels ({images[0].shape} and "
                             f"{im.shape})")
    all_shapes = np.array([list(s)[-spatial_dims:] for s in shapes] if shapes else
                          [im.shape[1:] for im in images], dtype=np.int64)
    rng = np.random.default_rng(seed)
    intensity, levels = _intensity_stats(images, rng)
    spacing = _median_spacing(spacings, spatial_dims)
    fp = Fingerprint(
        spatial_dims=spatial_dims, n_images=len(all_shapes), channels=int(images[0].shape[0]),
        median_shape=[int(v) for v in np.median(all_shapes, axis=0)],
        min_shape=[int(v) for v in all_shapes.min(axis=0)], max_shape=[int(v) for v in all_shapes.max(axis=0)],
        total_voxels=int(np.prod(all_shapes, axis=1).sum()), spacing=spacing, dtype=str(images[0].dtype),
        intensity=intensity, distinct_levels=levels, task=task, label_source=label_source,
    )
    if labels is not None and task != "regression":
        extents: list[tuple[int, ...]] = []
        fg, n = [], 0
        for lab in labels:
            if lab is None:
                continue
            lab = np.asarray(lab)
            n += 1
            fg.append(float((lab > 0).mean()))
            extents.extend(object_extents(lab, task))
        fp.n_labelled = n
        if n:
            fp.foreground_fraction = float(np.mean(fg))
        if extents:
            fp.object_size = [float(v) for v in np.median(np.array(extents, np.float64), axis=0)]
            fp.n_objects = len(extents)
    return fp


def _median_spacing(spacings: Sequence[Sequence[float | None] | None] | None, d: int) -> list[float]:
    """Median known spacing per axis; unknown axes get the in-plane value (or 1)."""
    rows = []
    for s in spacings or []:
        if s is None:
            continue
        vals = list(s)[-d:]
        rows.append([float(v) if v and v > 0 else math.nan for v in vals])
    if not rows:
        return [1.0] * d
    med = np.nanmedian(np.array(rows, np.float64), axis=0) if not np.isnan(rows).all() else np.full(d, np.nan)
    plane = med[-1] if not np.isnan(med[-1]) else 1.0
    return [float(v) if not np.isnan(v) else float(plane) for v in med]


# ------------------------------------------------------------------------------------------------ rules
@dataclass
class Candidate:
    """One configuration to try: its full engine config (a dict), why it looks the way it does, and the
    settings that differ from the configuration in use (``changes``, dotted keys)."""

    name: str
    config: dict
    rules: list[str] = field(default_factory=list)
    changes: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: network, patch, batch, window, normalisation, loss."""
        return describe_config(self.config)


def describe_config(config: dict) -> str:
    cfg = load_config(config)
    from .networks import resolved_params

    p = resolved_params(cfg)
    net = f"{cfg.model.name} {'-'.join(str(c) for c in p.get('channels', []))}" if "channels" in p else cfg.model.name
    x = "x"
    return (f"{net}, patch {x.join(map(str, cfg.data.patch_size))} x{cfg.training.batch_size}, window "
            f"{x.join(map(str, cfg.inference.roi_size))}, {cfg.data.normalization}, {cfg.task.resolved_loss}")


@dataclass
class Plan:
    """The rule-derived settings before they become a config (kept for the rules' own tests)."""

    patch: list[int]
    strides: list[list[int]]  # per pooling level, per axis
    channels: list[int]
    batch_size: int
    roi: list[int]
    sw_batch_size: int
    normalization: str
    loss: str
    foreground_fraction: float
    rules: list[str]

    @property
    def total_stride(self) -> list[int]:
        out = [1] * len(self.patch)
        for level in self.strides:
            out = [o * s for o, s in zip(out, level, strict=True)]
        return out


def memory_budget(device: str = "cpu") -> int:
    """Bytes the training may count on: the GPU's total memory, or the CPU's available RAM."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.mem_get_info()[1])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def _floor_to(n: int, k: int) -> int:
    return max(k, (n // k) * k)


def _pooling(patch: list[float], spacing: list[float], max_pools: int, object_size: list[float] | None,
             rules: list[str]) -> list[list[int]]:
    """nnU-Net's pooling rule: per level, pool every axis that is still >= 8 voxels and whose current
    spacing is at most twice the finest one (anisotropic Z waits until in-plane pooling has caught up)."""
    d = len(patch)
    size = list(patch)
    spc = list(spacing)
    levels: list[list[int]] = []
    limit = max_pools
    if object_size:  # no deeper than a bottleneck voxel the size of a typical object
        limit = min(limit, max(1, math.floor(math.log2(max(2.0, max(object_size))))))
    while len(levels) < limit:
        finest = min(spc)
        level = [2 if size[a] >= POOL_MIN_SIZE and spc[a] <= 2 * finest else 1 for a in range(d)]
        if not any(s == 2 for s in level):
            break
        levels.append(level)
        size = [s / f for s, f in zip(size, level, strict=True)]
        spc = [s * f for s, f in zip(spc, level, strict=True)]
    if not levels:  # MONAI's UNet needs at least two levels; pool whatever axes are even
        levels = [[2 if patch[a] >= 4 else 1 for a in range(d)]]
    aniso = [a for a in range(d) if levels[0][a] == 1]
    rules.append(f"depth: {len(levels)} pooling levels (axes pooled while >= {POOL_MIN_SIZE} voxels"
                 + (f", at most {limit} so the bottleneck is no coarser than an object" if object_size else "")
                 + (f"; axis {'ZYX'[3 - d:][aniso[0]]} not pooled at first: its spacing is over twice the finest"
                    if aniso and d == 3 else "") + ")")
    return levels


def derive(fp: Fingerprint, task: str | None = None, *, device: str = "cpu",
           memory_bytes: int | None = None) -> Plan:
    """The rules (see ``docs/auto.md``): data fingerprint -> patch, depth, width, batch, window,
    normalisation, loss. Every size is at most the smallest image and a multiple of the network's stride."""
    task = task or fp.task
    dev = "cuda" if device.startswith("cuda") else "cpu"
    d = fp.spatial_dims
    rules: list[str] = []
    memory = memory_bytes if memory_bytes is not None else memory_budget(device)
    voxel_budget = VOXELS_PER_STEP[(dev, d)]
    if min(fp.min_shape) < 4:
        raise ValueError(f"images of {fp.min_shape} voxels are too small for a network (at least 4 per axis)")

    # patch: the median image, shrunk along its physically longest axis until two samples fit the budget
    patch = [float(min(m, lo)) for m, lo in zip(fp.median_shape, fp.min_shape, strict=True)]
    lower = [min(float(m), 16.0) for m in fp.min_shape]
    if fp.object_size:  # keep at least two objects across
        lower = [min(float(m), max(lo, 2.0 * o)) for m, lo, o in zip(fp.min_shape, lower, fp.object_size, strict=True)]
    cap = voxel_budget / MIN_BATCH
    while np.prod(patch) > cap:
        phys = [p * s if p > lo else -1.0 for p, s, lo in zip(patch, fp.spacing, lower, strict=True)]
        longest = max(phys)
        if longest < 0:
            break
        for axis, extent in enumerate(phys):  # axes of (nearly) equal extent shrink together: square stays square
            if extent >= 0.99 * longest:
                patch[axis] = max(lower[axis], patch[axis] * 0.9)
    rules.append(f"patch: from the median image {'x'.join(map(str, fp.median_shape))}, at most the smallest "
                 f"image {'x'.join(map(str, fp.min_shape))}, shrunk along the physically longest axis until "
                 f"{MIN_BATCH} patches fit {voxel_budget:,} voxels per step ({dev})"
                 + (f"; at least two objects across (median object {'x'.join(f'{o:.0f}' for o in fp.object_size)})"
                    if fp.object_size else ""))

    strides = _pooling(patch, fp.spacing, MAX_POOLS[dev], fp.object_size, rules)
    total = [1] * d
    for level in strides:
        total = [t * s for t, s in zip(total, level, strict=True)]
    patch_i = [_floor_to(int(p), t) for p, t in zip(patch, total, strict=True)]
    patch_i = [min(p, _floor_to(m, t)) for p, m, t in zip(patch_i, fp.min_shape, total, strict=True)]
    rules.append(f"patch {'x'.join(map(str, patch_i))}: rounded down to the network's stride "
                 f"{'x'.join(map(str, total))}")

    base, top = BASE_WIDTH[dev], MAX_WIDTH[dev]
    channels = [min(base * 2**i, top) for i in range(len(strides) + 1)]
    rules.append(f"width: {base} features doubling per level, capped at {top} ({dev})")

    # batch: what the step budget allows, then what memory allows, then at most 5% of the data
    vox = int(np.prod(patch_i))
    per_level, level_vox = 0.0, float(vox)
    for i, c in enumerate(channels):
        per_level += c * level_vox
        if i < len(strides):
            level_vox /= float(np.prod(strides[i]))
    sample_bytes = per_level * FLOATS_PER_FEATURE_VOXEL * 4
    by_budget = voxel_budget // vox
    by_memory = int(memory * MEMORY_SHARE // max(sample_bytes, 1))
    by_data = max(MIN_BATCH, int(DATASET_SHARE * fp.total_voxels // vox))
    batch = int(max(MIN_BATCH, min(by_budget, by_memory, by_data, MAX_BATCH)))
    limit = min((by_budget, "the step budget"), (by_memory, "memory"), (by_data, "5% of the data"),
                (MAX_BATCH, "the cap"), key=lambda t: t[0])[1]
    rules.append(f"batch {batch}: limited by {limit} ({memory / 2**30:.1f} GiB {'GPU' if dev == 'cuda' else 'RAM'}, "
                 f"~{sample_bytes / 2**20:.0f} MiB per patch; at least {MIN_BATCH})")

    # window for sliding-window prediction: twice the patch in-plane (fewer seams), never beyond an image
    roi = [patch_i[a] if (d == 3 and a == 0) else 2 * patch_i[a] for a in range(d)]
    roi = [min(r, _floor_to(m, t)) for r, m, t in zip(roi, fp.min_shape, total, strict=True)]
    sw_batch = int(max(1, min(4, by_memory // max(1, int(np.prod(roi)) // vox))))
    rules.append(f"window {'x'.join(map(str, roi))}: twice the patch in-plane, at most the smallest image")

    normalization = _normalisation_rule(fp, rules)
    loss, fg_frac = _loss_rule(fp, task, rules)
    return Plan(patch_i, strides, channels, batch, roi, sw_batch, normalization, loss, fg_frac, rules)


def _normalisation_rule(fp: Fingerprint, rules: list[str]) -> str:
    signed = any(s["min"] < 0 for s in fp.intensity)
    if fp.distinct_levels and fp.distinct_levels <= 16:
        rules.append(f"normalisation minmax: only {fp.distinct_levels} intensity levels (percentiles would "
                     "collapse onto them)")
        return "minmax"
    if signed and fp.dtype.startswith("float"):
        rules.append("normalisation zscore: signed float intensities (already processed, no camera offset)")
        return "zscore"
    rules.append("normalisation percentile (1-99.8, per image and channel): camera counts with an offset and "
                 "hot pixels")
    return "percentile"


def _loss_rule(fp: Fingerprint, task: str, rules: list[str]) -> tuple[str, float]:
    if task == "regression":
        rules.append("loss l1: robust to the noise in restoration targets")
        return "l1", 0.5
    fg = fp.foreground_fraction
    if fg is not None and fg < 0.1:
        rules.append(f"loss dice_ce; {fg:.1%} foreground: two thirds of the patches centred on foreground")
        return "dice_ce", 0.67
    rules.append("loss dice_ce (cross-entropy + soft dice, as nnU-Net)"
                 + (f"; {fg:.0%} foreground: half the patches centred on foreground" if fg is not None else ""))
    return "dice_ce", 0.5


def _unet_overrides(plan: Plan, base: EngineConfig, channels: list[int] | None = None,
                    strides: list[list[int]] | None = None) -> dict:
    d = len(plan.patch)
    strides = strides if strides is not None else plan.strides
    channels = channels if channels is not None else plan.channels
    flat = [s[0] if len(set(s)) == 1 else list(s) for s in strides]
    params = {"channels": list(channels), "strides": flat, "num_res_units": 1}
    return {
        "data": {"patch_size": list(plan.patch), "normalization": plan.normalization,
                 "foreground_fraction": plan.foreground_fraction},
        "model": {"name": "UNet", "params": params, "head_features": min(channels[0], 32)},
        "task": {"loss": plan.loss} if base.task.kind in ("semantic", "instance", "regression") else {},
        "training": {"batch_size": plan.batch_size},
        "inference": {"roi_size": list(plan.roi[:d]), "sw_batch_size": plan.sw_batch_size},
    }


def _fits(config: dict) -> bool:
    from .networks import check_sizes

    try:
        check_sizes(load_config(config))
    except ValueError:
        return False
    return True


def _changes(base: dict, new: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(set(base) | set(new)):
        a, b = base.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.update(_changes(a, b, f"{prefix}{key}."))
        elif a != b:
            out[f"{prefix}{key}"] = b
    return out


def plan(fp: Fingerprint, base: dict | EngineConfig, *, device: str = "cpu", memory_bytes: int | None = None,
         max_candidates: int = 4) -> list[Candidate]:
    """Candidates for a data set: the configuration in use (``current``, always first), the rule-derived one
    (``rules``) and variations of it (``shallower``, ``larger-patch``, ``loss-ce``/``loss-mse``, ``wider``),
    in that order of priority, without duplicates, at most ``max_candidates``."""
    base_cfg = base if isinstance(base, EngineConfig) else load_config(base)
    base_dict = config_to_dict(base_cfg)
    task = base_cfg.task.kind
    p = derive(fp, task, device=device, memory_bytes=memory_bytes)
    d = fp.spatial_dims
    if d != base_cfg.data.spatial_dims or fp.channels != base_cfg.data.in_channels:
        raise ValueError(f"the data ({d}D, {fp.channels} channels) does not fit the configuration "
                         f"({base_cfg.data.spatial_dims}D, {base_cfg.data.in_channels} channels)")
    out = [Candidate("current", copy.deepcopy(base_dict), ["the configuration in use now"], {})]

    def add(name: str, overrides: dict, why: list[str]) -> None:
        merged = deep_merge(base_dict, overrides)
        if "params" in overrides.get("model", {}):  # a network's parameters replace the old ones, never mix
            merged["model"]["params"] = copy.deepcopy(overrides["model"]["params"])
        try:
            cfg = config_to_dict(load_config(merged))
        except ValueError:  # a setting this task does not take (e.g. a loss of another task kind)
            return
        if len(out) >= max_candidates or not _fits(cfg) or any(c.config == cfg for c in out):
            return
        out.append(Candidate(name, cfg, why, _changes(base_dict, cfg)))

    rules_ov = _unet_overrides(p, base_cfg)
    add("rules", rules_ov, list(p.rules))
    if len(p.strides) > 1:
        fewer = p.strides[:-1]
        add("shallower", _unet_overrides(p, base_cfg, p.channels[:-1], fewer),
            [*p.rules, "variation: one pooling level fewer (smaller receptive field, cheaper)"])
    big = _larger_patch(p, fp)
    if big is not None:
        add("larger-patch", _unet_overrides(big, base_cfg), [*p.rules, f"variation: patch {'x'.join(map(str, big.patch))} "
            f"x{big.batch_size} (more context; batch halved, at least {MIN_BATCH})"])
    if task == "regression":
        alt = deep_merge(rules_ov, {"task": {"loss": "mse"}})
        add("loss-mse", alt, [*p.rules, "variation: loss mse"])
    else:
        alt = deep_merge(rules_ov, {"task": {"loss": "ce"}})
        add("loss-ce", alt, [*p.rules, "variation: loss ce (calibrated probabilities, no dice term)"])
    wide = [min(2 * c, 2 * MAX_WIDTH["cuda" if device.startswith("cuda") else "cpu"]) for c in p.channels]
    add("wider", _unet_overrides(p, base_cfg, wide), [*p.rules, "variation: twice the width (more capacity)"])
    return out


def _larger_patch(p: Plan, fp: Fingerprint) -> Plan | None:
    """The rule patch grown by half in-plane (batch halved, at least the minimum), if the images allow."""
    stride = p.total_stride
    d = len(p.patch)
    patch = list(p.patch)
    for a in range(d - 2, d):
        patch[a] = min(_floor_to(int(p.patch[a] * 1.5), stride[a]), _floor_to(fp.min_shape[a], stride[a]))
    if patch == p.patch:
        return None
    batch = max(MIN_BATCH, p.batch_size * int(np.prod(p.patch)) // int(np.prod(patch)))
    roi = [max(r, q) for r, q in zip(p.roi, patch, strict=True)]
    roi = [min(r, _floor_to(m, s)) for r, m, s in zip(roi, fp.min_shape, stride, strict=True)]
    return Plan(patch, p.strides, p.channels, batch, roi, p.sw_batch_size, p.normalization, p.loss,
                p.foreground_fraction, p.rules)


# ------------------------------------------------------------------------------------ cross-validation
def kfold(n: int, k: int, seed: int = 0) -> list[list[int]]:
    """Validation indices of each of ``k`` folds over ``n`` items (shuffled once with ``seed``; every item
    in exactly one fold; fold sizes differ by at most one)."""
    if k < 2:
        raise ValueError(f"folds: at least 2 (got {k})")
    if n < k:
        raise ValueError(f"{k}-fold cross-validation needs at least {k} labelled images (got {n})")
    order = np.random.default_rng(seed).permutation(n)
    return [sorted(int(i) for i in order[f::k]) for f in range(k)]


def summarize(scores: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one score) of a candidate's fold scores."""
    vals = [float(s) for s in scores]
    if not vals:
        return math.nan, math.nan
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


@dataclass
class Choice:
    """The chosen candidate, the folds the comparison used, and a sentence saying why."""

    name: str
    folds: list[int]
    reason: str
    means: dict[str, float] = field(default_factory=dict)


def choose(scores: dict[str, dict[int, float]], reference: str = "current", min_gain: float = 0.0) -> Choice:
    """Pick the candidate with the best mean score (higher is better) over the folds the reference finished.

    Only candidates that finished all of those folds compete, so a candidate is never preferred for having
    been scored on easier folds. The reference wins ties and anything within ``min_gain``.
    """
    ref = scores.get(reference) or {}
    if not ref:
        raise ValueError(f"no finished fold for the reference candidate {reference!r}")
    folds = sorted(ref)
    means = {name: summarize([s[f] for f in folds])[0] for name, s in scores.items() if all(f in s for f in folds)}
    best = max(means, key=lambda n: (means[n], n == reference))
    others = [n for n in means if n != reference]
    if not others:
        return Choice(reference, folds, f"no other candidate finished the {len(folds)} fold(s) of the current "
                      f"configuration ({means[reference]:.4f}): it stays", means)
    if best == reference or means[best] <= means[reference] + min_gain:
        runner_up = max(others, key=lambda n: means[n])
        why = (f"the current configuration was best ({means[reference]:.4f} over {len(folds)} folds; the next, "
               f"{runner_up}, {means[runner_up]:.4f})")
        return Choice(reference, folds, why, means)
    return Choice(best, folds, f"{best} {means[best]:.4f} against {means[reference]:.4f} for the current "
                  f"configuration over {len(folds)} folds", means)
