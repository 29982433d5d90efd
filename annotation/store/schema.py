"""Schema and migrations of ``project.db``.

``PRAGMA user_version`` holds the schema version. Each migration moves the database one version up inside
one transaction, so a project written by an older im2im-active opens (and is upgraded) and a crash during an
upgrade leaves the old version intact. A database from a newer version is refused, never guessed at.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

import numpy as np
import sqlite_utils

from . import chunks
from . import provenance as prov

LABEL_VERSIONS = ("pseudo", "prediction", "corrected", "ignore")


def _run(conn: sqlite3.Connection, script: str) -> None:
    """Run statements one by one: ``executescript`` would COMMIT the migration's transaction half-way."""
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement)


def _v1(conn: sqlite3.Connection) -> None:
    """The first released schema."""
    _run(
        conn,
        f"""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
        CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            shape TEXT NOT NULL,            -- JSON [T, C, Z, Y, X]
            dims TEXT NOT NULL DEFAULT 'TCZYX',
            dtype TEXT NOT NULL,
            channel_names TEXT NOT NULL,    -- JSON list
            content_hash TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            mtime REAL NOT NULL,
            split TEXT NOT NULL DEFAULT 'pool' CHECK (split IN ('pool', 'val', 'test')),
            added_at TEXT NOT NULL
        );
        CREATE INDEX images_name ON images(name);
        CREATE TABLE labels (
            id INTEGER PRIMARY KEY,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            t INTEGER NOT NULL DEFAULT 0,
            version TEXT NOT NULL CHECK (version IN {LABEL_VERSIONS!r}),
            shape TEXT NOT NULL,            -- JSON spatial shape (Y, X) or (Z, Y, X)
            dtype TEXT NOT NULL,
            model_version INTEGER,
            source TEXT,
            author TEXT,
            updated_at TEXT NOT NULL,
            UNIQUE (image_id, t, version)
        );
        CREATE TABLE label_tiles (
            label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,
            z INTEGER NOT NULL, ty INTEGER NOT NULL, tx INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (label_id, z, ty, tx)
        ) WITHOUT ROWID;
        CREATE TABLE corrections (
            id INTEGER PRIMARY KEY,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            t INTEGER NOT NULL DEFAULT 0,
            version TEXT NOT NULL,
            kind TEXT NOT NULL,
            box TEXT NOT NULL,              -- JSON [z0, z1, y0, y1, x0, x1]
            before BLOB NOT NULL,
            after BLOB NOT NULL,
            undone INTEGER NOT NULL DEFAULT 0,
            seconds REAL NOT NULL DEFAULT 0,
            model_version INTEGER,
            author TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX corrections_image ON corrections(image_id, t, version);
        CREATE TABLE models (
            version INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            parent INTEGER,
            status TEXT NOT NULL,           -- training | accepted | rejected | failed | imported
            round INTEGER NOT NULL DEFAULT 0,
            metrics TEXT NOT NULL DEFAULT '{{}}',
            train_set_hash TEXT,
            n_corrected INTEGER NOT NULL DEFAULT 0,
            n_pseudo INTEGER NOT NULL DEFAULT 0,
            seconds REAL,
            note TEXT,
            created_at TEXT NOT NULL
        );
        CREATE TABLE scores (
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            t INTEGER NOT NULL DEFAULT 0,
            model_version INTEGER NOT NULL,
            score REAL NOT NULL,
            details TEXT NOT NULL DEFAULT '{{}}',
            embedding BLOB,
            created_at TEXT NOT NULL,
            PRIMARY KEY (image_id, t, model_version)
        );
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,           -- queued | running | done | failed | cancelled
            spec TEXT NOT NULL,
            pid INTEGER,
            progress REAL NOT NULL DEFAULT 0,
            message TEXT,
            model_version INTEGER,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            kind TEXT NOT NULL,
            image_id INTEGER,
            job_id INTEGER,
            data TEXT NOT NULL DEFAULT '{{}}'
        );
        CREATE INDEX events_kind ON events(kind);
        """
    )


def _v2(conn: sqlite3.Connection) -> None:
    """Where a job runs (local, slurm) and when an image was last found missing or changed."""
    conn.execute("ALTER TABLE jobs ADD COLUMN backend TEXT NOT NULL DEFAULT 'local'")
    conn.execute("ALTER TABLE images ADD COLUMN state TEXT NOT NULL DEFAULT 'ok'")  # ok | missing | changed


def _v3(conn: sqlite3.Connection) -> None:
    """Regression targets (e.g. clean images for denoising): referenced by path like images, not copied."""
    conn.execute(
        "CREATE TABLE targets (image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,"
        " path TEXT NOT NULL, content_hash TEXT NOT NULL, added_at TEXT NOT NULL)"
    )


def _v4(conn: sqlite3.Connection) -> None:
    """Review state and exclusion per image; per-pixel provenance of corrected labels, kept with undo.

    Existing corrected labels get their provenance from their history: the first edit tells what the label
    was copied from (the prediction of the model current then, else the pseudo label; a whole mask from
    nothing), every live edit marks the pixels it changed as painted (``accept`` as the prediction, a whole
    ``mask`` as painted everywhere). Images whose latest edit is a whole mask (``correct --mask``) are
    ``done``; other images with edits are ``in_progress``.
    """
    db = sqlite_utils.Database(conn)
    db["images"].add_column("review", str, not_null_default="untouched")
    db["images"].add_column("excluded", str)
    db["corrections"].add_column("prov_before", bytes)
    db["corrections"].add_column("prov_after", bytes)
    conn.execute(
        "CREATE TABLE provenance_tiles (label_id INTEGER NOT NULL REFERENCES labels(id) ON DELETE CASCADE,"
        " z INTEGER NOT NULL, ty INTEGER NOT NULL, tx INTEGER NOT NULL, data BLOB NOT NULL,"
        " PRIMARY KEY (label_id, z, ty, tx)) WITHOUT ROWID"
    )
    for label_id, image_id, t, shape_json in conn.execute(
        "SELECT id, image_id, t, shape FROM labels WHERE version = 'corrected'"
    ).fetchall():
        _backfill_provenance(conn, label_id, image_id, t, tuple(json.loads(shape_json)))
    conn.execute("UPDATE images SET review = 'in_progress' WHERE id IN (SELECT DISTINCT image_id FROM corrections"
                 " WHERE undone = 0)")
    conn.execute(
        "UPDATE images SET review = 'done' WHERE id IN (SELECT c.image_id FROM corrections c WHERE c.undone = 0"
        " AND c.version = 'corrected' AND c.id = (SELECT MAX(id) FROM corrections WHERE image_id = c.image_id"
        " AND version = 'corrected' AND undone = 0) AND c.kind = 'mask')"
    )


def _backfill_provenance(conn: sqlite3.Connection, label_id: int, image_id: int, t: int,
                         shape: tuple[int, ...]) -> None:
    """Replay one corrected label's history into provenance codes and per-edit provenance patches."""
    zyx = (1, *shape) if len(shape) == 2 else shape
    edits = conn.execute(
        "SELECT id, kind, box, before, after, model_version, undone FROM corrections"
        " WHERE image_id = ? AND t = ? AND version = 'corrected' ORDER BY undone, id", (image_id, t),
    ).fetchall()
    first = edits[0] if edits else None
    if first is not None and first[1] == "mask":
        start = prov.EMPTY
    elif first is not None and first[5] is not None:
        start = prov.prediction(first[5])
    else:
        start = prov.PSEUDO
    codes = np.full(zyx, start, np.int32)
    final = None
    for cid, kind, box_json, before, after, model_version, undone in edits:
        if undone and final is None:
            final = codes.copy()  # live edits come first: what is left is the redo branch
        box = json.loads(box_json)
        sl = (slice(box[0], box[1]), slice(box[2], box[3]), slice(box[4], box[5]))
        patch_shape = tuple(s.stop - s.start for s in sl)
        prov_before = codes[sl].copy()
        if kind == "mask":
            changed = np.ones(patch_shape, bool)
        else:
            changed = chunks.decode_patch(after, patch_shape) != chunks.decode_patch(before, patch_shape)
        codes[sl][changed] = prov.prediction(model_version) if kind == "accept" else prov.PAINTED
        conn.execute("UPDATE corrections SET prov_before = ?, prov_after = ? WHERE id = ?",
                     (chunks.encode_patch(prov_before), chunks.encode_patch(codes[sl]), cid))
    final = codes if final is None else final
    dtype = chunks.storage_dtype(final)
    for z, plane in enumerate(final):
        for ty, tx, ys, xs in chunks.tile_slices(plane.shape):
            tile = plane[ys, xs]
            if tile.any():
                conn.execute("INSERT INTO provenance_tiles (label_id, z, ty, tx, data) VALUES (?, ?, ?, ?, ?)",
                             (label_id, z, ty, tx, chunks.encode_tile(tile, dtype)))


def _v5(conn: sqlite3.Connection) -> None:
    """Configuration searches (``im2im-active auto``): one row per search, one per candidate x fold result,
    so a killed search resumes where it stopped (accessors: :mod:`annotation.store.auto_results`)."""
    _run(
        conn,
        """
        CREATE TABLE auto_searches (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,       -- hash of data, folds and candidate configs: same key, same search
            fingerprint TEXT NOT NULL,      -- JSON
            settings TEXT NOT NULL,         -- JSON: folds, steps, scored_against, fold image ids
            candidates TEXT NOT NULL,       -- JSON list: name, config, rules, changes
            status TEXT NOT NULL DEFAULT 'running',  -- running | stopped | done | applied
            chosen TEXT,
            report TEXT,                    -- JSON, written when the search stops or ends
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE auto_results (
            search_id INTEGER NOT NULL REFERENCES auto_searches(id) ON DELETE CASCADE,
            candidate TEXT NOT NULL,
            fold INTEGER NOT NULL,
            status TEXT NOT NULL,           -- done | failed
            score REAL,
            metrics TEXT NOT NULL DEFAULT '{}',
            seconds REAL,
            job_id INTEGER,
            backend TEXT,
            message TEXT,
            created_at TEXT NOT NULL,
            PRIMARY KEY (search_id, candidate, fold)
        ) WITHOUT ROWID
        """,
    )


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1, 2: _v2, 3: _v3, 4: _v4, 5: _v5}
SCHEMA_VERSION = max(MIGRATIONS)
