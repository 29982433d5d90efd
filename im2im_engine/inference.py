"""Sliding-window inference with a dropout-head uncertainty and test-time augmentation, statistics computed online.

Why one window predictor for everything: MONAI's ``SlidingWindowInferer`` stitches a tuple of per-window
outputs with gaussian blending, so the window function can return the plain prediction *and* the running
statistics (mean probabilities, mean per-pass entropy, variance) in one sweep. Per window the backbone
runs once; the embedding is the mean of backbone features over all windows, gathered on the side.

Where the outputs are stitched: on the compute device when they fit in a share of its free memory
(measured per image with ``torch.cuda.mem_get_info``), else in host memory; an out-of-memory error on the
device is caught and the image redone with host stitching, then with smaller window batches, so a huge
volume is slower, never a crash. On CUDA the window batch grows to about 2 M voxels and the backbone runs
under the engine's autocast dtype (bf16 where supported); the 1x1 head and all statistics run in float32.

Why the dropout head is mostly integrated, not sampled: the head is dropout -> 1x1 conv, so its logits are
linear in the dropout mask. Their mean is the deterministic logits and their covariance is
``p / (1 - p) * sum_c f_c^2 w_c w_c^T`` (one extra 1x1 conv of f^2): exact for regression (``variance`` needs
no sampling at all). For classification the logit differences to class 0 are *approximated* as Gaussian
with that covariance and integrated by Gauss-Hermite quadrature (about ``passes`` nodes) — an analytic
approximation of MC dropout, not Monte Carlo. The true distribution is a sum of ``head_features`` two-point
variables; checked against 3000 masks per pixel (:func:`check_against_sampling`, ``test_engine_uncertainty.py``,
``benchmarks/uncertainty.py``) the approximation is off where the logit margin between the two likeliest
classes is within a few of its dropout standard deviations — the decision region, where a few dropped
features can flip the class — and more so the larger the head's weights (BALD per pixel off by up to
0.03 on a trained head, 0.09 / 0.18 with its weights x3 / x6, mostly under-estimated). So pixels with a
margin under ``MARGIN_SIGMAS`` standard deviations are computed by Monte Carlo over ``uncertainty.samples``
dropout masks (a fixed seeded set, so a score is deterministic), and every pixel is when the class count
makes the grid dearer or cruder: it has ``per_axis ** (classes - 1)`` nodes, so beyond 3 classes at the
default 8 passes it drops to 2 nodes per axis (exact for cubics only) while costing 2 ** (classes - 1)
softmaxes per pixel (512 at 10 classes) — see :func:`uses_quadrature`.
Sampling T masks over every pixel's feature channels cost 4-5x a plain pass on CPU; this costs a fraction
of the backbone. ``benchmarks/uncertainty.py`` also checks the image scores against textbook MC dropout
(T full passes).
"""

from __future__ import annotations

import functools
import itertools
import math
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import tta
from .config import EngineConfig
from .networks import Im2ImNet

EPS = 1e-8
#: share of the device's free memory the stitched outputs of one image may take (the rest: the windows)
STITCH_SHARE = 0.5
#: voxels per window batch on CUDA (the configured ``sw_batch_size`` applies on CPU and is a minimum)
GPU_WINDOW_VOXELS = 2 ** 21
GPU_MAX_WINDOW_BATCH = 64


@dataclass
class WindowStats:
    """Stitched outputs for one image (batch dim removed), on the device they were stitched on."""

    output: torch.Tensor  # (C, *sp) deterministic probabilities / regression
    mean: torch.Tensor | None = None  # (C, *sp) mean over passes
    mean_entropy: torch.Tensor | None = None  # (*sp) mean per-pass entropy (nats)
    variance: torch.Tensor | None = None  # (*sp) per-pixel variance averaged over channels
    embedding: np.ndarray | None = None  # (D,)

    def cpu(self) -> WindowStats:
        move = (lambda t: None if t is None else t.cpu())  # noqa: E731
        return WindowStats(move(self.output), move(self.mean), move(self.mean_entropy), move(self.variance),
                           self.embedding)


def flip_sets(spatial_dims: int, passes: int) -> list[tuple[int, ...]]:
    """Up to ``passes`` distinct flip combinations over the spatial axes, identity first."""
    axes = list(range(2, 2 + spatial_dims))
    combos: list[tuple[int, ...]] = []
    for r in range(len(axes) + 1):
        combos.extend(itertools.combinations(axes, r))
    return combos[: max(1, min(passes, len(combos)))]


def entropy(p: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(EPS))).sum(dim)


def stitch_bytes(spatial: tuple[int, ...], in_channels: int, out_channels: int, outputs: int) -> int:
    """Device bytes to stitch one image: the input, ``out_channels`` stitched channels over ``outputs``
    tensors with one count map each (MONAI), all float32, twice over for the final division, the crop
    and the uncertainty maps computed from them."""
    return 4 * math.prod(spatial) * (in_channels + 2 * (out_channels + outputs))


def stitch_budget(device: torch.device) -> int | None:
    """Bytes the stitched outputs may take on ``device``: ``STITCH_SHARE`` of its free memory (counting
    what PyTorch's allocator holds but does not use); None for the CPU (host memory is the fallback)."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(STITCH_SHARE * (free + cached))


def stitch_device(compute: torch.device, need: int, budget: int | None) -> torch.device:
    """Stitch where the windows are computed when ``need`` bytes fit in ``budget``, else on the CPU."""
    if compute.type == "cpu" or budget is None or need > budget:
        return torch.device("cpu")
    return compute


def window_batch(cfg: EngineConfig, roi: list[int], device: torch.device) -> int:
    """Windows per forward pass: ``inference.sw_batch_size`` on CPU; on CUDA about ``GPU_WINDOW_VOXELS``
    voxels (at least the configured size, at most ``GPU_MAX_WINDOW_BATCH``) so each launch fills the GPU."""
    configured = cfg.inference.sw_batch_size
    if device.type != "cuda":
        return configured
    return max(configured, min(GPU_MAX_WINDOW_BATCH, GPU_WINDOW_VOXELS // max(1, math.prod(roi))))


class SlidingPredictor:
    """Runs a network over an image in windows; ``mode`` is ``plain``, ``mc`` or ``tta``.

    ``budget``: bytes the stitched outputs may take on the compute device (default: measured per image,
    :func:`stitch_budget`); tests pass a small one to take the host-stitching path. ``tta_output``: average
    the output over the trained symmetries (:mod:`im2im_engine.tta`); default ``inference.tta``.
    """

    def __init__(self, net: Im2ImNet, cfg: EngineConfig, device: torch.device, amp_dtype: torch.dtype | None = None,
                 budget: int | None = None, tta_output: bool | None = None):
        self.net = net
        self.cfg = cfg
        self.device = device
        self.amp_dtype = amp_dtype
        self.budget = budget
        self.classify = cfg.task.classify
        self.attempts: list[tuple[str, int]] = []  # (stitch device, window batch) of the last run, tried in order
        use = cfg.inference.tta if tta_output is None else tta_output
        self.symmetries = tta.symmetries(cfg) if use else [tta.IDENTITY]

    def _act(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return torch.softmax(logits, 1) if self.classify else logits

    def _inferer(self, roi: list[int], stitch: torch.device, batch: int):
        from monai.inferers import SlidingWindowInferer

        inf = self.cfg.inference
        return SlidingWindowInferer(
            roi_size=roi, sw_batch_size=batch, overlap=inf.overlap, mode=inf.mode,
            sigma_scale=inf.sigma_scale, padding_mode="constant", cval=0.0,
            sw_device=self.device, device=stitch,
        )

    def plan(self, padded_shape: tuple[int, ...], roi: list[int], mode: str) -> list[tuple[torch.device, int]]:
        """(stitch device, window batch) to try in order: the first that does not run out of memory wins."""
        k = self.net.out.out_channels
        channels, outputs = {"plain": (k, 1)}.get(mode, (2 * k + 2, 4))
        need = stitch_bytes(padded_shape[1:], padded_shape[0], channels, outputs)
        budget = self.budget if self.budget is not None else stitch_budget(self.device)
        first = (stitch_device(self.device, need, budget), window_batch(self.cfg, roi, self.device))
        if self.device.type == "cpu":
            return [first]
        cpu = torch.device("cpu")
        out: list[tuple[torch.device, int]] = []
        for cand in (first, (cpu, first[1]), (cpu, self.cfg.inference.sw_batch_size), (cpu, 1)):
            if cand not in out:
                out.append(cand)
        return out

    @torch.no_grad()
    def run(self, image: np.ndarray, mode: str = "plain", passes: int = 1) -> WindowStats:
        """``image``: normalised float32 (C, *sp). Returns stitched outputs and the embedding.

        The window never reaches beyond the image by more than the network's stride: along an axis where the
        image is smaller than ``inference.roi_size`` the window is cut to the image, and the few pixels up to
        the next multiple of the stride are mirrored (see :func:`fit_window`). Windows padded with zeros
        give normalisation layers statistics they never saw in training: on 128² images with the 256²
        default window the model predicted 36% foreground where 20% was true.
        """
        self.net.eval()
        sp = tuple(image.shape[1:])
        roi, padded = fit_window(np.asarray(image, np.float32), self.cfg)
        x = torch.from_numpy(np.ascontiguousarray(padded, np.float32))[None]
        attempts = self.plan(tuple(padded.shape), roi, mode)
        self.attempts = []
        for i, (stitch, batch) in enumerate(attempts):
            self.attempts.append((str(stitch), batch))
            try:
                return self._run(x, sp, roi, mode, passes, stitch, batch)
            except torch.cuda.OutOfMemoryError:
                if i == len(attempts) - 1:
                    raise
            torch.cuda.empty_cache()  # what the failed attempt held is free once its frames are gone
        raise AssertionError("unreachable")

    def _run(self, x: torch.Tensor, sp: tuple[int, ...], roi: list[int], mode: str, passes: int,
             stitch: torch.device, batch: int) -> WindowStats:
        if stitch.type != "cpu":
            x = x.to(stitch)  # windows are then cut on the device, not copied one batch at a time
        feat_sum = None
        feat_n = 0
        samples = self.cfg.uncertainty.samples

        def window_fn(w: torch.Tensor):
            nonlocal feat_sum, feat_n
            w = w.to(self.device)
            ctx = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                   else nullcontext())
            with ctx:
                f = self.net.features(w)
            f = f.float()  # the 1x1 head and every statistic in float32, whatever the autocast dtype
            pooled = f.mean(dim=tuple(range(2, f.ndim))).sum(0)
            feat_sum = pooled if feat_sum is None else feat_sum + pooled
            feat_n += f.shape[0]
            plain = self._act(self.net.head(f))
            passes_done: dict = {tta.IDENTITY: plain}  # full passes on transformed inputs, transformed back

            def transformed(key, forward, back) -> torch.Tensor:
                if key not in passes_done:
                    with ctx:
                        ff = self.net.features(forward(w))
                    passes_done[key] = back(self._act(self.net.head(ff.float())))
                return passes_done[key]

            det = plain
            if len(self.symmetries) > 1:  # inference.tta: the output averaged over the trained symmetries
                det = sum(transformed(s, functools.partial(tta.apply, sym=s), functools.partial(tta.undo, sym=s))
                          for s in self.symmetries) / len(self.symmetries)
            if mode == "plain":
                return det
            if mode == "mc":
                return (det, *head_moments(self.net, f, passes, self.classify, samples))
            s = torch.zeros_like(det)
            s2 = torch.zeros_like(det)
            ent = torch.zeros_like(det[:, :1])
            # tta: full network on flipped inputs, flipped back (a flip the output average ran is not rerun)
            d = self.cfg.data.spatial_dims
            flips = flip_sets(d, passes)
            n = len(flips)
            for axes in flips:
                key = tta.from_flips(axes, d) or ("flip", axes)
                p = transformed(key, functools.partial(torch.flip, dims=axes), functools.partial(torch.flip, dims=axes))
                s += p
                s2 += p * p
                if self.classify:
                    ent += entropy(p)[:, None]
            mean = s / n
            var = (s2 / n - mean * mean).clamp_min(0).mean(1, keepdim=True)
            return det, mean, ent / n, var

        out = self._inferer(roi, stitch, batch)(x, window_fn)
        emb = (feat_sum / max(feat_n, 1)).cpu().numpy().astype(np.float32) if feat_sum is not None else None
        crop = (slice(None), *(slice(0, n) for n in sp))
        if mode == "plain":
            return WindowStats(output=out[0][crop], embedding=emb)
        det, mean, ent, var = (o[0][crop] for o in out)
        return WindowStats(output=det, mean=mean, mean_entropy=ent[0], variance=var[0], embedding=emb)


def fit_window(image: np.ndarray, cfg: EngineConfig) -> tuple[list[int], np.ndarray]:
    """The sliding window for ``image`` (C, *sp) and the image padded to it.

    Per axis the window is ``inference.roi_size`` or, where the image is smaller, the image's size rounded
    up to the network's stride (sizes must be divisible by it); the image is mirrored (numpy ``reflect``)
    up to the window where it falls short, so the padding has the image's own statistics. Images at least
    as large as the window are not padded: MONAI's last window along each axis ends at the image's edge.
    """
    from .networks import total_stride

    sp = image.shape[1:]
    roi = [min(r, -(-n // k) * k) for r, n, k in zip(cfg.inference.roi_size, sp, total_stride(cfg), strict=True)]
    pads = [(0, 0)] + [(0, max(0, r - n)) for r, n in zip(roi, sp, strict=True)]
    if any(p[1] for p in pads):
        image = np.pad(image, pads, mode="reflect")
    return roi, image


def _per_axis(passes: int, dims: int) -> int:
    return max(1, passes) if dims == 1 else max(2, round(max(1, passes) ** (1.0 / dims)))


def _quadrature(passes: int, dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(points (N, dims), weights (N,)) for E[g(e)], e ~ N(0, I): a Gauss-Hermite product grid with about
    ``passes`` nodes (at least 2 per axis), deterministic, so the same image always gets the same score."""
    per_axis = _per_axis(passes, dims)
    x, w = np.polynomial.hermite_e.hermegauss(per_axis)
    w = w / w.sum()
    grids = np.meshgrid(*([x] * dims), indexing="ij")
    wgrid = np.prod(np.meshgrid(*([w] * dims), indexing="ij"), axis=0)
    pts = np.stack([g.ravel() for g in grids], 1)
    return torch.from_numpy(pts).float(), torch.from_numpy(wgrid.ravel()).float()


_DEVICE_COPIES: dict[tuple, torch.Tensor] = {}


def _on_device(t: torch.Tensor, device: str, key: tuple) -> torch.Tensor:
    """A small constant tensor copied to ``device`` once (not once per window batch)."""
    if device == "cpu":
        return t
    k = (device, *key)
    if k not in _DEVICE_COPIES:
        _DEVICE_COPIES[k] = t.to(device)
    return _DEVICE_COPIES[k]


def quadrature_nodes(passes: int, classes: int) -> int:
    """Softmax evaluations per pixel of the quadrature grid: ``per_axis ** (classes - 1)``."""
    return _per_axis(passes, classes - 1) ** (classes - 1)


def uses_quadrature(passes: int, classes: int) -> bool:
    """Whether the Gaussian approximation is integrated on a grid: for 2 classes, and for more while the grid
    has at least 3 nodes per axis (2 per axis integrates only cubics exactly). Its cost grows as
    ``per_axis ** (classes - 1)``; with ``passes`` <= 64 that is at most 5 classes (3 at the default 8), and
    beyond, every pixel is sampled instead."""
    return classes == 2 or _per_axis(passes, classes - 1) >= 3


def _conv1x1(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """1x1 convolution of (B, C, *sp) with a (K, C) matrix, for 2D and 3D."""
    w = weight.reshape(*weight.shape, *([1] * (x.ndim - 2))).to(x)
    return (F.conv2d if x.ndim == 4 else F.conv3d)(x, w)


def _binary_moments(mu: torch.Tensor, sigma: torch.Tensor, passes: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two classes: p1 = sigmoid(d), d ~ N(mu1 - mu0, sigma^2), on one channel (half the work of softmax).

    Entropy per node is ``softplus(d) - p1 * d`` (= -p log p - (1-p) log(1-p), without a log of 0); both
    classes have the same variance, so the channel mean of the variance is that of p1.
    """
    d0 = mu[:, 1:] - mu[:, :1]
    pts, wts = _quadrature(passes, 1)
    m1 = torch.zeros_like(d0)
    sq = torch.zeros_like(d0)
    ent = torch.zeros_like(d0)
    for e, wt in zip(pts[:, 0].tolist(), wts.tolist(), strict=True):
        d = torch.add(d0, sigma, alpha=e)
        p1 = torch.sigmoid(d)
        m1.add_(p1, alpha=wt)
        sq.addcmul_(p1, p1, value=wt)
        ent.add_(F.softplus(d).sub_(p1.mul_(d)), alpha=wt)  # p1 is not needed after this
    var = (sq - m1 * m1).clamp_min_(0)
    return torch.cat([1.0 - m1, m1], 1), ent, var


#: pixels whose two likeliest classes are closer than this many dropout standard deviations of their logit
#: margin are sampled (see the module docstring; the bound is tested in test_engine_uncertainty.py)
MARGIN_SIGMAS = 4.0
MASK_SEED = 0x5EED


@functools.lru_cache(maxsize=16)
def _cached_masks(samples: int, features: int, p: float, device: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(MASK_SEED)
    return ((torch.rand(samples, features, generator=gen) >= p).float() / (1.0 - p)).to(device)


def dropout_masks(samples: int, features: int, p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """``samples`` dropout masks over the head's features, (S, F), kept features scaled by 1 / (1 - p) as
    ``F.dropout`` does; always the same masks (fixed seed), so a sampled score is deterministic. Made once
    per device (a copy to the GPU per window batch would wait for the GPU each time)."""
    return _cached_masks(samples, features, float(p), str(torch.device(device)))


def sampled_moments(fl: torch.Tensor, w: torch.Tensor, b: torch.Tensor, masks: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Monte Carlo over ``masks`` (S, F) of softmax(dropout(f) @ w.T + b) for pixels ``fl`` (P, F).

    Returns (mean (P, K), mean entropy (P,), channel-mean variance (P,)). Per class the masked logits of a
    chunk of pixels are one matrix product ``(f * w_k) @ masks.T`` (P, S); two classes need only the logit
    difference, through a sigmoid.
    """
    k = w.shape[0]
    mt = masks.t().contiguous()  # (F, S)
    n = fl.shape[0]
    mean = fl.new_zeros(n, k)
    ent = fl.new_zeros(n)
    var = fl.new_zeros(n)
    step = max(1, (1 << 22) // (mt.shape[1] * k))
    for i in range(0, n, step):
        fc = fl[i:i + step]
        if k == 2:
            d = (fc * (w[1] - w[0])) @ mt + (b[1] - b[0])  # (Pc, S)
            p1 = torch.sigmoid(d)
            m1 = p1.mean(1)
            mean[i:i + step, 1] = m1
            mean[i:i + step, 0] = 1.0 - m1
            var[i:i + step] = ((p1 * p1).mean(1) - m1 * m1).clamp_min_(0)  # the same for both classes
            ent[i:i + step] = (F.softplus(d) - p1 * d).mean(1)
        else:
            q = torch.softmax(torch.stack([(fc * w[j]) @ mt for j in range(k)], 1) + b[None, :, None], 1)
            m = q.mean(2)
            mean[i:i + step] = m
            var[i:i + step] = ((q * q).mean(2) - m * m).clamp_min_(0).mean(1)
            ent[i:i + step] = entropy(q, 1).mean(1)
    return mean, ent, var


@torch.no_grad()
def mc_dropout_moments(net: Im2ImNet, f: torch.Tensor, samples: int, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Textbook MC dropout of the head, the reference the approximation is checked against: ``samples``
    passes, each with its own mask per pixel and feature. Same layout as :func:`head_moments`."""
    w = net.out.weight.reshape(net.out.out_channels, -1).float()
    b = net.out.bias.float() if net.out.bias is not None else torch.zeros(w.shape[0], device=f.device)
    bias = b.view(1, -1, *([1] * (f.ndim - 2)))
    p = net.dropout
    mean = sq = ent = None
    chunk = max(1, (1 << 24) // f.numel())
    done = 0
    while done < samples:
        n = min(chunk, samples - done)
        keep = torch.rand((n, *f.shape), generator=generator, device=f.device) >= p
        fm = (f[None] * keep / (1.0 - p)).flatten(0, 1)
        q = torch.softmax(_conv1x1(fm, w) + bias, 1).unflatten(0, (n, f.shape[0]))  # (n, B, K, *sp)
        parts = (q.sum(0), (q * q).sum(0), entropy(q, 2).sum(0)[:, None])
        mean, sq, ent = parts if mean is None else (mean + parts[0], sq + parts[1], ent + parts[2])
        done += n
    mean, sq, ent = mean / samples, sq / samples, ent / samples
    return mean, ent, (sq - mean * mean).clamp_min(0).mean(1, keepdim=True)


@torch.no_grad()
def head_moments(net: Im2ImNet, f: torch.Tensor, passes: int, classify: bool, samples: int = 1024,
                 margin_sigmas: float = MARGIN_SIGMAS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dropout-head statistics for backbone features ``f`` (B, F, *sp): the Gaussian approximation where it
    holds, ``samples`` dropout masks where it does not (see the module docstring). ``margin_sigmas=0``
    gives the approximation alone (what the checks compare), ``float("inf")`` sampling everywhere.

    Returns ``(mean (B, K, *sp), mean per-pass entropy (B, 1, *sp), variance (B, 1, *sp))``.
    """
    dev = f.device
    w = net.out.weight.reshape(net.out.out_channels, -1).float()  # (K, F)
    b = net.out.bias.float() if net.out.bias is not None else torch.zeros(w.shape[0], device=dev)
    p = net.dropout
    scale = p / (1.0 - p)
    mu = _conv1x1(f, w) + b.view(1, -1, *([1] * (f.ndim - 2)))
    f2 = f * f
    if not classify:  # linear output: mean and variance are exact
        var = _conv1x1(f2, w * w).mul_(scale).mean(1, keepdim=True)
        return mu, torch.zeros_like(var), var
    k = w.shape[0]
    masks = dropout_masks(samples, w.shape[1], p, dev)
    if not uses_quadrature(passes, k) or math.isinf(margin_sigmas):  # sample every pixel
        fl = f.movedim(1, -1).reshape(-1, f.shape[1])
        sm, se, sv = sampled_moments(fl, w, b, masks)
        shape = (f.shape[0], *f.shape[2:])
        return (sm.reshape(*shape, k).movedim(-1, 1), se.reshape(shape)[:, None], sv.reshape(shape)[:, None])
    d = w[1:] - w[:1]  # (K-1, F): logit differences to class 0
    n = k - 1
    pairs = [(i, j) for i in range(n) for j in range(i + 1)]
    cov = _conv1x1(f2, torch.stack([d[i] * d[j] for i, j in pairs])).mul_(scale)  # (B, n(n+1)/2, *sp)
    if n == 1:
        sd = cov.clamp_min(0).sqrt()
        mean, ent, var = _binary_moments(mu, sd, passes)
        margin, margin_sd = (mu[:, 1:] - mu[:, :1]).abs(), sd
    else:
        full = torch.zeros(cov.shape[0], *cov.shape[2:], n, n, dtype=cov.dtype, device=dev)
        for idx, (i, j) in enumerate(pairs):
            full[..., i, j] = cov[:, idx]
            full[..., j, i] = cov[:, idx]
        full = full + 1e-6 * torch.eye(n, dtype=cov.dtype, device=dev)
        chol = torch.linalg.cholesky_ex(full)[0].movedim(-2, 1).movedim(-1, 2)  # (B, n, n, *sp); no host sync
        pts, wts = _quadrature(passes, n)
        pts = _on_device(pts, str(dev), (passes, n))
        mean = torch.zeros_like(mu)
        sq = torch.zeros_like(mu)
        ent = torch.zeros_like(mu[:, :1])
        z = torch.empty_like(mu)
        for e, wt in zip(pts, wts.tolist(), strict=True):
            z.copy_(mu)
            z[:, 1:] += (chol * e.view(1, 1, n, *([1] * (f.ndim - 2)))).sum(2)
            q = torch.softmax(z, 1)
            mean.add_(q, alpha=wt)
            sq.addcmul_(q, q, value=wt)
            ent.add_(entropy(q)[:, None], alpha=wt)
        var = (sq - mean * mean).clamp_min_(0).mean(1, keepdim=True)
        # the margin between the two likeliest classes, and its dropout variance from the covariance of the
        # differences to class 0 (class 0's row and column are zero)
        top = mu.topk(2, dim=1)
        margin = (top.values[:, :1] - top.values[:, 1:])
        ct = F.pad(full, (1, 0, 1, 0)).flatten(-2)  # (B, *sp, K*K)
        ia, ib = top.indices[:, 0].unsqueeze(-1), top.indices[:, 1].unsqueeze(-1)  # (B, *sp, 1)
        var_m = (ct.gather(-1, ia * k + ia) + ct.gather(-1, ib * k + ib) - 2 * ct.gather(-1, ia * k + ib))
        margin_sd = var_m.squeeze(-1).clamp_min(0).sqrt()[:, None]
    flag = (margin < margin_sigmas * margin_sd)[:, 0]  # (B, *sp)
    if bool(flag.any()):  # one host read per window batch
        sm, se, sv = sampled_moments(f.movedim(1, -1)[flag], w, b, masks)
        mean.movedim(1, -1)[flag] = sm
        ent[:, 0][flag] = se
        var[:, 0][flag] = sv
    return mean, ent, var


@torch.no_grad()
def check_against_sampling(net: Im2ImNet, f: torch.Tensor, passes: int, samples: int, reference: int = 3000,
                           margin_sigmas: float = MARGIN_SIGMAS, generator: torch.Generator | None = None
                           ) -> dict[str, float]:
    """How far :func:`head_moments` is from textbook MC dropout with ``reference`` masks per pixel, for
    backbone features ``f`` of a classification head: the largest per-pixel difference of the mean
    probabilities, of BALD (divided by log K, as the maps are) and of the variance, and the image BALD of
    both. The reference has its own sampling noise (about 0.01 on BALD at 3000 masks)."""
    k = net.out.out_channels
    rm, re, rv = mc_dropout_moments(net, f, reference, generator)
    am, ae, av = head_moments(net, f, passes, True, samples, margin_sigmas)

    def bald(m: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return (entropy(m, 1) - e[:, 0]).clamp_min(0) / math.log(k)

    br, ba = bald(rm, re), bald(am, ae)
    return {"mean": float((am - rm).abs().max()), "bald": float((ba - br).abs().max()),
            "variance": float((av - rv).abs().max()), "bald_image_reference": float(br.mean()),
            "bald_image": float(ba.mean())}


def uncertainty_maps(stats: WindowStats, classify: bool) -> dict[str, torch.Tensor]:
    """Per-pixel maps, classification ones scaled to [0, 1]: entropy and BALD divided by log(C)."""
    maps: dict[str, torch.Tensor] = {}
    if stats.variance is not None:
        maps["variance"] = stats.variance
    if not classify:
        return maps
    p = stats.mean if stats.mean is not None else stats.output
    c = p.shape[0]
    norm = math.log(c)
    h = entropy(p, 0)
    maps["entropy"] = h / norm
    top2 = torch.topk(p, 2, dim=0).values
    maps["margin"] = 1.0 - (top2[0] - top2[1])
    maps["least_confidence"] = 1.0 - top2[0]
    if stats.mean_entropy is not None:
        maps["bald"] = (h - stats.mean_entropy).clamp_min(0) / norm
    return maps


def reduce_map(u: np.ndarray, reduction: str = "mean", topk_percent: float = 10.0) -> float:
    """Image score from a per-pixel map: the mean, or the mean of the top-k percent (never a sum)."""
    flat = np.asarray(u, np.float32).ravel()
    if flat.size == 0:
        return 0.0
    if reduction == "topk":
        k = max(1, round(flat.size * topk_percent / 100.0))
        return float(np.partition(flat, flat.size - k)[flat.size - k:].mean())
    return float(flat.mean())
