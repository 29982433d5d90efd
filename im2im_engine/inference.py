"""Sliding-window inference with cheap MC-dropout and test-time augmentation, statistics computed online.

Why one window predictor for everything: MONAI's ``SlidingWindowInferer`` stitches a tuple of per-window
outputs with gaussian blending, so the window function can return the plain prediction *and* the running
MC statistics (mean probabilities, mean per-pass entropy, variance) in one sweep. Per window the backbone
runs once; the embedding is the mean of backbone features over all windows, gathered on the side.

Why the MC-dropout head is integrated, not sampled: the head is dropout -> 1x1 conv, so its logits are
linear in the dropout mask. Their mean is the deterministic logits and their covariance is
``p / (1 - p) * sum_c f_c^2 w_c w_c^T`` (one extra 1x1 conv of f^2): exact for regression (``variance`` needs
no sampling at all). For classification the softmax only depends on logit differences to class 0; those
are taken as Gaussian with that covariance and the T "passes" become Gauss-Hermite nodes (a product
grid of about T nodes beyond 2 classes), on K channels instead of drawing T masks over every
feature channel. Sampling T masks per pixel cost 4-5x a plain pass on CPU (the masks, products and
reductions over 16 feature channels are memory-bound); this costs a fraction of the backbone.
``benchmarks/uncertainty.py`` checks the image scores against naive MC dropout (T full passes).
"""

from __future__ import annotations

import itertools
import math
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import EngineConfig
from .networks import Im2ImNet

EPS = 1e-8


@dataclass
class WindowStats:
    """Stitched outputs for one image (tensors on CPU, batch dim removed)."""

    output: torch.Tensor  # (C, *sp) deterministic probabilities / regression
    mean: torch.Tensor | None = None  # (C, *sp) mean over passes
    mean_entropy: torch.Tensor | None = None  # (*sp) mean per-pass entropy (nats)
    variance: torch.Tensor | None = None  # (*sp) per-pixel variance averaged over channels
    embedding: np.ndarray | None = None  # (D,)


def flip_sets(spatial_dims: int, passes: int) -> list[tuple[int, ...]]:
    """Up to ``passes`` distinct flip combinations over the spatial axes, identity first."""
    axes = list(range(2, 2 + spatial_dims))
    combos: list[tuple[int, ...]] = []
    for r in range(len(axes) + 1):
        combos.extend(itertools.combinations(axes, r))
    return combos[: max(1, min(passes, len(combos)))]


def entropy(p: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(EPS))).sum(dim)


class SlidingPredictor:
    """Runs a network over an image in windows; ``mode`` is ``plain``, ``mc`` or ``tta``."""

    def __init__(self, net: Im2ImNet, cfg: EngineConfig, device: torch.device, amp_dtype: torch.dtype | None = None):
        self.net = net
        self.cfg = cfg
        self.device = device
        self.amp_dtype = amp_dtype
        self.classify = cfg.task.classify

    def _act(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return torch.softmax(logits, 1) if self.classify else logits

    def _inferer(self, roi: list[int]):
        from monai.inferers import SlidingWindowInferer

        inf = self.cfg.inference
        return SlidingWindowInferer(
            roi_size=roi, sw_batch_size=inf.sw_batch_size, overlap=inf.overlap, mode=inf.mode,
            sigma_scale=inf.sigma_scale, padding_mode="constant", cval=0.0,
            sw_device=self.device, device=torch.device("cpu"),  # stitch on CPU: bounds GPU memory
        )

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
        feat_sum = None
        feat_n = 0

        def window_fn(w: torch.Tensor):
            nonlocal feat_sum, feat_n
            w = w.to(self.device)
            ctx = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                   else nullcontext())
            with ctx:
                f = self.net.features(w)
                pooled = f.float().mean(dim=tuple(range(2, f.ndim))).sum(0)
                feat_sum = pooled if feat_sum is None else feat_sum + pooled
                feat_n += f.shape[0]
                det = self._act(self.net.head(f))
                if mode == "plain":
                    return det
                if mode == "mc":
                    return (det, *head_moments(self.net, f.float(), passes, self.classify))
                s = torch.zeros_like(det)
                s2 = torch.zeros_like(det)
                ent = torch.zeros_like(det[:, :1])
                # tta: full network on flipped inputs, flipped back
                flips = flip_sets(self.cfg.data.spatial_dims, passes)
                n = len(flips)
                for axes in flips:
                    p = det if not axes else self._act(self.net(torch.flip(w, axes))).flip(axes)
                    s += p
                    s2 += p * p
                    if self.classify:
                        ent += entropy(p)[:, None]
                mean = s / n
                var = (s2 / n - mean * mean).clamp_min(0).mean(1, keepdim=True)
                return det, mean, ent / n, var

        out = self._inferer(roi)(x, window_fn)
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


def _quadrature(passes: int, dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(points (N, dims), weights (N,)) for E[g(e)], e ~ N(0, I): a Gauss-Hermite product grid with about
    ``passes`` nodes (at least 2 per axis), deterministic, so the same image always gets the same score."""
    per_axis = max(2, round(max(1, passes) ** (1.0 / dims))) if dims > 1 else max(1, passes)
    x, w = np.polynomial.hermite_e.hermegauss(per_axis)
    w = w / w.sum()
    grids = np.meshgrid(*([x] * dims), indexing="ij")
    wgrid = np.prod(np.meshgrid(*([w] * dims), indexing="ij"), axis=0)
    pts = np.stack([g.ravel() for g in grids], 1)
    return torch.from_numpy(pts).float(), torch.from_numpy(wgrid.ravel()).float()


def _conv1x1(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """1x1 convolution of (B, C, *sp) with a (K, C) matrix, for 2D and 3D."""
    w = weight.reshape(*weight.shape, *([1] * (x.ndim - 2))).to(x.dtype)
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


def head_moments(net: Im2ImNet, f: torch.Tensor, passes: int, classify: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MC-dropout statistics of the head for backbone features ``f`` (B, F, *sp), without masks.

    Returns ``(mean (B, K, *sp), mean per-pass entropy (B, 1, *sp), variance (B, 1, *sp))``; see the module
    docstring for why this is the dropout head's distribution.
    """
    w = net.out.weight.reshape(net.out.out_channels, -1).float()  # (K, F)
    b = net.out.bias.float() if net.out.bias is not None else torch.zeros(w.shape[0])
    p = net.dropout
    scale = p / (1.0 - p)
    mu = _conv1x1(f, w) + b.view(1, -1, *([1] * (f.ndim - 2)))
    f2 = f * f
    if not classify:  # linear output: mean and variance are exact
        var = _conv1x1(f2, w * w).mul_(scale).mean(1, keepdim=True)
        return mu, torch.zeros_like(var), var
    k = w.shape[0]
    d = w[1:] - w[:1]  # (K-1, F): logit differences to class 0
    n = k - 1
    pairs = [(i, j) for i in range(n) for j in range(i + 1)]
    cov = _conv1x1(f2, torch.stack([d[i] * d[j] for i, j in pairs])).mul_(scale)  # (B, n(n+1)/2, *sp)
    if n == 1:
        return _binary_moments(mu, cov.clamp_min(0).sqrt(), passes)
    else:
        full = torch.zeros(cov.shape[0], *cov.shape[2:], n, n, dtype=cov.dtype)
        for idx, (i, j) in enumerate(pairs):
            full[..., i, j] = cov[:, idx]
            full[..., j, i] = cov[:, idx]
        full = full + 1e-6 * torch.eye(n, dtype=cov.dtype)
        chol = torch.linalg.cholesky(full).movedim(-2, 1).movedim(-1, 2)  # (B, n, n, *sp)
    pts, wts = _quadrature(passes, n)
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
    return mean, ent, var


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
