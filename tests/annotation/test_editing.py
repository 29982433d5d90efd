"""Label editing: pure operations on arrays, and LabelEditor's persistence through the store."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotation import editing
from annotation.editing import LabelEditor
from annotation.store import Store


def apply(label: np.ndarray, edit: editing.Edit | None) -> np.ndarray:
    out = editing.as_zyx(label).copy()
    if edit is not None:
        out[editing.box_slices(edit.box)] = edit.after
    return out if label.ndim == 3 else out[0]


@pytest.fixture
def store(tmp_path, image_record):
    s = Store(tmp_path / "project.db", create=True)
    s.add_image(image_record("a", (1, 1, 1, 32, 40)))
    s.add_image(image_record("b", (1, 1, 4, 16, 16)))
    pseudo = np.zeros((32, 40), np.int32)
    pseudo[2:8, 2:8] = 1
    pseudo[20:30, 20:30] = 2
    s.put_label(1, "pseudo", pseudo)
    yield s
    s.close()


def test_disk_and_stroke_are_round_and_gapless():
    assert editing.disk(0).sum() == 1
    assert editing.disk(2).shape == (5, 5)
    mask = editing.stroke_mask((20, 40), [(10, 2), (10, 37)], radius=1)
    assert mask[10, 2:38].all()  # no gaps along a long fast segment
    assert not mask[0].any()


def test_brush_only_changes_the_painted_plane_of_a_stack():
    label = np.zeros((3, 10, 10), np.int32)
    edit = editing.brush(label, [(5, 5)], radius=1, value=4, z=1)
    after = apply(label, edit)
    assert after[1, 5, 5] == 4 and after[0].sum() == 0 and after[2].sum() == 0
    assert edit.box[:2] == (1, 2)


def test_brush_eraser_and_noop():
    label = np.ones((8, 8), np.int32)
    erased = apply(label, editing.brush(label, [(0, 0)], radius=0, value=0))
    assert erased[0, 0] == 0 and erased.sum() == 63
    assert editing.brush(label, [(3, 3)], radius=2, value=1) is None  # nothing would change


def test_brush_only_on_background():
    label = np.zeros((8, 8), np.int32)
    label[:, 4:] = 2
    after = apply(label, editing.brush(label, [(4, 4)], radius=3, value=5, only=0))
    assert (after[:, 4:] == 2).all() and (after == 5).any()


def test_flood_fill_stays_inside_the_region():
    label = np.zeros((10, 10), np.int32)
    label[:, 5] = 1  # a wall
    after = apply(label, editing.flood_fill(label, (2, 2), 3))
    assert (after[:, :5] == 3).all() and (after[:, 6:] == 0).all() and (after[:, 5] == 1).all()
    assert editing.flood_fill(after, (2, 2), 3) is None
    with pytest.raises(editing.EditError):
        editing.flood_fill(label, (20, 2), 3)


def test_polygon_fill_covers_the_inside_and_outline():
    label = np.zeros((20, 20), np.int32)
    square = [(2, 2), (2, 10), (10, 10), (10, 2)]
    after = apply(label, editing.polygon_fill(label, square, 7))
    assert (after[2:11, 2:11] == 7).all() and after.sum() == 7 * 81
    assert editing.polygon_fill(label, square[:2], 7) is None  # fewer than 3 vertices


def test_pick_next_id_merge_delete():
    label = np.zeros((2, 10, 10), np.int32)
    label[0, 1:3, 1:3] = 1
    label[1, 5:8, 5:8] = 4
    assert editing.pick(label, (1, 1), 0) == 1 and editing.pick(label, (99, 1), 0) == 0
    assert editing.next_free_id(label) == 5
    merged = apply(label, editing.merge_instances(label, 1, 4))
    assert set(np.unique(merged)) == {0, 1} and (merged[1, 5:8, 5:8] == 1).all()
    deleted = apply(label, editing.delete_instance(label, 4))
    assert set(np.unique(deleted)) == {0, 1}
    assert editing.delete_instance(label, 0) is None and editing.merge_instances(label, 1, 1) is None


def test_replace_all_box_is_the_difference():
    label = np.zeros((10, 10), np.int32)
    new = label.copy()
    new[3:5, 6:9] = 2
    edit = editing.replace_all(label, new)
    assert edit.box == (0, 1, 3, 5, 6, 9)
    assert editing.replace_all(label, label) is None


@settings(max_examples=40, deadline=None)
@given(
    y=st.integers(-5, 25), x=st.integers(-5, 25), r=st.integers(0, 6), v=st.integers(0, 9),
)
def test_brush_edit_is_consistent(y, x, r, v):
    """Property: applying the edit equals painting the mask directly; the box is tight and in bounds."""
    label = np.random.default_rng(0).integers(0, 3, (20, 20)).astype(np.int32)
    edit = editing.brush(label, [(y, x)], r, v)
    mask = editing.stroke_mask((20, 20), [(y, x)], r)
    expected = label.copy()
    expected[mask] = v
    np.testing.assert_array_equal(apply(label, edit), expected)
    if edit is not None:
        z0, z1, y0, y1, x0, x1 = edit.box
        assert 0 <= y0 < y1 <= 20 and 0 <= x0 < x1 <= 20 and (z0, z1) == (0, 1)


# ------------------------------------------------------------------------------------ LabelEditor
def test_first_edit_starts_from_pseudo_and_is_one_transaction(store):
    ed = LabelEditor(store, 1)
    assert ed.initial_version == "pseudo" and ed.label[0, 3, 3] == 1
    ed.begin_stroke(5, 1)
    ed.extend_stroke((15, 5))
    ed.extend_stroke((15, 15))
    assert ed.stroke_active and store.get_label(1, "corrected") is None  # preview only
    box = ed.end_stroke()
    assert box is not None and not ed.stroke_active
    corrected = store.get_label(1, "corrected")
    assert corrected[15, 5:16].tolist() == [5] * 11
    assert corrected[3, 3] == 1 and corrected[25, 25] == 2  # rest initialised from pseudo
    assert len(store.history(1)) == 1


def test_undo_redo_persist_across_editors(store):
    ed = LabelEditor(store, 1)
    ed.fill((0, 39), 9)
    ed.delete(2)
    assert (store.get_label(1, "corrected") == 2).sum() == 0
    ed.close()
    ed2 = LabelEditor(store, 1)  # "reopened"
    assert ed2.undo() is not None
    assert (ed2.label == 2).sum() == 100 and (store.get_label(1, "corrected") == 2).sum() == 100
    assert ed2.redo() is not None
    assert (store.get_label(1, "corrected") == 2).sum() == 0
    assert ed2.redo() is None
    assert ed2.undo() and ed2.undo() and ed2.undo() is None
    assert (store.get_label(1, "corrected") == store.get_label(1, "pseudo")).all()


def test_ignore_edits_share_one_history(store):
    ed = LabelEditor(store, 1)
    ed.begin_stroke(1, 2, version="ignore")
    ed.extend_stroke((10, 10))
    ed.end_stroke()
    ed.fill((0, 39), 9)
    assert store.get_label(1, "ignore")[10, 10] == 1
    ed.undo()  # the fill
    assert store.get_label(1, "corrected")[0, 39] == 0
    ed.undo()  # the ignore stroke
    assert store.get_label(1, "ignore").sum() == 0
    ed.redo()
    assert store.get_label(1, "ignore")[10, 10] == 1
    # a new edit drops the redo branch, also across versions
    ed.merge(1, 2)
    assert not ed.can_redo()


def test_accept_prediction_and_missing_prediction(store):
    ed = LabelEditor(store, 1)
    with pytest.raises(editing.EditError):
        ed.accept_prediction()
    pred = np.zeros((32, 40), np.int32)
    pred[0:4, 0:4] = 3
    store.put_label(1, "prediction", pred, model_version=1)
    ed = LabelEditor(store, 1)
    assert ed.initial_version == "prediction"
    ed.accept_prediction()
    np.testing.assert_array_equal(store.get_label(1, "corrected"), pred)
    assert store.history(1)[-1]["kind"] == "accept"


def test_time_is_counted_with_idle_cap(store):
    now = [0.0]
    ed = LabelEditor(store, 1, clock=lambda: now[0])
    now[0] = 5.0
    ed.fill((0, 39), 9)
    now[0] = 1000.0
    ed.delete(1)
    assert store.history(1)[0]["seconds"] == 5.0
    assert store.history(1)[1]["seconds"] == editing.IDLE_CAP_S
    assert ed.close() == 5.0 + editing.IDLE_CAP_S


def test_3d_stroke_and_new_instance(store):
    ed = LabelEditor(store, 2)
    assert ed.label.shape == (4, 16, 16) and ed.initial_version is None
    value = ed.new_instance_id()
    ed.begin_stroke(value, 0, z=2)
    ed.extend_stroke((3, 3))
    ed.end_stroke()
    corrected = store.get_label(2, "corrected")
    assert corrected[2, 3, 3] == 1 and corrected.sum() == 1
    assert ed.new_instance_id() == 2
