"""napari's ``Labels.events.paint`` as :class:`annotation.editing.Edit`: one edit per stroke, like the app.

Why a module of its own, without Qt or napari: this is the one place where napari's history format meets
the store, so it is tested on plain arrays (every atom form napari has used) and the widgets only wire it.

napari emits ``events.paint`` once per undo item: a brush drag (all its mouse moves), a fill or a polygon,
with ``value`` = the list of *atoms* of that item. An atom is either

* a masked atom (napari >= 0.9, brush / fill / polygon): ``slice_key`` (a tuple of slices, one per data
  axis), ``mask``, ``old_values``, ``new_value``; or
* the 3-tuple ``(indices, old_values, new_values)`` (``data_setitem``, and every paint before 0.9), with
  ``indices`` a numpy multi-index.

The event arrives after the layer's data has changed. So the edit is read off the data: the union of the
atoms' boxes bounds what changed, and inside it the pixels whose value differs from the editor's copy
(what the store holds) are the stroke. Pixels painted with the value they already had are no change, as in
the desktop app, and keep their provenance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from annotation.editing import Box, Edit, as_zyx, bbox

Span = tuple[int, int]

#: napari Labels mode -> the ``kind`` the corrections table records (the desktop app's names).
KIND_OF_MODE = {"paint": "stroke", "erase": "erase", "fill": "fill", "polygon": "polygon"}


def _span(key: Any, size: int) -> Span | None:
    """``(start, stop)`` of one axis of an index: a slice (step 1) or an int."""
    if isinstance(key, slice):
        start, stop, _ = key.indices(size)
        return (start, stop) if stop > start else None
    if isinstance(key, int | np.integer):
        i = int(key) + (size if int(key) < 0 else 0)
        return (i, i + 1) if 0 <= i < size else None
    arr = np.asarray(key)
    if arr.dtype == bool:
        hit = np.flatnonzero(arr.reshape(-1)) if arr.ndim == 1 else None
        if hit is None:
            return (0, size)
        return (int(hit[0]), int(hit[-1]) + 1) if hit.size else None
    if arr.size == 0:
        return None
    arr = np.where(arr < 0, arr + size, arr)
    return int(arr.min()), min(size, int(arr.max()) + 1)


def atom_spans(atom: Any, shape: Sequence[int]) -> list[Span] | None:
    """Per-axis ``(start, stop)`` of what one atom touched; the whole array when the form is unknown,
    None when it touched nothing."""
    full = [(0, int(s)) for s in shape]
    key = getattr(atom, "slice_key", None)
    if key is None and isinstance(atom, tuple) and len(atom) == 3:
        key = atom[0]
    if not isinstance(key, tuple) or len(key) != len(shape):
        return full  # an atom we do not know: diff the whole label (correct, only slower)
    out = []
    for k, size in zip(key, shape, strict=True):
        span = _span(k, int(size))
        if span is None:
            return None
        out.append(span)
    return out


def paint_spans(atoms: Iterable[Any], shape: Sequence[int]) -> list[Span] | None:
    """Union of the atoms' boxes (None if they touched nothing)."""
    union: list[Span] | None = None
    for atom in atoms:
        spans = atom_spans(atom, shape)
        if spans is None:
            continue
        union = spans if union is None else [(min(a[0], b[0]), max(a[1], b[1])) for a, b in zip(union, spans,
                                                                                                 strict=True)]
    return union


def spans_to_box(spans: Sequence[Span]) -> Box:
    """Box ``(z0, z1, y0, y1, x0, x1)`` of a 2D ``(Y, X)`` or 3D ``(Z, Y, X)`` span list."""
    if len(spans) == 2:
        spans = [(0, 1), *spans]
    if len(spans) != 3:
        raise ValueError(f"a label is (Y, X) or (Z, Y, X), got {len(spans)} axes")
    (z0, z1), (y0, y1), (x0, x1) = spans
    return (z0, z1, y0, y1, x0, x1)


def diff_edit(before: np.ndarray, data: np.ndarray, box: Box | None, kind: str = "stroke") -> Edit | None:
    """The edit that turns ``before`` into ``data`` inside ``box`` (whole label when None), cut to the
    pixels that differ; None when nothing differs. Both are ``(Y, X)`` or ``(Z, Y, X)`` of one shape."""
    old, new = as_zyx(np.asarray(before)), as_zyx(np.asarray(data))
    if old.shape != new.shape:
        raise ValueError(f"layer data of shape {new.shape} does not match the label {old.shape}")
    if box is None:
        box = (0, old.shape[0], 0, old.shape[1], 0, old.shape[2])
    z0, z1, y0, y1, x0, x1 = box
    changed = new[z0:z1, y0:y1, x0:x1] != old[z0:z1, y0:y1, x0:x1]
    sub = bbox(changed)
    if sub is None:
        return None
    tight = (z0 + sub[0].start, z0 + sub[0].stop, y0 + sub[1].start, y0 + sub[1].stop,
             x0 + sub[2].start, x0 + sub[2].stop)
    after = new[tight[0]:tight[1], tight[2]:tight[3], tight[4]:tight[5]].astype(np.int32, copy=True)
    if after.size and int(after.min()) < 0:
        raise ValueError("label values must be >= 0")
    return Edit(tight, after, kind)


def edit_from_paint(atoms: Iterable[Any], before: np.ndarray, data: np.ndarray, kind: str = "stroke") -> Edit | None:
    """One :class:`Edit` for one napari paint event (a whole stroke, fill or polygon)."""
    data = np.asarray(data)
    spans = paint_spans(list(atoms), data.shape)
    if spans is None:
        return None
    return diff_edit(before, data, spans_to_box(spans), kind)


def stroke_kind(mode: str, value: int | None, version: str = "corrected") -> str:
    """What the corrections table calls this edit (``stroke``, ``erase``, ``fill``, ``polygon``;
    ``ignore`` / ``unignore`` on the ignore mask)."""
    if version == "ignore":
        return "unignore" if value == 0 else "ignore"
    kind = KIND_OF_MODE.get(str(mode), "stroke")
    return "erase" if kind == "stroke" and value == 0 else kind
