"""The project database (SQLite via sqlite-utils): see :mod:`annotation.store.db`."""

from .db import Box, ImageRecord, NewerSchemaError, Store, StoreError
from .schema import LABEL_VERSIONS, SCHEMA_VERSION

__all__ = ["LABEL_VERSIONS", "SCHEMA_VERSION", "Box", "ImageRecord", "NewerSchemaError", "Store", "StoreError"]
