"""The project database: one SQLite file (WAL) holding images, labels, corrections, models, scores, jobs.

:class:`Store` is one connection with one transaction helper (:mod:`.base`), split by aggregate:

* :mod:`.images` — images, splits, file and review state, exclusion, regression targets;
* :mod:`.labels` — labels as tiles, edit history (undo/redo) and per-pixel provenance;
* :mod:`.models` — model versions and their scores;
* :mod:`.jobs` — engine jobs and status counters (events live in the base: every part logs).
"""

from __future__ import annotations

from .base import BUSY_TIMEOUT_MS, Box, NewerSchemaError, StoreError, now
from .images import REVIEW_STATES, ImageRecord, ImagesMixin
from .jobs import JobsMixin
from .labels import LabelsMixin
from .models import ModelsMixin

__all__ = ["BUSY_TIMEOUT_MS", "REVIEW_STATES", "Box", "ImageRecord", "NewerSchemaError", "Store", "StoreError",
           "now"]


class Store(ImagesMixin, LabelsMixin, ModelsMixin, JobsMixin):
    """Access to one ``project.db``. Thread-safe (one connection guarded by a lock)."""
