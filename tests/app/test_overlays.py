"""Overlay colour tables and conversions: uint8 fast path, wrap-around, transparency of background."""

from __future__ import annotations

import numpy as np

from app.gui import overlays


def test_label_index_wraps_and_keeps_background():
    plane = np.array([[0, 1, 255, 256, 1000]])
    idx = overlays.label_index(plane)
    assert idx.dtype == np.uint8 and idx.tolist() == [[0, 1, 255, 1, (1000 - 1) % 255 + 1]]


def test_luts_are_rgba_uint8_with_clear_zero():
    for lut in (overlays.instance_lut(), overlays.class_lut(), overlays.heat_lut(),
                overlays.single_colour_lut((1, 2, 3))):
        assert lut.shape == (256, 4) and lut.dtype == np.uint8 and lut[0, 3] == 0
    inst = overlays.instance_lut()
    assert len({tuple(c) for c in inst[1:40]}) == 39  # neighbours get distinct colours
    assert tuple(overlays.class_lut()[1, :3]) == overlays.CLASS_COLOURS[1]


def test_outline_marks_borders_only():
    plane = np.zeros((7, 7), int)
    plane[2:5, 2:5] = 3
    edge = overlays.outline(plane)
    assert edge[3, 3] == 0 and edge[2, 2] == 1 and edge[0, 0] == 0


def test_composite_and_thumbnail():
    ch = np.zeros((2, 4, 4), np.uint16)
    ch[0, 0, 0] = 100
    ch[1, 1, 1] = 100
    rgb = overlays.composite(ch, [(0, 100), (0, 100)], [(0, 255, 0), (255, 0, 255)])
    assert rgb.shape == (4, 4, 3) and tuple(rgb[0, 0]) == (0, 255, 0) and tuple(rgb[1, 1]) == (255, 0, 255)
    thumb = overlays.thumbnail(np.random.default_rng(0).integers(0, 1000, (1, 3, 200, 100)), size=50)
    assert thumb.dtype == np.uint8 and max(thumb.shape) <= 50
    lo, hi = overlays.auto_levels(np.arange(1000))
    assert 0 <= lo < hi <= 999
