"""Colour tables and array->uint8 conversions for the overlays, kept on pyqtgraph's fast path.

Why uint8 indices + a 256-entry RGBA LUT: pyqtgraph maps a uint8 image through a LUT without any float
work, and with explicit ``levels=(0, 255)`` it never scans the array for min/max. Label ids above 255 wrap
(ids 256 and 1 share a colour), which is fine for telling neighbours apart.
"""

from __future__ import annotations

import colorsys

import numpy as np

#: Semantic class colours (index = class id); 0 is transparent. Chosen to read on a grey image.
CLASS_COLOURS = [
    (0, 0, 0), (0, 200, 255), (255, 170, 0), (120, 255, 80), (255, 80, 200), (170, 120, 255),
    (255, 255, 90), (80, 255, 220), (255, 90, 90), (150, 200, 255),
]


def instance_lut(seed: float = 0.0) -> np.ndarray:
    """(256, 4) uint8: distinct saturated colours (golden-ratio hue steps), index 0 transparent."""
    lut = np.zeros((256, 4), np.uint8)
    golden = 0.618033988749895
    for i in range(1, 256):
        h = (seed + i * golden) % 1.0
        s = 0.65 + 0.35 * ((i * 7) % 3) / 2
        v = 0.85 + 0.15 * ((i * 5) % 2)
        r, g, b = colorsys.hsv_to_rgb(h, s, v)
        lut[i] = (int(r * 255), int(g * 255), int(b * 255), 255)
    return lut


def class_lut() -> np.ndarray:
    """(256, 4) uint8 with :data:`CLASS_COLOURS` for classes 1..9, then instance colours."""
    lut = instance_lut(0.3)
    for i, colour in enumerate(CLASS_COLOURS[1:], start=1):
        lut[i, :3] = colour
    lut[0] = 0
    return lut


def single_colour_lut(rgb: tuple[int, int, int]) -> np.ndarray:
    """Every non-zero index in one colour (prediction outlines, the ignore mask)."""
    lut = np.zeros((256, 4), np.uint8)
    lut[1:, :3] = rgb
    lut[1:, 3] = 255
    return lut


def heat_lut() -> np.ndarray:
    """(256, 4) uint8 'inferno'-like ramp whose alpha grows with the value: certain pixels stay clear."""
    stops = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], float)
    x = np.linspace(0, 1, 256)
    xp = np.linspace(0, 1, len(stops))
    lut = np.zeros((256, 4), np.uint8)
    for c in range(3):
        lut[:, c] = np.interp(x, xp, stops[:, c]).astype(np.uint8)
    lut[:, 3] = np.clip(x * 1.6, 0, 1) * 255
    return lut


def label_index(plane: np.ndarray) -> np.ndarray:
    """Label ids -> uint8 LUT indices: 0 stays 0, ids wrap over 1..255."""
    plane = np.asarray(plane)
    out = ((plane - 1) % 255 + 1).astype(np.uint8)
    out[plane == 0] = 0
    return out


def outline(plane: np.ndarray) -> np.ndarray:
    """uint8 mask (0/1) of the pixels on the border of a label region: draws a prediction as contours."""
    p = np.asarray(plane)
    edge = np.zeros(p.shape, bool)
    edge[1:, :] |= p[1:, :] != p[:-1, :]
    edge[:-1, :] |= p[1:, :] != p[:-1, :]
    edge[:, 1:] |= p[:, 1:] != p[:, :-1]
    edge[:, :-1] |= p[:, 1:] != p[:, :-1]
    return (edge & (p > 0)).astype(np.uint8)


def to_uint8(values: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Scale a float map (uncertainty) into 0..255; ``vmax`` defaults to the 99.5th percentile."""
    v = np.nan_to_num(np.asarray(values, np.float32))
    top = float(vmax if vmax is not None else np.percentile(v, 99.5)) or 1.0
    return np.clip(v * (255.0 / top), 0, 255).astype(np.uint8)


def auto_levels(plane: np.ndarray, low: float = 0.5, high: float = 99.8) -> tuple[float, float]:
    """Contrast limits from percentiles of a (subsampled) plane, so one hot pixel does not wash it out."""
    flat = np.asarray(plane).ravel()
    if flat.size > 1_000_000:
        flat = flat[:: flat.size // 1_000_000]
    lo, hi = np.percentile(flat, [low, high]) if flat.size else (0.0, 1.0)
    return float(lo), float(max(hi, lo + 1e-6))


def composite(channels: np.ndarray, levels: list[tuple[float, float]], colours: list[tuple[int, int, int]],
              gamma: float = 1.0) -> np.ndarray:
    """(C, Y, X) -> (Y, X, 3) uint8 additive composite with per-channel contrast, gamma and colour."""
    out = np.zeros((*channels.shape[1:], 3), np.float32)
    for ch, (lo, hi), colour in zip(channels, levels, colours, strict=False):
        norm = np.clip((ch.astype(np.float32) - lo) / (hi - lo), 0, 1)
        if gamma != 1.0:
            norm **= gamma
        out += norm[..., None] * (np.array(colour, np.float32) / 255.0)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


CHANNEL_COLOURS = [(0, 255, 0), (255, 0, 255), (0, 255, 255), (255, 0, 0), (0, 0, 255), (255, 255, 0)]


def thumbnail(channels: np.ndarray, size: int = 64) -> np.ndarray:
    """(C, Y, X) or (C, Z, Y, X) -> small (h, w) uint8 preview (middle plane, first channel, stride)."""
    data = np.asarray(channels)
    plane = data[0] if data.ndim == 3 else data[0, data.shape[1] // 2]
    step = max(1, max(plane.shape) // size)
    small = plane[::step, ::step].astype(np.float32)
    lo, hi = auto_levels(small)
    return (np.clip((small - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
