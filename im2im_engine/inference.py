"""Sliding-window inference with cheap MC-dropout and test-time augmentation, statistics computed online.

Why one window predictor for everything: MONAI's ``SlidingWindowInferer`` stitches a tuple of per-window
outputs with gaussian blending, so the window function can return the plain prediction *and* the running
MC statistics (mean probabilities, mean per-pass entropy, variance) in one sweep. Per window the backbone
runs once and only the dropout + 1x1 head runs T times; sums are accumulated pass by pass (never a stack
of T outputs). The embedding is the mean of backbone features over all windows, gathered on the side.
"""

from __future__ import annotations

import itertools
import math
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

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
        self.classify = cfg.task.kind != "regression"

    def _act(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return torch.softmax(logits, 1) if self.classify else logits

    def _inferer(self):
        from monai.inferers import SlidingWindowInferer

        inf = self.cfg.inference
        return SlidingWindowInferer(
            roi_size=list(inf.roi_size), sw_batch_size=inf.sw_batch_size, overlap=inf.overlap, mode=inf.mode,
            sigma_scale=inf.sigma_scale, padding_mode="constant", cval=0.0,
            sw_device=self.device, device=torch.device("cpu"),  # stitch on CPU: bounds GPU memory
        )

    @torch.no_grad()
    def run(self, image: np.ndarray, mode: str = "plain", passes: int = 1) -> WindowStats:
        """``image``: normalised float32 (C, *sp). Returns stitched outputs and the embedding."""
        self.net.eval()
        x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None]
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
                s = torch.zeros_like(det)
                s2 = torch.zeros_like(det)
                ent = torch.zeros_like(det[:, :1])
                if mode == "mc":
                    n = passes
                    for _ in range(n):
                        p = self._act(self.net.head(f, mc=True))
                        s += p
                        s2 += p * p
                        if self.classify:
                            ent += entropy(p)[:, None]
                else:  # tta: full network on flipped inputs, flipped back
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

        out = self._inferer()(x, window_fn)
        emb = (feat_sum / max(feat_n, 1)).cpu().numpy().astype(np.float32) if feat_sum is not None else None
        if mode == "plain":
            return WindowStats(output=out[0], embedding=emb)
        det, mean, ent, var = (o[0] for o in out)
        return WindowStats(output=det, mean=mean, mean_entropy=ent[0], variance=var[0], embedding=emb)


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
