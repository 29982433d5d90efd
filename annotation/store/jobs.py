"""Engine jobs as the project records them, and the status counters."""

from __future__ import annotations

import json
from typing import Any

from .base import StoreBase, StoreError, now
from .schema import LABEL_VERSIONS


class JobsMixin(StoreBase):
    """Rows of ``jobs``; :meth:`counts` for status displays."""

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

    def counts(self) -> dict:
        """Numbers for status displays: images, labels by version, review states, corrections, models, jobs."""
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
            "images_by_review": self.review_counts(),  # type: ignore[attr-defined]  # ImagesMixin
            "excluded": int(self.scalar("SELECT COUNT(*) FROM images WHERE excluded IS NOT NULL")),
            "labels": by_version,
            "targets": int(self.scalar("SELECT COUNT(*) FROM targets")),
            "corrections": int(self.scalar("SELECT COUNT(*) FROM corrections WHERE undone = 0")),
            "seconds_correcting": float(self.scalar("SELECT COALESCE(SUM(seconds), 0) FROM corrections")),
            "models": int(self.scalar("SELECT COUNT(*) FROM models")),
            "jobs": jobs,
        }
