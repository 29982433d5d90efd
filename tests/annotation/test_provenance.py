"""Per-pixel provenance of corrected labels, review state, and the training weights built from them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from annotation.editing import LabelEditor
from annotation.store import Store
from annotation.store import provenance as prov
from annotation.store.schema import MIGRATIONS
from annotation.trainset import DEFAULT_WEIGHTS, weight_map

W = dict(DEFAULT_WEIGHTS)


@pytest.fixture
def store(tmp_path: Path, image_record):
    s = Store(tmp_path / "project.db", create=True)
    s.add_image(image_record("a", (1, 1, 1, 40, 60)))
    pseudo = np.zeros((40, 60), np.int32)
    pseudo[10:20, 10:20] = 1
    s.put_label(1, "pseudo", pseudo)
    yield s
    s.close()


def test_a_stroke_marks_only_the_pixels_it_changed_as_painted(store: Store) -> None:
    editor = LabelEditor(store, 1)
    assert editor.initial_version == "pseudo" and store.image(1).review == "untouched"
    editor.begin_stroke(1, 2, 0)
    for x in range(30, 41):
        editor.extend_stroke((30.0, float(x)))
    editor.end_stroke()
    codes = store.get_provenance(1)
    label = store.get_label(1, "corrected")
    painted = codes == prov.PAINTED
    assert painted.any() and (label[painted] == 1).all()
    assert (codes[~painted] == prov.PSEUDO).all()  # the copy of the pseudo label keeps its source
    assert store.image(1).review == "in_progress"
    # one stroke no longer turns the whole image into full-weight training data
    weight = weight_map(store, 1, "corrected", (40, 60), W)
    assert (weight[painted] == W["painted"]).all() and (weight[~painted] == W["pseudo"]).all()


def test_undo_and_redo_restore_provenance_too(store: Store) -> None:
    editor = LabelEditor(store, 1)
    editor.apply(editor_brush(editor))
    after = store.get_provenance(1).copy()
    assert (after == prov.PAINTED).any()
    editor.undo()
    assert not (store.get_provenance(1) == prov.PAINTED).any()
    editor.redo()
    np.testing.assert_array_equal(store.get_provenance(1), after)


def editor_brush(editor: LabelEditor):
    from annotation.editing import brush

    return brush(editor.label, [(5.0, 5.0), (5.0, 25.0)], 1, 3)


def test_done_makes_untouched_pixels_reviewed_and_prediction_pixels_keep_their_model(store: Store) -> None:
    prediction = np.zeros((40, 60), np.int32)
    prediction[12:22, 12:22] = 1
    store.add_model(version=3, path="models/v3/model.pt", status="accepted")
    store.put_label(1, "prediction", prediction, model_version=3)
    editor = LabelEditor(store, 1)
    assert editor.initial_version == "prediction"
    editor.apply(editor_brush(editor))
    codes = store.get_provenance(1)
    assert set(np.unique(codes)) == {prov.PAINTED, prov.prediction(3)}
    weight = weight_map(store, 1, "corrected", (40, 60), {**W, "prediction": 0.2})
    assert set(np.unique(weight).tolist()) == {np.float32(0.2).item(), W["painted"]}
    editor.mark_done()
    assert store.image(1).review == "done"
    weight = weight_map(store, 1, "corrected", (40, 60), {**W, "reviewed": 0.9})
    assert (weight[codes == prov.PAINTED] == W["painted"]).all()
    assert np.allclose(weight[codes != prov.PAINTED], 0.9)


def test_done_without_edits_vouches_for_the_start_label(store: Store) -> None:
    editor = LabelEditor(store, 1)
    editor.mark_done()
    np.testing.assert_array_equal(store.get_label(1, "corrected"), store.get_label(1, "pseudo"))
    assert (store.get_provenance(1) == prov.PSEUDO).all() and store.history(1) == []
    assert (weight_map(store, 1, "corrected", (40, 60), W) == W["reviewed"]).all()


def test_ignore_strokes_zero_the_weight_and_move_the_review_state(store: Store) -> None:
    editor = LabelEditor(store, 1)
    editor.begin_stroke(1, 3, 0, version="ignore")
    editor.extend_stroke((30.0, 50.0))
    editor.end_stroke()
    assert store.image(1).review == "in_progress" and store.get_label(1, "corrected") is None
    weight = weight_map(store, 1, "pseudo", (40, 60), W)
    assert weight[30, 50] == 0.0 and weight[0, 0] == W["pseudo"]


def test_reset_to_pseudo_forgets_what_was_painted(store: Store) -> None:
    editor = LabelEditor(store, 1)
    editor.apply(editor_brush(editor))
    editor.mark_done()
    box = editor.reset("pseudo")
    assert box is not None
    np.testing.assert_array_equal(store.get_label(1, "corrected"), store.get_label(1, "pseudo"))
    assert (store.get_provenance(1) == prov.PSEUDO).all()
    assert store.image(1).review == "in_progress"
    editor.undo()  # the reset is an edit like any other
    assert (store.get_provenance(1) == prov.PAINTED).any()
    editor.reset("empty")
    assert not store.get_label(1, "corrected").any() and (store.get_provenance(1) == prov.EMPTY).all()
    assert (weight_map(store, 1, "corrected", (40, 60), W) == 0).all()  # nothing known, not done


def test_schema_3_project_is_upgraded_with_provenance_from_its_history(tmp_path: Path, image_record) -> None:
    """A project written before provenance: its corrected labels get codes replayed from the history, in the
    upgrade's transaction, and undo after the upgrade restores them."""
    import json

    from annotation.store import chunks

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for v in (1, 2, 3):
        MIGRATIONS[v](conn)
    conn.execute("PRAGMA user_version = 3")
    rec = image_record("a", (1, 1, 1, 8, 8))
    conn.execute(
        "INSERT INTO images (id, path, name, shape, dims, dtype, channel_names, content_hash, size_bytes, mtime,"
        " added_at) VALUES (1, ?, 'a', ?, 'TCZYX', 'uint16', '[\"c0\"]', 'h', 0, 0, 'now')",
        (rec["path"], json.dumps(rec["shape"])))
    conn.execute("INSERT INTO images (id, path, name, shape, dims, dtype, channel_names, content_hash, size_bytes,"
                 " mtime, added_at) VALUES (2, '/b.tif', 'b', ?, 'TCZYX', 'uint16', '[\"c0\"]', 'h2', 0, 0, 'now')",
                 (json.dumps(rec["shape"]),))
    label = np.zeros((8, 8), np.int32)
    label[2:4, 2:4] = 1  # painted by a stroke on image 1 (started from the v1 prediction)
    conn.execute("INSERT INTO labels (id, image_id, t, version, shape, dtype, updated_at) VALUES"
                 " (1, 1, 0, 'corrected', '[8, 8]', 'uint8', 'now')")
    conn.execute("INSERT INTO label_tiles VALUES (1, 0, 0, 0, ?)", (chunks.encode_tile(label, np.uint8),))
    before = np.zeros((1, 2, 2), np.int32)
    conn.execute("INSERT INTO corrections (image_id, t, version, kind, box, before, after, model_version, created_at)"
                 " VALUES (1, 0, 'corrected', 'stroke', '[0, 1, 2, 4, 2, 4]', ?, ?, 1, 'now')",
                 (chunks.encode_patch(before), chunks.encode_patch(before + 1)))
    whole = np.ones((1, 8, 8), np.int32)  # image 2: a whole mask from `correct --mask`
    conn.execute("INSERT INTO labels (id, image_id, t, version, shape, dtype, updated_at) VALUES"
                 " (2, 2, 0, 'corrected', '[8, 8]', 'uint8', 'now')")
    conn.execute("INSERT INTO label_tiles VALUES (2, 0, 0, 0, ?)", (chunks.encode_tile(whole[0], np.uint8),))
    conn.execute("INSERT INTO corrections (image_id, t, version, kind, box, before, after, created_at)"
                 " VALUES (2, 0, 'corrected', 'mask', '[0, 1, 0, 8, 0, 8]', ?, ?, 'now')",
                 (chunks.encode_patch(whole * 0), chunks.encode_patch(whole)))
    conn.close()

    with Store(path) as s:
        codes = s.get_provenance(1)
        assert (codes[2:4, 2:4] == prov.PAINTED).all()
        assert (codes[codes != prov.PAINTED] == prov.prediction(1)).all()
        assert s.image(1).review == "in_progress" and s.image(2).review == "done"
        assert (s.get_provenance(2) == prov.PAINTED).all()
        s.undo(1)
        assert (s.get_provenance(1) == prov.prediction(1)).all()
