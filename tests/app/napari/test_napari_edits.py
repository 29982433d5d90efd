"""napari paint events -> one stored edit per stroke (app/napari/_edits.py), on plain arrays and on real
napari Labels layers (whatever atom form this napari version emits)."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

from app.napari._edits import atom_spans, diff_edit, edit_from_paint, paint_spans, spans_to_box, stroke_kind

Masked = namedtuple("Masked", "slice_key mask old_values new_value")


def test_masked_and_legacy_atoms_give_their_boxes():
    shape = (40, 50)
    masked = Masked((slice(5, 9), slice(10, 20)), None, None, 3)
    legacy = (np.array([2, 30]), np.array([4, 45])), np.array([0, 0]), 3
    assert atom_spans(masked, shape) == [(5, 9), (10, 20)]
    assert atom_spans(legacy, shape) == [(2, 31), (4, 46)]
    assert paint_spans([masked, legacy], shape) == [(2, 31), (4, 46)]
    assert atom_spans(object(), shape) == [(0, 40), (0, 50)]  # unknown form: the whole label, still correct
    assert atom_spans(((np.array([], int), np.array([], int)), np.array([]), 1), shape) is None
    assert spans_to_box([(2, 31), (4, 46)]) == (0, 1, 2, 31, 4, 46)
    assert spans_to_box([(1, 2), (2, 31), (4, 46)]) == (1, 2, 2, 31, 4, 46)


def test_diff_edit_is_cut_to_the_changed_pixels():
    before = np.zeros((1, 30, 30), np.int32)
    data = before[0].copy()
    data[10:12, 5:8] = 4
    edit = diff_edit(before, data, (0, 1, 0, 30, 0, 30), "stroke")
    assert edit.box == (0, 1, 10, 12, 5, 8)
    assert np.array_equal(edit.after, np.full((1, 2, 3), 4))
    assert diff_edit(before, before[0], None) is None  # painted the value that was there: no edit
    with pytest.raises(ValueError, match="does not match"):
        diff_edit(before, np.zeros((31, 30)), None)


def test_a_box_that_misses_the_change_does_not_invent_one():
    before = np.zeros((20, 20), np.int32)
    data = before.copy()
    data[15, 15] = 2
    assert edit_from_paint([Masked((slice(0, 5), slice(0, 5)), None, None, 2)], before, data) is None


def test_stroke_kinds():
    assert stroke_kind("paint", 3) == "stroke"
    assert stroke_kind("paint", 0) == "erase"
    assert stroke_kind("erase", 0) == "erase"
    assert stroke_kind("fill", 2) == "fill"
    assert stroke_kind("polygon", 2) == "polygon"
    assert stroke_kind("paint", 1, "ignore") == "ignore"
    assert stroke_kind("erase", 0, "ignore") == "unignore"


@pytest.mark.parametrize("ndim", [2, 3])
def test_real_napari_strokes_and_fills_become_one_edit_each(ndim):
    """napari's own paint / fill emit ``events.paint``; the edit read off them is exactly the change."""
    from napari.layers import Labels

    shape = (4, 40, 40) if ndim == 3 else (40, 40)
    base = np.zeros(shape, np.int32)
    base[(..., slice(20, 30), slice(20, 30))] = 5
    layer = Labels(base.copy())
    events = []
    layer.events.paint.connect(lambda e: events.append(list(e.value)))
    before = base.copy()
    layer.brush_size = 3
    coords = [(2, 5.0, 5.0), (2, 5.0, 12.0)] if ndim == 3 else [(5.0, 5.0), (5.0, 12.0)]
    with layer.block_history():  # one drag = one undo item = one paint event
        for c in coords:
            layer.paint(c, 7, refresh=False)
    assert len(events) == 1
    edit = edit_from_paint(events[0], before, layer.data, "stroke")
    changed = layer.data != before
    assert edit is not None and changed.sum() > 0
    rebuilt = before.copy().reshape((-1, *shape[-2:]))
    z0, z1, y0, y1, x0, x1 = edit.box
    rebuilt[z0:z1, y0:y1, x0:x1] = edit.after
    assert np.array_equal(rebuilt.reshape(shape), layer.data)
    assert edit.box[0:2] == ((2, 3) if ndim == 3 else (0, 1))

    before = np.array(layer.data, copy=True)
    layer.fill((2, 25, 25) if ndim == 3 else (25, 25), 9)
    assert len(events) == 2
    edit = edit_from_paint(events[1], before, layer.data, "fill")
    assert edit.kind == "fill" and set(np.unique(edit.after)) <= {9, 5, 0, 7}
    assert int((layer.data == 9).sum()) == int((edit.after == 9).sum())
