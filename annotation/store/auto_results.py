"""Configuration searches in ``project.db`` (tables ``auto_searches`` and ``auto_results``, schema v5).

Why in the database and not in files: a search can run for hours on a cluster; each finished candidate x
fold is recorded in its own transaction, so a search killed at any moment is resumed by running it again
(:mod:`annotation.auto` looks the search up by its key and skips what is recorded). Functions take the
:class:`~annotation.store.db.Store` rather than growing it.
"""

from __future__ import annotations

import json
from typing import Any

from .db import Store, now

_JSON = ("fingerprint", "settings", "candidates", "report")


def _parse(row: dict) -> dict:
    for key in _JSON:
        if key in row and row[key] is not None:
            row[key] = json.loads(row[key])
    if "metrics" in row:
        row["metrics"] = json.loads(row["metrics"] or "{}")
    return row


def find_search(store: Store, key: str) -> dict | None:
    """The search with this key (same data, folds and candidates), or None."""
    rows = store.query("SELECT * FROM auto_searches WHERE key = ?", (key,))
    return _parse(rows[0]) if rows else None


def get_search(store: Store, search_id: int) -> dict:
    rows = store.query("SELECT * FROM auto_searches WHERE id = ?", (search_id,))
    if not rows:
        raise KeyError(f"{store.path}: no configuration search {search_id}")
    return _parse(rows[0])


def searches(store: Store) -> list[dict]:
    """Every search, oldest first."""
    return [_parse(r) for r in store.query("SELECT * FROM auto_searches ORDER BY id")]


def create_search(store: Store, key: str, fingerprint: dict, settings: dict, candidates: list[dict]) -> int:
    stamp = now()
    with store.write() as c:
        cur = c.execute(
            "INSERT INTO auto_searches (key, fingerprint, settings, candidates, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 'running', ?, ?)",
            (key, json.dumps(fingerprint), json.dumps(settings), json.dumps(candidates), stamp, stamp))
        return int(cur.lastrowid)


def set_search(store: Store, search_id: int, **fields: Any) -> None:
    """Update ``status``, ``chosen`` and/or ``report`` (a dict, stored as JSON)."""
    fields = {k: json.dumps(v) if k in _JSON else v for k, v in fields.items()}
    fields["updated_at"] = now()
    with store.write() as c:
        sets = ", ".join(f"{k} = ?" for k in fields)
        c.execute(f"UPDATE auto_searches SET {sets} WHERE id = ?", (*fields.values(), search_id))


def put_result(store: Store, search_id: int, candidate: str, fold: int, *, status: str, score: float | None,
               metrics: dict | None = None, seconds: float | None = None, job_id: int | None = None,
               backend: str | None = None, message: str = "") -> None:
    """Record one finished candidate x fold (one transaction; a repeat replaces it)."""
    with store.write() as c:
        c.execute(
            "INSERT OR REPLACE INTO auto_results (search_id, candidate, fold, status, score, metrics, seconds,"
            " job_id, backend, message, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (search_id, candidate, int(fold), status, score, json.dumps(metrics or {}), seconds, job_id, backend,
             message[:2000], now()))


def results(store: Store, search_id: int) -> list[dict]:
    rows = store.query("SELECT * FROM auto_results WHERE search_id = ? ORDER BY fold, candidate", (search_id,))
    return [_parse(r) for r in rows]
