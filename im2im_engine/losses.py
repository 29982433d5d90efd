"""Losses with per-pixel weight maps (corrected = 1, pseudo = w, ignore = 0).

Why our own: MONAI's DiceCELoss has no per-pixel weights, and the weight map is the whole point of
learning from pseudo labels plus a few corrections. Cross-entropy is the weighted mean over pixels; the soft
dice is computed over the batch ("batch dice") with the weights inside the sums, so a patch with no
foreground does not produce a degenerate 0/0 term and ignored pixels contribute nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import EngineConfig


def weighted_ce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Pixel-weighted cross-entropy: sum(w * ce) / sum(w)."""
    ce = F.cross_entropy(logits, target, reduction="none")
    return (ce * weight).sum() / weight.sum().clamp_min(1e-6)


def weighted_soft_dice(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                       smooth: float = 1e-5) -> torch.Tensor:
    """1 - mean over foreground classes of the weighted batch soft dice."""
    n = logits.shape[1]
    probs = torch.softmax(logits, dim=1)
    onehot = F.one_hot(target, n).movedim(-1, 1).to(probs.dtype)
    w = weight.unsqueeze(1)
    dims = [0, *range(2, logits.ndim)]
    inter = (w * probs * onehot).sum(dims)
    denom = (w * probs).sum(dims) + (w * onehot).sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)
    return 1.0 - dice[1:].mean()


def weighted_regression(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, kind: str) -> torch.Tensor:
    err = (pred - target).abs() if kind == "l1" else (pred - target) ** 2
    w = weight.unsqueeze(1).expand_as(err)
    return (err * w).sum() / w.sum().clamp_min(1e-6)


def compute_loss(cfg: EngineConfig, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The configured task loss, in float32 whatever the autocast dtype."""
    logits = logits.float()
    kind = cfg.task.resolved_loss
    if cfg.task.kind == "denoise":  # weight = blind-spot mask (B, C, *sp), see n2v.py
        from .n2v import n2v_loss

        return n2v_loss(logits, target, weight, kind)
    if kind in ("l1", "mse"):
        return weighted_regression(logits, target, weight, kind)
    if kind == "ce":
        return weighted_ce(logits, target, weight)
    if kind == "dice":
        return weighted_soft_dice(logits, target, weight)
    return weighted_ce(logits, target, weight) + weighted_soft_dice(logits, target, weight)
