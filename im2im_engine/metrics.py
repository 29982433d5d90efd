"""Task metrics on numpy arrays, usable by callers without torch.

Conventions chosen so that active-learning curves are well defined on every image: two empty masks agree
perfectly (dice = iou = ap50 = 1.0), and an optional ``mask`` (e.g. weight > 0) excludes ignored pixels.
"""

from __future__ import annotations

import numpy as np


def _fg(a: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    fg = np.asarray(a) > 0
    return fg if mask is None else fg & np.asarray(mask, bool)


def dice(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Dice of the foregrounds (label > 0) of two label images; 1.0 when both are empty."""
    p, t = _fg(pred, mask), _fg(truth, mask)
    denom = int(p.sum()) + int(t.sum())
    return 1.0 if denom == 0 else float(2.0 * np.logical_and(p, t).sum() / denom)


def iou(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Intersection over union of the foregrounds; 1.0 when both are empty."""
    p, t = _fg(pred, mask), _fg(truth, mask)
    union = int(np.logical_or(p, t).sum())
    return 1.0 if union == 0 else float(np.logical_and(p, t).sum() / union)


def mean_class_dice(pred: np.ndarray, truth: np.ndarray, num_classes: int, mask: np.ndarray | None = None) -> float:
    """Mean dice over classes 1..N-1 (each class present in neither image counts as 1.0)."""
    vals = []
    for c in range(1, num_classes):
        vals.append(dice(np.asarray(pred) == c, np.asarray(truth) == c, mask))
    return float(np.mean(vals)) if vals else 1.0


def match_instances(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int]:
    """(TP, FP, FN) matching instances one-to-one at IoU > ``threshold`` (unique for threshold >= 0.5)."""
    pred = np.asarray(pred).astype(np.int64).ravel()
    truth = np.asarray(truth).astype(np.int64).ravel()
    p_ids = np.unique(pred[pred > 0])
    t_ids = np.unique(truth[truth > 0])
    if len(p_ids) == 0 or len(t_ids) == 0:
        return 0, len(p_ids), len(t_ids)
    # Contingency table on the overlap only: sizes are O(#objects^2) at most, not O(pixels).
    both = (pred > 0) & (truth > 0)
    pairs, counts = np.unique(np.stack([pred[both], truth[both]]), axis=1, return_counts=True)
    p_size = dict(zip(*np.unique(pred[pred > 0], return_counts=True), strict=True))
    t_size = dict(zip(*np.unique(truth[truth > 0], return_counts=True), strict=True))
    matched_p: set[int] = set()
    matched_t: set[int] = set()
    for (pi, ti), inter in zip(pairs.T, counts, strict=True):
        union = p_size[pi] + t_size[ti] - inter
        if inter / union > threshold and pi not in matched_p and ti not in matched_t:
            matched_p.add(int(pi))
            matched_t.add(int(ti))
    tp = len(matched_p)
    return tp, len(p_ids) - tp, len(t_ids) - tp


def ap50(pred_instances: np.ndarray, true_instances: np.ndarray) -> float:
    """Average precision at IoU 0.5 in the cell-segmentation sense: TP / (TP + FP + FN); 1.0 if both empty."""
    tp, fp, fn = match_instances(pred_instances, true_instances, 0.5)
    total = tp + fp + fn
    return 1.0 if total == 0 else float(tp / total)


def psnr(pred: np.ndarray, truth: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB (scikit-image's); ``data_range`` defaults to the truth's value range
    (not the dtype's range, which for float images would be 2), and identical images give ``inf``."""
    from skimage.metrics import peak_signal_noise_ratio

    pred = np.asarray(pred, np.float64)
    truth = np.asarray(truth, np.float64)
    if data_range is None:
        data_range = float(truth.max() - truth.min()) or 1.0
    with np.errstate(divide="ignore"):  # mse 0 -> inf, as the definition says
        return float(peak_signal_noise_ratio(truth, pred, data_range=data_range))


def ssim(pred: np.ndarray, truth: np.ndarray, data_range: float | None = None) -> float:
    """Structural similarity (skimage), averaged over channels when given (C, *sp) arrays of C > 1."""
    from skimage.metrics import structural_similarity

    pred = np.asarray(pred, np.float64)
    truth = np.asarray(truth, np.float64)
    if data_range is None:
        data_range = float(truth.max() - truth.min()) or 1.0
    if pred.shape != truth.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {truth.shape}")
    if truth.ndim >= 3 and truth.shape[0] < 7:  # channels (or a thin Z): average the slices
        return float(np.mean([ssim(p, t, data_range) for p, t in zip(pred, truth, strict=True)]))
    win = min(7, *(s if s % 2 else s - 1 for s in truth.shape))
    if win < 3:
        return float(1.0 - np.mean((pred - truth) ** 2) / data_range**2)
    return float(structural_similarity(pred, truth, data_range=data_range, win_size=win))
