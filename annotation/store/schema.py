"""Schema and migrations of ``project.db``.

``PRAGMA user_version`` holds the schema version. Each migration moves the database one version up inside
one transaction, so a project written by an older im2im-active opens (and is upgraded) and a crash during an
upgrade leaves the old version intact. A database from a newer version is refused, never guessed at.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

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


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1, 2: _v2, 3: _v3}
SCHEMA_VERSION = max(MIGRATIONS)
