"""Noise2Void / N2V2 blind-spot training: pixel masking, the masked loss, and raw-unit outputs.

Why blind spots: with pixel-wise independent, zero-mean noise, a network that predicts a pixel from its
*neighbours only* cannot learn the pixel's own noise, so training it to reproduce the noisy image gives
the clean signal (Krull et al. 2019). The network is not built blind; instead a few pixels of every
patch are hidden and only those pixels count in the loss:

* **where**: ``masked_percent`` percent of the pixels of each patch and channel, one per stratum of
  ``100 / masked_percent`` pixels (a grid of boxes, one random pixel in each), so the masked pixels are
  spread evenly instead of clumping (ours: 5 %, one pixel per 20; CAREamics' default: 0.2 %, one per 500,
  which leaves most of a step's pixels out of the loss: see :class:`im2im_engine.config.N2VConfig`).
* **what goes in their place**: ``uniform``: the value of a random other pixel of the ``window``
  neighbourhood (N2V); ``median``: the median of that neighbourhood without the pixel itself (N2V2,
  Höck et al. 2022). Neighbours that fall outside the patch are mirrored through the centre (offset ``o``
  becomes ``-o`` on that axis), so a pixel is *never* replaced by itself, even at a border. Neither takes
  a value from another masked pixel: that would copy the other pixel's hidden noisy value, its target,
  into the input next to it (negligible at CAREamics' 0.2 %, one neighbour in 20 at our 5 %).
* **structN2V** (Broaddus et al. 2020): when the noise is correlated along a line (scan lines, camera
  rows), also overwrite the ``span`` neighbours along that line with random values, and never take a
  replacement from that line.

Every masked pixel counts in the loss, including those whose replacement happens to have the same value
(common for low photon counts); CAREamics drops those, which biases the masked set towards pixels that
differ from their neighbours.

The masking runs on the numpy batch from :class:`im2im_engine.data.PatchSampler` with its own seeded
generator, so the patch stream is unchanged and two runs with one seed are identical. The loss sees the
unmasked patch as its target and the mask (times the sample's weight map) as its weight.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import EngineConfig, N2VConfig, StructMaskConfig

_STREAM = 0x4E32  # separates the masking generator from the patch sampler's (same training.seed)
REDRAWS = 8  # draws of a uniform replacement that hit another masked pixel are redrawn this often at most


def stratified_coords(shape: tuple[int, ...], percent: float, n_planes: int, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
    """One random pixel per box of ``100 / percent`` pixels, for ``n_planes`` planes of ``shape``.

    Returns ``(plane (N,), coords (N, d))``. Boxes are float-sized (side ``(100 / percent) ** (1/d)``), so
    the expected masked fraction is ``percent / 100`` for any patch size; points past the edge are dropped.
    """
    d = len(shape)
    side = (100.0 / percent) ** (1.0 / d)
    grid = [np.arange(int(np.ceil(n / side))) * side for n in shape]
    corners = np.stack(np.meshgrid(*grid, indexing="ij"), -1).reshape(-1, d)
    pts = np.floor(corners[None] + rng.random((n_planes, len(corners), d)) * side).astype(np.int64)
    inside = (pts < np.asarray(shape)).all(-1)
    plane, idx = np.nonzero(inside)
    return plane, pts[plane, idx]


def struct_offsets(spatial_dims: int, struct: StructMaskConfig | None) -> np.ndarray:
    """Offsets (L, d) of the structN2V line(s) around a pixel, without the pixel itself (YX plane)."""
    if struct is None:
        return np.zeros((0, spatial_dims), np.int64)
    half = struct.span // 2
    steps = [s for s in range(-half, half + 1) if s]
    axes = {"horizontal": [-1], "vertical": [-2], "cross": [-2, -1]}[struct.axes]
    out = []
    for ax in axes:
        for s in steps:
            o = np.zeros(spatial_dims, np.int64)
            o[ax] = s
            out.append(o)
    return np.stack(out)


def window_offsets(spatial_dims: int, window: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Offsets (K, d) of the ``window``-wide neighbourhood, without the centre and ``exclude`` offsets."""
    half = window // 2
    grids = np.meshgrid(*([np.arange(-half, half + 1)] * spatial_dims), indexing="ij")
    offs = np.stack([g.ravel() for g in grids], 1).astype(np.int64)
    keep = np.any(offs != 0, axis=1)
    if exclude is not None and len(exclude):
        keep &= ~(offs[:, None, :] == exclude[None]).all(-1).any(1)
    return offs[keep]


def mirrored(coords: np.ndarray, offsets: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``coords + offsets``, with each axis that leaves the patch taken as ``coords - offsets`` instead.

    Since ``offsets`` is never all zeros and the patch is at least a window wide, the result is inside the
    patch and never the centre itself.
    """
    off = np.asarray(offsets, np.int32)
    fwd = np.asarray(coords, np.int32) + off
    outside = fwd.view(np.uint32) >= np.asarray(shape, np.uint32)  # negative ones wrap to huge: one compare
    return np.where(outside, fwd - 2 * off, fwd)


class Masker:
    """Masks numpy batches for blind-spot training (see the module docstring); seeded, reproducible."""

    def __init__(self, cfg: EngineConfig, seed: int = 0):
        self.n2v: N2VConfig = cfg.task.n2v
        self.spatial_dims = cfg.data.spatial_dims
        self.rng = np.random.default_rng([seed, _STREAM])
        self.struct = struct_offsets(self.spatial_dims, self.n2v.struct_mask)
        self.offsets = window_offsets(self.spatial_dims, self.n2v.window, self.struct)

    def mask(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x`` (B, C, *sp) -> (masked copy of ``x``, mask (B, C, *sp) float32: 1 where a pixel was hidden)."""
        b, c, *sp = x.shape
        shape = tuple(sp)
        if any(n < self.n2v.window for n in shape):
            raise ValueError(f"patch {shape} is smaller than task.n2v.window ({self.n2v.window})")
        flat = np.ascontiguousarray(x, np.float32).reshape(b * c, *shape)
        out = flat.copy()
        mask = np.zeros_like(flat)
        rng = self.rng
        plane, coords = stratified_coords(shape, self.n2v.masked_percent, b * c, rng)
        hidden = np.zeros(flat.shape, bool)
        hidden[(plane, *coords.T)] = True
        if self.n2v.strategy == "uniform":
            values = flat[(plane, *self._uniform_sources(plane, coords, hidden, shape).T)]
        else:  # N2V2: median of the neighbourhood without the centre (and without the struct line)
            nb = mirrored(coords[:, None, :], self.offsets[None], shape)  # (N, K, d)
            at = (plane[:, None], *np.moveaxis(nb, -1, 0))
            values = _median_of_visible(flat[at], ~hidden[at])
        out[(plane, *coords.T)] = values
        if len(self.struct):
            line = coords[:, None, :] + self.struct[None]  # (N, L, d)
            inside = ((line >= 0) & (line < np.asarray(shape))).all(-1)
            lp = np.broadcast_to(plane[:, None], inside.shape)[inside]
            pts = line[inside]
            lo, hi = flat.reshape(b * c, -1).min(1), flat.reshape(b * c, -1).max(1)
            out[(lp, *pts.T)] = lo[lp] + rng.random(len(lp)).astype(np.float32) * (hi - lo)[lp]
        mask[(plane, *coords.T)] = 1.0
        return out.reshape(x.shape), mask.reshape(x.shape)

    def _uniform_sources(self, plane: np.ndarray, coords: np.ndarray, hidden: np.ndarray, shape: tuple[int, ...]
                         ) -> np.ndarray:
        """A random window neighbour of each masked pixel that is not masked itself (redrawn up to
        ``REDRAWS`` times; at 5 % masked, about one in 20 first draws is): a replacement copied from another
        masked pixel would put that pixel's own noisy value, its training target, into the input."""
        rng = self.rng
        src = mirrored(coords, self.offsets[rng.integers(len(self.offsets), size=len(coords))], shape)
        for _ in range(REDRAWS):
            bad = np.nonzero(hidden[(plane, *src.T)])[0]
            if not len(bad):
                break
            pick = self.offsets[rng.integers(len(self.offsets), size=len(bad))]
            src[bad] = mirrored(coords[bad], pick, shape)
        return src

    def __call__(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The training-loop hook: a sampler batch ``(x, y, w)`` -> ``(masked x, x as target, mask * w)``.

        ``y`` (the sampler's empty target) is ignored: the clean patch is the target. ``w`` (B, *sp) is the
        sample's weight map (0 = ignore), so ignored regions stay out of the loss here too.
        """
        masked, mask = self.mask(x)
        return masked, np.ascontiguousarray(x, np.float32), mask * np.asarray(w, np.float32)[:, None]


def _median_of_visible(values: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Row-wise median of ``values`` (N, K) over the ``visible`` entries (rows with none: over all).

    Hidden entries sort last as +inf, then the middle of each row's visible part is read off: the same
    value as ``np.median`` of those entries, 20x faster than ``np.nanmedian`` on a batch.
    """
    visible = visible | ~visible.any(1)[:, None]
    if visible.all():
        return np.median(values, axis=1)
    ordered = np.sort(np.where(visible, values, np.inf), axis=1)
    n = visible.sum(1)
    lo = np.take_along_axis(ordered, ((n - 1) // 2)[:, None], 1)[:, 0]
    hi = np.take_along_axis(ordered, (n // 2)[:, None], 1)[:, 0]
    return ((lo + hi) / 2).astype(values.dtype)


def n2v_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Mean error over the masked pixels only: ``sum(w * err) / sum(w)``; ``weight`` is (B, C, *sp)."""
    err = (pred - target) ** 2 if kind == "mse" else (pred - target).abs()
    return (err * weight).sum() / weight.sum().clamp_min(1e-6)


def to_raw_units(output: np.ndarray, image: np.ndarray, cfg: EngineConfig) -> np.ndarray:
    """A denoised output (normalised units, as ``Engine.predict`` gives it) in the raw image's units.

    The engine's per-channel normalisation is affine, so it is inverted by fitting ``raw = a * norm + b``
    per channel on the image itself: exact, and it follows whatever ``data.normalization`` does.
    """
    from .data import as_channel_first, normalize

    raw = as_channel_first(np.asarray(image), cfg).astype(np.float64)
    norm = normalize(raw, cfg.data).astype(np.float64)
    out = np.empty(np.shape(output), np.float32)
    for ch in range(raw.shape[0]):
        r, n = raw[ch].ravel(), norm[ch].ravel()
        var = n.var()
        a = float(((n - n.mean()) * (r - r.mean())).mean() / var) if var > 0 else 1e-6
        out[ch] = np.asarray(output[ch], np.float64) * a + (r.mean() - a * n.mean())
    return out
