"""The project database: one SQLite file (WAL) holding images, labels, corrections, models, scores, jobs.

Why SQLite and not files: a save is one transaction, so a kill at any moment loses at most the stroke in
progress, and several processes (the GUI saving strokes, the job runner recording results) can write the
same project. Writes take ``BEGIN IMMEDIATE`` so a writer waits its turn (busy timeout) instead of failing
half-way with "database is locked"; reads never block in WAL mode.

Label pixels live in ``label_tiles`` (see :mod:`annotation.store.chunks`). Every edit of a label is a row in
``corrections`` with before/after patches of the edited box, so undo/redo work after reopening.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from . import chunks
from .schema import LABEL_VERSIONS, MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT_MS = 60_000
Box = tuple[int, int, int, int, int, int]  # z0, z1, y0, y1, x0, x1 (half-open)


class StoreError(RuntimeError):
    """A problem with the project database, phrased for the user (names the file and the problem)."""


class NewerSchemaError(StoreError):
    """The database was written by a newer im2im-active than this one."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ImageRecord:
    """One registered image, as the rest of the app sees it."""

    id: int
    path: str
    name: str
    shape: tuple[int, ...]  # (T, C, Z, Y, X)
    dtype: str
    channel_names: list[str]
    content_hash: str
    size_bytes: int
    mtime: float
    split: str
    state: str

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        z, y, x = self.shape[2:]
        return (z, y, x) if z > 1 else (y, x)

    @property
    def is_3d(self) -> bool:
        return self.shape[2] > 1

    @classmethod
    def from_row(cls, row: dict) -> ImageRecord:
        return cls(
            id=row["id"], path=row["path"], name=row["name"], shape=_json_tuple(row["shape"]),
            dtype=row["dtype"], channel_names=list(_json_tuple(row["channel_names"])),
            content_hash=row["content_hash"], size_bytes=row["size_bytes"], mtime=row["mtime"],
            split=row["split"], state=row.get("state", "ok"),
        )


@functools.lru_cache(maxsize=4096)
def _json_tuple(text: str) -> tuple:
    """Parsed JSON list, cached: 10,000 images share a handful of shapes and channel lists, and parsing
    them row by row was half the time of listing a big project (the queue lists it on every refresh)."""
    return tuple(json.loads(text))


def _friendly(path: Path, exc: sqlite3.Error) -> StoreError:
    msg = str(exc)
    # On a read-only mount SQLite often says only "unable to open database file" (WAL needs its -shm file)
    if "readonly" in msg or "read-only" in msg or not os.access(path.parent, os.W_OK):
        problem = "the project folder or database is read-only; nothing was saved"
    elif "disk is full" in msg or "disk I/O" in msg:
        problem = f"could not write ({msg}); nothing was saved — free space and try again"
    elif "locked" in msg or "busy" in msg:
        problem = "the database stayed busy (another process is writing); nothing was saved — try again"
    elif "not a database" in msg or "malformed" in msg:
        problem = f"not a valid project database ({msg})"
    else:
        problem = msg
    return StoreError(f"{path}: {problem}")


class Store:
    """Access to one ``project.db``. Thread-safe (one connection guarded by a lock)."""

    def __init__(self, path: str | os.PathLike, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StoreError(f"{self.path}: no project database here")
        if create:
            parent = self.path.parent
            if not parent.exists():
                parent.mkdir(parents=True)
            if not os.access(parent, os.W_OK):
                raise StoreError(f"{parent}: project folder is not writable")
        self._lock = threading.RLock()
        try:
            self.conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            self.conn.row_factory = sqlite3.Row
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.conn.execute("PRAGMA foreign_keys = ON")
            mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal" and os.access(self.path.parent, os.W_OK):
                raise StoreError(f"{self.path}: could not switch the database to WAL mode")
            self.conn.execute("PRAGMA synchronous = NORMAL")  # durable in WAL up to the last checkpoint
        except sqlite3.Error as exc:
            if getattr(self, "conn", None) is not None:
                self.conn.close()  # no open file left behind (it would keep a read-only mount busy)
            raise _friendly(self.path, exc) from None
        self.db = sqlite_utils.Database(self.conn)
        self._migrate()

    # ---------------------------------------------------------------- plumbing
    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise NewerSchemaError(
                f"{self.path}: written by a newer im2im-active (schema {current}; this version reads up to "
                f"{SCHEMA_VERSION}). Update im2im-active to open it; the file was not changed."
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self.write() as conn:
                MIGRATIONS[version](conn)
                conn.execute(f"PRAGMA user_version = {version}")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. Everything inside commits together or not at all."""
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _friendly(self.path, exc) from None
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException as exc:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise _friendly(self.path, exc) from None
                raise

    def query(self, sql: str, params: Sequence | dict = ()) -> list[dict]:
        with self._lock:
            try:
                return [dict(r) for r in self.db.query(sql, params)]
            except sqlite3.Error as exc:
                raise _friendly(self.path, exc) from None

    def scalar(self, sql: str, params: Sequence | dict = ()) -> Any:
        with self._lock:
            row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def integrity_check(self) -> str:
        return str(self.scalar("PRAGMA integrity_check"))

    # ---------------------------------------------------------------- meta
    def get_meta(self, key: str, default: Any = None) -> Any:
        value = self.scalar("SELECT value FROM meta WHERE key = ?", (key,))
        return default if value is None else json.loads(value)

    def set_meta(self, key: str, value: Any, conn: sqlite3.Connection | None = None) -> None:
        sql = "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        if conn is not None:
            conn.execute(sql, (key, json.dumps(value)))
        else:
            with self.write() as c:
                c.execute(sql, (key, json.dumps(value)))

    # ---------------------------------------------------------------- images
    def add_image(self, record: dict, conn: sqlite3.Connection | None = None) -> int:
        """Insert or refresh an image by path. ``record`` has the columns of ``images`` (lists as lists)."""
        row = dict(record)
        for key in ("shape", "channel_names"):
            row[key] = json.dumps(list(row[key]))
        row.setdefault("added_at", now())
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        update = ", ".join(f"{c} = excluded.{c}" for c in row if c not in ("path", "added_at", "split"))
        sql = f"INSERT INTO images ({cols}) VALUES ({marks}) ON CONFLICT(path) DO UPDATE SET {update}"

        def run(c: sqlite3.Connection) -> int:
            c.execute(sql, tuple(row.values()))
            return int(c.execute("SELECT id FROM images WHERE path = ?", (row["path"],)).fetchone()[0])

        if conn is not None:
            return run(conn)
        with self.write() as c:
            return run(c)

    def images(self, split: str | None = None) -> list[ImageRecord]:
        where, params = ("WHERE split = ?", (split,)) if split else ("", ())
        return [ImageRecord.from_row(r) for r in self.query(f"SELECT * FROM images {where} ORDER BY id", params)]

    def image(self, image_id: int) -> ImageRecord:
        rows = self.query("SELECT * FROM images WHERE id = ?", (image_id,))
        if not rows:
            raise StoreError(f"{self.path}: no image with id {image_id}")
        return ImageRecord.from_row(rows[0])

    def find_image(self, key: str) -> ImageRecord:
        """By id, file name, stem or path — what a user types on the command line."""
        rows = []
        if key.isdigit():
            rows = self.query("SELECT * FROM images WHERE id = ?", (int(key),))
        if not rows:
            rows = self.query(
                "SELECT * FROM images WHERE path = ? OR name = ? OR path LIKE ? ORDER BY id",
                (str(Path(key).resolve()) if os.sep in key else key, Path(key).stem, f"%{os.sep}{key}"),
            )
        if not rows:
            raise StoreError(f"{self.path}: no image matches {key!r}")
        if len(rows) > 1:
            raise StoreError(f"{self.path}: {key!r} matches {len(rows)} images; give the full path or id")
        return ImageRecord.from_row(rows[0])

    def set_split(self, image_ids: Sequence[int], split: str) -> None:
        with self.write() as c:
            c.executemany("UPDATE images SET split = ? WHERE id = ?", [(split, i) for i in image_ids])

    def set_image_state(self, image_id: int, state: str) -> None:
        with self.write() as c:
            c.execute("UPDATE images SET state = ? WHERE id = ?", (state, image_id))

    # ---------------------------------------------------------------- labels
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
        dtype = chunks.storage_dtype(array)
        planes = chunks.as_zyx(array)
        tiles = []
        for z, plane in enumerate(planes):
            for ty, tx, ys, xs in chunks.tile_slices(plane.shape):
                tile = plane[ys, xs]
                if tile.any():
                    tiles.append((z, ty, tx, chunks.encode_tile(tile, dtype)))

        def run(c: sqlite3.Connection) -> None:
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
            c.execute("DELETE FROM label_tiles WHERE label_id = ?", (label_id,))
            c.executemany(
                "INSERT INTO label_tiles (label_id, z, ty, tx, data) VALUES (?, ?, ?, ?, ?)",
                [(label_id, *tile) for tile in tiles],
            )

        if conn is not None:
            run(conn)
        else:
            with self.write() as c:
                run(c)

    def get_label(self, image_id: int, version: str, t: int = 0) -> np.ndarray | None:
        """The whole label image (``(Y, X)`` or ``(Z, Y, X)``, int32), or None if that version is absent."""
        with self._lock:
            row = self._label_row(image_id, version, t)
            if row is None:
                return None
            return self._read_box(row, None)

    def _read_box(self, row: dict, box: Box | None) -> np.ndarray:
        shape = tuple(json.loads(row["shape"]))
        zshape = (1, *shape) if len(shape) == 2 else shape
        z0, z1, y0, y1, x0, x1 = box or (0, zshape[0], 0, zshape[1], 0, zshape[2])
        out = np.zeros((z1 - z0, y1 - y0, x1 - x0), np.int32)
        tiles = self.conn.execute(
            "SELECT z, ty, tx, data FROM label_tiles WHERE label_id = ? AND z >= ? AND z < ?"
            " AND ty >= ? AND ty <= ? AND tx >= ? AND tx <= ?",
            (row["id"], z0, z1, y0 // chunks.TILE, (max(y1, y0 + 1) - 1) // chunks.TILE, x0 // chunks.TILE,
             (max(x1, x0 + 1) - 1) // chunks.TILE),
        ).fetchall()
        for z, ty, tx, blob in tiles:
            ty0, tx0 = ty * chunks.TILE, tx * chunks.TILE
            th, tw = min(chunks.TILE, zshape[1] - ty0), min(chunks.TILE, zshape[2] - tx0)
            tile = chunks.decode_tile(blob, (th, tw))
            # intersection of the tile with the box
            ya, yb = max(y0, ty0), min(y1, ty0 + th)
            xa, xb = max(x0, tx0), min(x1, tx0 + tw)
            out[z - z0, ya - y0:yb - y0, xa - x0:xb - x0] = tile[ya - ty0:yb - ty0, xa - tx0:xb - tx0]
        return out if len(shape) == 3 else out[0]

    def _write_box(self, c: sqlite3.Connection, row: dict, box: Box, patch: np.ndarray) -> None:
        """Paste ``patch`` (z, y, x) at ``box``, rewriting only the tiles it overlaps."""
        shape = tuple(json.loads(row["shape"]))
        zshape = (1, *shape) if len(shape) == 2 else shape
        z0, z1, y0, y1, x0, x1 = box
        for z in range(z0, z1):
            for ty, tx, ys, xs in chunks.tile_slices(zshape[1:], y0, y1, x0, x1):
                old = c.execute(
                    "SELECT data FROM label_tiles WHERE label_id = ? AND z = ? AND ty = ? AND tx = ?",
                    (row["id"], z, ty, tx),
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
                        "INSERT OR REPLACE INTO label_tiles (label_id, z, ty, tx, data) VALUES (?, ?, ?, ?, ?)",
                        (row["id"], z, ty, tx, chunks.encode_tile(tile, chunks.storage_dtype(tile))),
                    )
                elif old:
                    c.execute(
                        "DELETE FROM label_tiles WHERE label_id = ? AND z = ? AND ty = ? AND tx = ?",
                        (row["id"], z, ty, tx),
                    )
        c.execute("UPDATE labels SET updated_at = ? WHERE id = ?", (now(), row["id"]))

    def read_box(self, image_id: int, version: str, box: Box, t: int = 0) -> np.ndarray:
        """A box of a label as (z, y, x) int32, zeros where the label is absent."""
        with self._lock:
            row = self._label_row(image_id, version, t)
            if row is None:
                z0, z1, y0, y1, x0, x1 = box
                return np.zeros((z1 - z0, y1 - y0, x1 - x0), np.int32)
            out = self._read_box(row, box)
            return out if out.ndim == 3 else out[None]

    # ---------------------------------------------------------------- edits, undo, redo
    def apply_edit(
        self, image_id: int, box: Box, after: np.ndarray, *, version: str = "corrected", t: int = 0,
        kind: str = "stroke", seconds: float = 0.0, model_version: int | None = None, author: str | None = None,
        init_from: np.ndarray | None = None,
    ) -> int:
        """Write ``after`` (z, y, x) into ``box`` of a label and record the edit, in ONE transaction.

        If the label version does not exist yet it is created from ``init_from`` (e.g. the prediction the
        user started correcting) or zeros. Returns the correction id. A newer edit drops the redo branch.
        """
        after = np.asarray(after, np.int32)
        z0, z1, y0, y1, x0, x1 = box
        if after.ndim == 2:
            after = after[None]
        if after.shape != (z1 - z0, y1 - y0, x1 - x0):
            raise ValueError(f"edit patch shape {after.shape} does not match box {box}")
        if after.size and int(after.min()) < 0:
            raise ValueError("label values must be >= 0")
        image = self.image(image_id)
        zshape = (1, *image.spatial_shape) if len(image.spatial_shape) == 2 else image.spatial_shape
        if not (0 <= z0 < z1 <= zshape[0] and 0 <= y0 < y1 <= zshape[1] and 0 <= x0 < x1 <= zshape[2]):
            raise ValueError(f"edit box {box} is outside the image of shape {image.spatial_shape}")
        with self._lock, self.write() as c:
            row = self._label_row(image_id, version, t)
            if row is None:
                base = init_from if init_from is not None else np.zeros(image.spatial_shape, np.int32)
                self.put_label(image_id, version, base, t, author=author, source="edit", conn=c)
                row = self._label_row(image_id, version, t)
            before = self._read_box(row, box)
            before = before if before.ndim == 3 else before[None]
            c.execute(
                "DELETE FROM corrections WHERE image_id = ? AND t = ? AND version = ? AND undone = 1",
                (image_id, t, version),
            )
            self._write_box(c, row, box, after)
            cur = c.execute(
                "INSERT INTO corrections (image_id, t, version, kind, box, before, after, seconds, model_version,"
                " author, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (image_id, t, version, kind, json.dumps(list(box)), chunks.encode_patch(before),
                 chunks.encode_patch(after), float(seconds), model_version, author, now()),
            )
            return int(cur.lastrowid)

    def _step_history(self, image_id: int, t: int, version: str, undo: bool) -> Box | None:
        with self._lock, self.write() as c:
            order, flag = ("DESC", 0) if undo else ("ASC", 1)
            rec = c.execute(
                f"SELECT id, box, before, after FROM corrections WHERE image_id = ? AND t = ? AND version = ?"
                f" AND undone = ? ORDER BY id {order} LIMIT 1",
                (image_id, t, version, flag),
            ).fetchone()
            if rec is None:
                return None
            box = tuple(json.loads(rec["box"]))
            shape = (box[1] - box[0], box[3] - box[2], box[5] - box[4])
            patch = chunks.decode_patch(rec["before"] if undo else rec["after"], shape)
            row = self._label_row(image_id, version, t)
            self._write_box(c, row, box, patch)
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

    # ---------------------------------------------------------------- regression targets
    def set_target(self, image_id: int, path: str, content_hash: str) -> None:
        with self.write() as c:
            c.execute("INSERT OR REPLACE INTO targets (image_id, path, content_hash, added_at) VALUES (?, ?, ?, ?)",
                      (image_id, path, content_hash, now()))

    def target(self, image_id: int) -> dict | None:
        rows = self.query("SELECT * FROM targets WHERE image_id = ?", (image_id,))
        return rows[0] if rows else None

    # ---------------------------------------------------------------- models, scores, jobs, events
    def add_model(self, **fields: Any) -> int:
        fields.setdefault("created_at", now())
        if "metrics" in fields and not isinstance(fields["metrics"], str):
            fields["metrics"] = json.dumps(fields["metrics"])
        with self.write() as c:
            if "version" not in fields:
                fields["version"] = int(c.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM models").fetchone()[0])
            cols = ", ".join(fields)
            c.execute(f"INSERT INTO models ({cols}) VALUES ({', '.join('?' for _ in fields)})", tuple(fields.values()))
            return int(fields["version"])

    def update_model(self, version: int, **fields: Any) -> None:
        if "metrics" in fields and not isinstance(fields["metrics"], str):
            fields["metrics"] = json.dumps(fields["metrics"])
        with self.write() as c:
            sets = ", ".join(f"{k} = ?" for k in fields)
            c.execute(f"UPDATE models SET {sets} WHERE version = ?", (*fields.values(), version))

    def models(self) -> list[dict]:
        rows = self.query("SELECT * FROM models ORDER BY version")
        for r in rows:
            r["metrics"] = json.loads(r["metrics"] or "{}")
        return rows

    def model(self, version: int) -> dict:
        rows = [m for m in self.models() if m["version"] == version]
        if not rows:
            raise StoreError(f"{self.path}: no model version {version}")
        return rows[0]

    @property
    def current_model(self) -> int | None:
        return self.get_meta("current_model")

    def set_current_model(self, version: int | None) -> None:
        self.set_meta("current_model", version)

    def put_scores(self, model_version: int, rows: Sequence[dict]) -> None:
        """Rows: image_id, t, score, details (dict), embedding (float32 array or None)."""
        with self.write() as c:
            c.executemany(
                "INSERT OR REPLACE INTO scores (image_id, t, model_version, score, details, embedding, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (r["image_id"], r.get("t", 0), model_version, float(r["score"]), json.dumps(r.get("details", {})),
                     None if r.get("embedding") is None else np.asarray(r["embedding"], np.float32).tobytes(), now())
                    for r in rows
                ],
            )

    def scores(self, model_version: int) -> list[dict]:
        rows = self.query("SELECT * FROM scores WHERE model_version = ? ORDER BY image_id, t", (model_version,))
        for r in rows:
            r["details"] = json.loads(r["details"])
            r["embedding"] = None if r["embedding"] is None else np.frombuffer(r["embedding"], np.float32)
        return rows

    def add_job(self, kind: str, spec: dict, backend: str = "local") -> int:
        with self.write() as c:
            cur = c.execute(
                "INSERT INTO jobs (kind, status, spec, created_at, backend) VALUES (?, 'queued', ?, ?, ?)",
                (kind, json.dumps(spec), now(), backend),
            )
            return int(cur.lastrowid)

    def update_job(self, job_id: int, **fields: Any) -> None:
        with self.write() as c:
            sets = ", ".join(f"{k} = ?" for k in fields)
            c.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*fields.values(), job_id))

    def jobs(self, status: str | None = None) -> list[dict]:
        where, params = ("WHERE status = ?", (status,)) if status else ("", ())
        return self.query(f"SELECT * FROM jobs {where} ORDER BY id", params)

    def job(self, job_id: int) -> dict:
        rows = self.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise StoreError(f"{self.path}: no job {job_id}")
        return rows[0]

    def log(self, kind: str, image_id: int | None = None, job_id: int | None = None, **data: Any) -> None:
        """Append an event (what happened, for the history panel and for audits)."""
        with self.write() as c:
            c.execute(
                "INSERT INTO events (time, kind, image_id, job_id, data) VALUES (?, ?, ?, ?, ?)",
                (now(), kind, image_id, job_id, json.dumps(data, default=str)),
            )

    def events(self, kind: str | None = None, limit: int = 1000) -> list[dict]:
        where, params = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        rows = self.query(f"SELECT * FROM events {where} ORDER BY id DESC LIMIT ?", (*params, limit))
        for r in rows:
            r["data"] = json.loads(r["data"])
        return rows[::-1]

    def counts(self) -> dict:
        """Numbers for status displays: images, labels by version, corrections, models, jobs by status."""
        by_version = {v: 0 for v in LABEL_VERSIONS}
        for r in self.query("SELECT version, COUNT(DISTINCT image_id) AS n FROM labels GROUP BY version"):
            by_version[r["version"]] = r["n"]
        jobs = {r["status"]: r["n"] for r in self.query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")}
        return {
            "images": int(self.scalar("SELECT COUNT(*) FROM images")),
            "images_by_split": {
                r["split"]: r["n"] for r in self.query("SELECT split, COUNT(*) AS n FROM images GROUP BY split")
            },
            "images_by_state": {
                r["state"]: r["n"] for r in self.query("SELECT state, COUNT(*) AS n FROM images GROUP BY state")
            },
            "labels": by_version,
            "targets": int(self.scalar("SELECT COUNT(*) FROM targets")),
            "corrections": int(self.scalar("SELECT COUNT(*) FROM corrections WHERE undone = 0")),
            "seconds_correcting": float(self.scalar("SELECT COALESCE(SUM(seconds), 0) FROM corrections")),
            "models": int(self.scalar("SELECT COUNT(*) FROM models")),
            "jobs": jobs,
        }

