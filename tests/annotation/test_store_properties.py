"""Property-based tests: tile encoding round-trips exactly; edits, undo and redo behave like a stack."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from annotation.store import Store, chunks

label_values = st.one_of(st.integers(0, 3), st.integers(0, 300), st.integers(0, 2**31 - 1))


@given(arrays(np.int64, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=label_values))
def test_tile_encoding_round_trips_exactly(tile: np.ndarray) -> None:
    dtype = chunks.storage_dtype(tile)
    decoded = chunks.decode_tile(chunks.encode_tile(tile, dtype), tile.shape)
    np.testing.assert_array_equal(decoded, tile)
    assert np.iinfo(decoded.dtype).max >= tile.max()


@given(arrays(np.int32, st.tuples(st.integers(1, 3), st.integers(1, 30), st.integers(1, 30)),
              elements=st.integers(0, 2**31 - 1)))
def test_patch_encoding_round_trips_exactly(patch: np.ndarray) -> None:
    np.testing.assert_array_equal(chunks.decode_patch(chunks.encode_patch(patch), patch.shape), patch)


H, W = 300, 270  # more than one tile in each direction


@st.composite
def edits(draw) -> list[tuple[tuple[int, ...], np.ndarray]]:
    out = []
    for _ in range(draw(st.integers(1, 6))):
        y0 = draw(st.integers(0, H - 1))
        x0 = draw(st.integers(0, W - 1))
        y1 = draw(st.integers(y0 + 1, min(H, y0 + 60)))
        x1 = draw(st.integers(x0 + 1, min(W, x0 + 60)))
        value = draw(st.integers(0, 70000))
        out.append(((0, 1, y0, y1, x0, x1), np.full((1, y1 - y0, x1 - x0), value, np.int32)))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits(), st.integers(0, 6))
def test_undo_then_redo_is_identity_and_survives_reopen(seq, n_undo) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.db"
        store = Store(path, create=True)
        store.add_image({"path": "/x.tif", "name": "x", "shape": [1, 1, 1, H, W], "dims": "TCZYX",
                         "dtype": "uint16", "channel_names": ["c"], "content_hash": "h", "size_bytes": 0,
                         "mtime": 0.0})
        expected = [np.zeros((H, W), np.int32)]
        for box, patch in seq:
            store.apply_edit(1, box, patch)
            nxt = expected[-1].copy()
            nxt[box[2]:box[3], box[4]:box[5]] = patch[0]
            expected.append(nxt)
            np.testing.assert_array_equal(store.get_label(1, "corrected"), nxt)  # edits land exactly in bounds
        store.close()

        store = Store(path)
        n_undo = min(n_undo, len(seq))
        for k in range(n_undo):
            assert store.undo(1) is not None
            np.testing.assert_array_equal(store.get_label(1, "corrected"), expected[len(seq) - k - 1])
        for _ in range(n_undo):
            assert store.redo(1) is not None
        assert store.redo(1) is None
        np.testing.assert_array_equal(store.get_label(1, "corrected"), expected[-1])
        assert len(store.history(1)) == len(seq)
        store.close()
