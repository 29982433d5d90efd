"""Label pixels as compressed tiles.

A label image is cut into 2D tiles (one Z plane, ``TILE`` x ``TILE`` pixels), each zlib-compressed on its
own. Why tiles: a brush stroke touches a few tiles, so a save rewrites kilobytes, not the whole mask, and
stays one short SQLite transaction even on 4096² images. All-zero tiles are not stored at all, so sparse
masks (the common case) cost almost nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np

TILE = 256
#: Stored dtypes, smallest first. Labels never need more than int32 (checked on the way in).
_DTYPES = (np.uint8, np.uint16, np.int32)


def storage_dtype(array: np.ndarray) -> np.dtype:
    """The smallest dtype that holds every value of ``array`` (labels are >= 0)."""
    if array.size == 0:
        return np.dtype(np.uint8)
    lo, hi = int(array.min()), int(array.max())
    if lo < 0:
        raise ValueError(f"label values must be >= 0, got {lo}")
    for dt in _DTYPES:
        if hi <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"label value {hi} does not fit int32")


def encode_tile(tile: np.ndarray, dtype: np.dtype) -> bytes:
    """One byte naming the dtype, then the zlib stream: each tile decodes on its own, so an edit that
    needs a wider dtype (instance 256 in a uint8 mask) rewrites only its own tiles."""
    code = _DTYPES.index(np.dtype(dtype).type)
    return bytes([code]) + zlib.compress(np.ascontiguousarray(tile, dtype=dtype).tobytes(), 1)


def decode_tile(blob: bytes, shape: tuple[int, int]) -> np.ndarray:
    dtype = np.dtype(_DTYPES[blob[0]])
    return np.frombuffer(zlib.decompress(blob[1:]), dtype=dtype).reshape(shape)


def as_zyx(array: np.ndarray) -> np.ndarray:
    """View a 2D label as one plane so every path deals with (Z, Y, X)."""
    return array[None] if array.ndim == 2 else array


def tile_slices(shape_yx: tuple[int, int], y0: int = 0, y1: int | None = None, x0: int = 0,
                x1: int | None = None) -> Iterator[tuple[int, int, slice, slice]]:
    """(ty, tx, yslice, xslice) of every tile overlapping the box [y0:y1, x0:x1]."""
    h, w = shape_yx
    y1 = h if y1 is None else y1
    x1 = w if x1 is None else x1
    for ty in range(y0 // TILE, (max(y1, y0 + 1) - 1) // TILE + 1):
        for tx in range(x0 // TILE, (max(x1, x0 + 1) - 1) // TILE + 1):
            yield ty, tx, slice(ty * TILE, min((ty + 1) * TILE, h)), slice(tx * TILE, min((tx + 1) * TILE, w))


def encode_patch(patch: np.ndarray) -> bytes:
    """A history patch (before/after of an edit): int32, zlib."""
    return zlib.compress(np.ascontiguousarray(patch, dtype=np.int32).tobytes(), 1)


def decode_patch(blob: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(zlib.decompress(blob), dtype=np.int32).reshape(shape).copy()
