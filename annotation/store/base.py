"""One connection and one transaction helper, shared by every part of the store.

Why SQLite and not files: a save is one transaction, so a kill at any moment loses at most the stroke in
progress, and several processes (the GUI saving strokes, the job runner recording results) can write the
same project. Writes take ``BEGIN IMMEDIATE`` so a writer waits its turn (busy timeout) instead of failing
half-way with "database is locked"; reads never block in WAL mode.

The aggregates (:mod:`.images`, :mod:`.labels`, :mod:`.models`, :mod:`.jobs`) are mixins over this base:
they share the connection, the lock and :meth:`StoreBase.write`, so an operation that touches two of them
(a label edit that also moves the image's review state) is still one transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from .schema import MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT_MS = 60_000
Box = tuple[int, int, int, int, int, int]  # z0, z1, y0, y1, x0, x1 (half-open)


class StoreError(RuntimeError):
    """A problem with the project database, phrased for the user (names the file and the problem)."""


class NewerSchemaError(StoreError):
    """The database was written by a newer im2im-active than this one."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def friendly(path: Path, exc: sqlite3.Error) -> StoreError:
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


class StoreBase:
    """The connection (WAL, busy timeout, foreign keys), migrations, transactions, queries and meta."""

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
            raise friendly(self.path, exc) from None
        # sqlite-utils joins an open transaction (as a savepoint) instead of committing on its own, so the
        # schema helpers and upserts it offers run inside our ``write()`` transactions
        self.db = sqlite_utils.Database(self.conn)
        self._migrate()

    # ---------------------------------------------------------------- plumbing
    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self):
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
        """One write transaction. Everything inside commits together or not at all.

        Re-entrant: a ``write()`` inside another (an aggregate calling another aggregate) joins the outer
        transaction instead of failing with "cannot start a transaction within a transaction".
        """
        with self._lock:
            if self.conn.in_transaction:
                yield self.conn
                return
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise friendly(self.path, exc) from None
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException as exc:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise friendly(self.path, exc) from None
                raise

    def query(self, sql: str, params: Sequence | dict = ()) -> list[dict]:
        with self._lock:
            try:
                return [dict(r) for r in self.conn.execute(sql, params).fetchall()]
            except sqlite3.Error as exc:
                raise friendly(self.path, exc) from None

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
        with self.write() as c:
            (conn or c).execute(sql, (key, json.dumps(value)))

    # ---------------------------------------------------------------- events
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
