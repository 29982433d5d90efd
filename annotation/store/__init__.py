"""The project database (SQLite; sqlite-utils for schema changes and upserts): see :mod:`annotation.store.db`."""

from . import provenance
from .db import REVIEW_STATES, Box, ImageRecord, NewerSchemaError, Store, StoreError
from .schema import LABEL_VERSIONS, SCHEMA_VERSION

__all__ = ["LABEL_VERSIONS", "REVIEW_STATES", "SCHEMA_VERSION", "Box", "ImageRecord", "NewerSchemaError", "Store",
           "StoreError", "provenance"]
