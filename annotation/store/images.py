"""The images of a project: registration by path, splits, file state, review state, exclusion, targets.

An image's *review state* is what the person says about it: ``untouched`` (nobody has worked on it),
``in_progress`` (edited, not vouched for) or ``done`` ("I have checked all of it": its untouched pixels
count as reviewed for training). It is set by the person (*Done → next*, ``correct --mask``) and moved to
``in_progress`` by the first edit; it is the one source of truth for the queue's state column and the
summary counters.

An *excluded* image stays registered with its labels and history but is left out of training, scoring and
the queue (``excluded`` holds the reason); including it again restores it as it was.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .base import StoreBase, StoreError, now

REVIEW_STATES = ("untouched", "in_progress", "done")


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
    review: str = "untouched"
    excluded: str | None = None

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        z, y, x = self.shape[2:]
        return (z, y, x) if z > 1 else (y, x)

    @property
    def is_3d(self) -> bool:
        return self.shape[2] > 1

    @property
    def usable(self) -> bool:
        """The file is where it was, unchanged, and the person has not excluded the image."""
        return self.state == "ok" and self.excluded is None

    @classmethod
    def from_row(cls, row: dict) -> ImageRecord:
        return cls(
            id=row["id"], path=row["path"], name=row["name"], shape=_json_tuple(row["shape"]),
            dtype=row["dtype"], channel_names=list(_json_tuple(row["channel_names"])),
            content_hash=row["content_hash"], size_bytes=row["size_bytes"], mtime=row["mtime"],
            split=row["split"], state=row.get("state", "ok"), review=row.get("review", "untouched"),
            excluded=row.get("excluded"),
        )


@functools.lru_cache(maxsize=4096)
def _json_tuple(text: str) -> tuple:
    """Parsed JSON list, cached: 10,000 images share a handful of shapes and channel lists, and parsing
    them row by row was half the time of listing a big project (the queue lists it on every refresh)."""
    return tuple(json.loads(text))


class ImagesMixin(StoreBase):
    """Rows of ``images`` and ``targets``."""

    def add_image(self, record: dict, conn: sqlite3.Connection | None = None) -> int:
        """Insert or refresh an image by path. ``record`` has the columns of ``images`` (lists as lists)."""
        row = dict(record)
        for key in ("shape", "channel_names"):
            row[key] = json.dumps(list(row[key]))
        row.setdefault("added_at", now())
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        keep = ("path", "added_at", "split", "review", "excluded")
        update = ", ".join(f"{c} = excluded.{c}" for c in row if c not in keep)
        sql = f"INSERT INTO images ({cols}) VALUES ({marks}) ON CONFLICT(path) DO UPDATE SET {update}"
        with self.write() as c:
            c = conn or c
            c.execute(sql, tuple(row.values()))
            return int(c.execute("SELECT id FROM images WHERE path = ?", (row["path"],)).fetchone()[0])

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

    # ---------------------------------------------------------------- review and exclusion
    def set_review(self, image_id: int, review: str, conn: sqlite3.Connection | None = None) -> None:
        """Set the person's review state of an image (``untouched``, ``in_progress``, ``done``)."""
        if review not in REVIEW_STATES:
            raise ValueError(f"review state must be one of {', '.join(REVIEW_STATES)}, got {review!r}")
        with self.write() as c:
            (conn or c).execute("UPDATE images SET review = ? WHERE id = ?", (review, image_id))
        self.log("review", image_id, review=review)

    def review_counts(self) -> dict[str, int]:
        """Images per review state (excluded ones left out), every state present."""
        rows = self.query("SELECT review, COUNT(*) AS n FROM images WHERE excluded IS NULL GROUP BY review")
        return {state: 0 for state in REVIEW_STATES} | {r["review"]: r["n"] for r in rows}

    def set_excluded(self, image_id: int, reason: str | None) -> None:
        """Exclude an image (``reason``: why, shown to the person) or include it again (``None``).

        Labels, corrections and history are kept either way.
        """
        with self.write() as c:
            c.execute("UPDATE images SET excluded = ? WHERE id = ?", (reason, image_id))
        self.log("exclude" if reason is not None else "include", image_id, reason=reason)

    # ---------------------------------------------------------------- regression targets
    def set_target(self, image_id: int, path: str, content_hash: str) -> None:
        with self.write() as c:
            c.execute("INSERT OR REPLACE INTO targets (image_id, path, content_hash, added_at) VALUES (?, ?, ?, ?)",
                      (image_id, path, content_hash, now()))

    def target(self, image_id: int) -> dict | None:
        rows = self.query("SELECT * FROM targets WHERE image_id = ?", (image_id,))
        return rows[0] if rows else None
