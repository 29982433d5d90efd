"""Model versions and the per-image scores each one gave."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import StoreBase, StoreError, now


class ModelsMixin(StoreBase):
    """Rows of ``models`` and ``scores``; the current model lives in ``meta``."""

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
        rows = self.query("SELECT * FROM models WHERE version = ?", (version,))
        if not rows:
            raise StoreError(f"{self.path}: no model version {version}")
        rows[0]["metrics"] = json.loads(rows[0]["metrics"] or "{}")
        return rows[0]

    @property
    def current_model(self) -> int | None:
        return self.get_meta("current_model")

    def set_current_model(self, version: int | None) -> None:
        self.set_meta("current_model", version)

    def put_scores(self, model_version: int, rows: Sequence[dict]) -> None:
        """Rows: image_id, t, score, details (dict), embedding (float32 array or None)."""
        records = [
            {"image_id": r["image_id"], "t": r.get("t", 0), "model_version": model_version,
             "score": float(r["score"]), "details": json.dumps(r.get("details", {})),
             "embedding": None if r.get("embedding") is None else np.asarray(r["embedding"], np.float32).tobytes(),
             "created_at": now()}
            for r in rows
        ]
        with self.write():
            self.db["scores"].upsert_all(records, pk=("image_id", "t", "model_version"))

    def scores(self, model_version: int) -> list[dict]:
        rows = self.query("SELECT * FROM scores WHERE model_version = ? ORDER BY image_id, t", (model_version,))
        for r in rows:
            r["details"] = json.loads(r["details"])
            r["embedding"] = None if r["embedding"] is None else np.frombuffer(r["embedding"], np.float32)
        return rows
