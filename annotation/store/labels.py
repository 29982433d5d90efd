"""Labels, their edit history and their per-pixel provenance.

Label pixels live in ``label_tiles`` (see :mod:`annotation.store.chunks`). Every edit of a label is a row in
``corrections`` with before/after patches of the edited box, so undo/redo work after reopening. A corrected
label also has a provenance code per pixel in ``provenance_tiles`` (see :mod:`.provenance`), written in the
same transaction as the pixels and restored by the same undo/redo, so the training weights can tell what a
person painted from what was copied from a pseudo label or a prediction.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np

from . import chunks
from . import provenance as prov
from .base import Box, StoreBase, now
from .schema import LABEL_VERSIONS

LABEL_TILES = "label_tiles"
PROVENANCE_TILES = "provenance_tiles"


def _zyx(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return (1, *shape) if len(shape) == 2 else tuple(shape)  # type: ignore[return-value]


class LabelsMixin(StoreBase):
    """Rows of ``labels`` + their tiles, ``corrections`` (history) and provenance tiles."""

    # ---------------------------------------------------------------- tiles (any tile table)
    def _read_tiles(self, table: str, label_id: int, shape: tuple[int, ...], box: Box | None) -> np.ndarray:
        zshape = _zyx(shape)
        z0, z1, y0, y1, x0, x1 = box or (0, zshape[0], 0, zshape[1], 0, zshape[2])
        out = np.zeros((z1 - z0, y1 - y0, x1 - x0), np.int32)
        tiles = self.conn.execute(
            f"SELECT z, ty, tx, data FROM {table} WHERE label_id = ? AND z >= ? AND z < ?"
            " AND ty >= ? AND ty <= ? AND tx >= ? AND tx <= ?",
            (label_id, z0, z1, y0 // chunks.TILE, (max(y1, y0 + 1) - 1) // chunks.TILE, x0 // chunks.TILE,
             (max(x1, x0 + 1) - 1) // chunks.TILE),
        ).fetchall()
        for z, ty, tx, blob in tiles:
            ty0, tx0 = ty * chunks.TILE, tx * chunks.TILE
            th, tw = min(chunks.TILE, zshape[1] - ty0), min(chunks.TILE, zshape[2] - tx0)
            tile = chunks.decode_tile(blob, (th, tw))
            ya, yb = max(y0, ty0), min(y1, ty0 + th)  # intersection of the tile with the box
            xa, xb = max(x0, tx0), min(x1, tx0 + tw)
            out[z - z0, ya - y0:yb - y0, xa - x0:xb - x0] = tile[ya - ty0:yb - ty0, xa - tx0:xb - tx0]
        return out if len(shape) == 3 else out[0]

    def _write_tiles(self, c: sqlite3.Connection, table: str, label_id: int, shape: tuple[int, ...], box: Box,
                     patch: np.ndarray) -> None:
        """Paste ``patch`` (z, y, x) at ``box``, rewriting only the tiles it overlaps."""
        zshape = _zyx(shape)
        z0, z1, y0, y1, x0, x1 = box
        for z in range(z0, z1):
            for ty, tx, ys, xs in chunks.tile_slices(zshape[1:], y0, y1, x0, x1):
                old = c.execute(
                    f"SELECT data FROM {table} WHERE label_id = ? AND z = ? AND ty = ? AND tx = ?",
                    (label_id, z, ty, tx),
                ).fetchone()
                th, tw = ys.stop - ys.start, xs.stop - xs.start
                tile = chunks.decode_tile(old[0], (th, tw)).astype(np.int32) if old else np.zeros((th, tw), np.int32)
                ya, yb = max(y0, ys.start), min(y1, ys.stop)
                xa, xb = max(x0, xs.start), min(x1, xs.stop)
                tile[ya - ys.start:yb - ys.start, xa - xs.start:xb - xs.start] = patch[
                    z - z0, ya - y0:yb - y0, xa - x0:xb - x0
                ]
                if tile.any():
                    c.execute(
                        f"INSERT OR REPLACE INTO {table} (label_id, z, ty, tx, data) VALUES (?, ?, ?, ?, ?)",
                        (label_id, z, ty, tx, chunks.encode_tile(tile, chunks.storage_dtype(tile))),
                    )
                elif old:
                    c.execute(f"DELETE FROM {table} WHERE label_id = ? AND z = ? AND ty = ? AND tx = ?",
                              (label_id, z, ty, tx))

    @staticmethod
    def _encode_tiles(array: np.ndarray) -> list[tuple[int, int, int, bytes]]:
        """(z, ty, tx, blob) of every tile that is not all zero (those are not stored)."""
        dtype = chunks.storage_dtype(array)
        rows = []
        for z, plane in enumerate(chunks.as_zyx(array)):
            for ty, tx, ys, xs in chunks.tile_slices(plane.shape):
                tile = plane[ys, xs]
                if tile.any():
                    rows.append((z, ty, tx, chunks.encode_tile(tile, dtype)))
        return rows

    def _replace_tiles(self, c: sqlite3.Connection, table: str, label_id: int,
                       tiles: list[tuple[int, int, int, bytes]]) -> None:
        """Replace every tile of a label by ``tiles`` (from :meth:`_encode_tiles`)."""
        c.execute(f"DELETE FROM {table} WHERE label_id = ?", (label_id,))
        c.executemany(f"INSERT INTO {table} (label_id, z, ty, tx, data) VALUES (?, ?, ?, ?, ?)",
                      [(label_id, *tile) for tile in tiles])

    # ---------------------------------------------------------------- label rows
    def _label_row(self, image_id: int, version: str, t: int) -> dict | None:
        rows = self.query(
            "SELECT * FROM labels WHERE image_id = ? AND t = ? AND version = ?", (image_id, t, version)
        )
        return rows[0] if rows else None

    def has_label(self, image_id: int, version: str, t: int = 0) -> bool:
        return self._label_row(image_id, version, t) is not None

    def label_versions(self, image_id: int, t: int = 0) -> list[str]:
        rows = self.query("SELECT version FROM labels WHERE image_id = ? AND t = ?", (image_id, t))
        return [r["version"] for r in rows]

    def label_info(self, image_id: int, version: str, t: int = 0) -> dict | None:
        row = self._label_row(image_id, version, t)
        if row:
            row["shape"] = tuple(json.loads(row["shape"]))
        return row

    def put_label(
        self, image_id: int, version: str, array: np.ndarray, t: int = 0, *, model_version: int | None = None,
        source: str | None = None, author: str | None = None, conn: sqlite3.Connection | None = None,
    ) -> None:
        """Replace a whole label version of an image in one transaction (import, prediction, reset)."""
        if version not in LABEL_VERSIONS:
            raise ValueError(f"label version must be one of {LABEL_VERSIONS}, got {version!r}")
        array = np.asarray(array)
        dtype = chunks.storage_dtype(array)  # refuses negative or too large values before anything is written
        tiles = self._encode_tiles(array)  # outside the transaction: compressing a big label takes a while
        with self.write() as c:
            c = conn or c
            c.execute(
                "INSERT INTO labels (image_id, t, version, shape, dtype, model_version, source, author, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(image_id, t, version) DO UPDATE SET"
                " shape = excluded.shape, dtype = excluded.dtype, model_version = excluded.model_version,"
                " source = excluded.source, author = excluded.author, updated_at = excluded.updated_at",
                (image_id, t, version, json.dumps(list(array.shape)), str(dtype), model_version, source, author,
                 now()),
            )
            label_id = c.execute(
                "SELECT id FROM labels WHERE image_id = ? AND t = ? AND version = ?", (image_id, t, version)
            ).fetchone()[0]
            self._replace_tiles(c, LABEL_TILES, label_id, tiles)

    def get_label(self, image_id: int, version: str, t: int = 0) -> np.ndarray | None:
        """The whole label image (``(Y, X)`` or ``(Z, Y, X)``, int32), or None if that version is absent."""
        with self._lock:
            row = self._label_row(image_id, version, t)
            if row is None:
                return None
            return self._read_tiles(LABEL_TILES, row["id"], tuple(json.loads(row["shape"])), None)

    def read_box(self, image_id: int, version: str, box: Box, t: int = 0) -> np.ndarray:
        """A box of a label as (z, y, x) int32, zeros where the label is absent."""
        with self._lock:
            row = self._label_row(image_id, version, t)
            if row is None:
                z0, z1, y0, y1, x0, x1 = box
                return np.zeros((z1 - z0, y1 - y0, x1 - x0), np.int32)
            out = self._read_tiles(LABEL_TILES, row["id"], tuple(json.loads(row["shape"])), box)
            return out if out.ndim == 3 else out[None]

    def get_provenance(self, image_id: int, t: int = 0) -> np.ndarray | None:
        """Per-pixel provenance codes of the corrected label (see :mod:`.provenance`), None without one."""
        with self._lock:
            row = self._label_row(image_id, "corrected", t)
            if row is None:
                return None
            return self._read_tiles(PROVENANCE_TILES, row["id"], tuple(json.loads(row["shape"])), None)

    # ---------------------------------------------------------------- edits, undo, redo
    def _ensure_label(self, image_id: int, version: str, t: int, shape: tuple[int, ...],
                      init_from: np.ndarray | None, init_source: int | None, author: str | None) -> dict:
        """The label row, created from ``init_from`` (or zeros) with its provenance when absent."""
        row = self._label_row(image_id, version, t)
        if row is not None:
            return row
        base = np.asarray(init_from, np.int32).reshape(shape) if init_from is not None else np.zeros(shape, np.int32)
        with self.write() as c:
            self.put_label(image_id, version, base, t, author=author, source="edit", conn=c)
            row = self._label_row(image_id, version, t)
            if version == "corrected":
                code = init_source if init_source is not None else (prov.PSEUDO if init_from is not None else prov.EMPTY)
                self._replace_tiles(c, PROVENANCE_TILES, row["id"], self._encode_tiles(np.full(shape, code, np.int32)))
        return row

    def mark_done(self, image_id: int, t: int = 0, *, init_from: np.ndarray | None = None,
                  init_source: int | None = None, author: str | None = None) -> None:
        """The person has checked the whole image: review state ``done``, in one transaction.

        An image done without any edit (the start label was right) gets its corrected label now, as a copy
        of ``init_from`` with that provenance, so its pixels train as reviewed; no history row is written
        (there is nothing to undo).
        """
        image = self.image(image_id)  # type: ignore[attr-defined]  # ImagesMixin
        with self.write() as c:
            self._ensure_label(image_id, "corrected", t, tuple(image.spatial_shape), init_from, init_source, author)
            c.execute("UPDATE images SET review = 'done' WHERE id = ?", (image_id,))
            self.log("review", image_id, review="done")

    def apply_edit(
        self, image_id: int, box: Box, after: np.ndarray, *, version: str = "corrected", t: int = 0,
        kind: str = "stroke", seconds: float = 0.0, model_version: int | None = None, author: str | None = None,
        init_from: np.ndarray | None = None, init_source: int | None = None, provenance: int = prov.PAINTED,
        touched: np.ndarray | None = None,
    ) -> int:
        """Write ``after`` (z, y, x) into ``box`` of a label and record the edit, in ONE transaction.

        If the label version does not exist yet it is created from ``init_from`` (e.g. the prediction the
        user started correcting) or zeros; ``init_source`` is the provenance code of that copy (default:
        pseudo when ``init_from`` is given, else empty). For the corrected label, the pixels the edit
        changed (or ``touched``, a boolean mask of the box, when given) get the provenance code
        ``provenance`` (default: painted by a person). The first edit of an untouched image moves its
        review state to ``in_progress``. Returns the correction id. A newer edit drops the redo branch.
        """
        after = np.asarray(after, np.int32)
        z0, z1, y0, y1, x0, x1 = box
        if after.ndim == 2:
            after = after[None]
        if after.shape != (z1 - z0, y1 - y0, x1 - x0):
            raise ValueError(f"edit patch shape {after.shape} does not match box {box}")
        if after.size and int(after.min()) < 0:
            raise ValueError("label values must be >= 0")
        if touched is not None and np.shape(touched) != after.shape:
            raise ValueError(f"touched mask of shape {np.shape(touched)} does not match box {box}")
        image = self.image(image_id)  # type: ignore[attr-defined]  # ImagesMixin
        shape = tuple(image.spatial_shape)
        zshape = _zyx(shape)
        if not (0 <= z0 < z1 <= zshape[0] and 0 <= y0 < y1 <= zshape[1] and 0 <= x0 < x1 <= zshape[2]):
            raise ValueError(f"edit box {box} is outside the image of shape {image.spatial_shape}")
        with self.write() as c:
            row = self._ensure_label(image_id, version, t, shape, init_from, init_source, author)
            before = self._read_tiles(LABEL_TILES, row["id"], shape, box).reshape(after.shape)
            prov_before = prov_after = None
            if version == "corrected":
                prov_before = self._read_tiles(PROVENANCE_TILES, row["id"], shape, box).reshape(after.shape)
                prov_after = prov_before.copy()
                prov_after[np.asarray(touched, bool) if touched is not None else (after != before)] = provenance
                self._write_tiles(c, PROVENANCE_TILES, row["id"], shape, box, prov_after)
            c.execute(
                "DELETE FROM corrections WHERE image_id = ? AND t = ? AND version = ? AND undone = 1",
                (image_id, t, version),
            )
            self._write_tiles(c, LABEL_TILES, row["id"], shape, box, after)
            c.execute("UPDATE labels SET updated_at = ? WHERE id = ?", (now(), row["id"]))
            c.execute("UPDATE images SET review = 'in_progress' WHERE id = ? AND review = 'untouched'", (image_id,))
            cur = c.execute(
                "INSERT INTO corrections (image_id, t, version, kind, box, before, after, seconds, model_version,"
                " author, created_at, prov_before, prov_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (image_id, t, version, kind, json.dumps(list(box)), chunks.encode_patch(before),
                 chunks.encode_patch(after), float(seconds), model_version, author, now(),
                 None if prov_before is None else chunks.encode_patch(prov_before),
                 None if prov_after is None else chunks.encode_patch(prov_after)),
            )
            return int(cur.lastrowid)

    def _step_history(self, image_id: int, t: int, version: str, undo: bool) -> Box | None:
        with self.write() as c:
            order, flag = ("DESC", 0) if undo else ("ASC", 1)
            rec = c.execute(
                f"SELECT id, box, before, after, prov_before, prov_after FROM corrections WHERE image_id = ?"
                f" AND t = ? AND version = ? AND undone = ? ORDER BY id {order} LIMIT 1",
                (image_id, t, version, flag),
            ).fetchone()
            if rec is None:
                return None
            box = tuple(json.loads(rec["box"]))
            patch_shape = (box[1] - box[0], box[3] - box[2], box[5] - box[4])
            row = self._label_row(image_id, version, t)
            shape = tuple(json.loads(row["shape"]))
            self._write_tiles(c, LABEL_TILES, row["id"], shape, box,
                              chunks.decode_patch(rec["before"] if undo else rec["after"], patch_shape))
            prov_blob = rec["prov_before"] if undo else rec["prov_after"]
            if prov_blob is not None:
                self._write_tiles(c, PROVENANCE_TILES, row["id"], shape, box,
                                  chunks.decode_patch(prov_blob, patch_shape))
            c.execute("UPDATE labels SET updated_at = ? WHERE id = ?", (now(), row["id"]))
            c.execute("UPDATE corrections SET undone = ? WHERE id = ?", (1 - flag, rec["id"]))
            return box  # type: ignore[return-value]

    def undo(self, image_id: int, t: int = 0, version: str = "corrected") -> Box | None:
        """Revert the newest live edit; returns its box (for a partial redraw) or None if nothing to undo."""
        return self._step_history(image_id, t, version, undo=True)

    def redo(self, image_id: int, t: int = 0, version: str = "corrected") -> Box | None:
        return self._step_history(image_id, t, version, undo=False)

    def history(self, image_id: int, t: int = 0, version: str = "corrected") -> list[dict]:
        return self.query(
            "SELECT id, kind, box, undone, seconds, model_version, author, created_at FROM corrections"
            " WHERE image_id = ? AND t = ? AND version = ? ORDER BY id",
            (image_id, t, version),
        )
