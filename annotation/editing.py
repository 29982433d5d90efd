"""Label editing as pure numpy: every tool of the annotation view, without Qt.

Why here and not in the GUI: the same operations run from tests, scripts and the CLI, and a GUI that only
maps mouse events to these calls cannot corrupt a label in a way the tests do not see.

Each operation takes the label as ``(Z, Y, X)`` (2D labels are ``(1, Y, X)``) and returns an :class:`Edit`:
the box it touched (``z0, z1, y0, y1, x0, x1``, half-open) and the label values inside that box after the
edit, or ``None`` when nothing would change. :class:`LabelEditor` applies edits to an image of a project
through :meth:`Store.apply_edit` — one transaction per stroke, so undo/redo and crash safety come from the
store — and keeps an in-memory copy in sync for display.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import pairwise

import numpy as np

from .store import Store
from .store import provenance as prov

Box = tuple[int, int, int, int, int, int]
Point = tuple[float, float]  # (y, x) in pixel coordinates of the plane

#: Versions a person edits. ``ignore`` is a 0/1 mask (1 = do not train on these pixels).
EDITABLE = ("corrected", "ignore")
#: Gaps longer than this between two actions are not counted as time spent on the image (coffee breaks).
IDLE_CAP_S = 60.0


class EditError(ValueError):
    """An edit that cannot be applied (no prediction to accept, point outside the image, ...)."""


@dataclass(frozen=True)
class Edit:
    """What an operation changed: ``after`` is ``(z, y, x)`` int32 of the shape of ``box``."""

    box: Box
    after: np.ndarray
    kind: str = "stroke"


# ------------------------------------------------------------------------------------------- helpers
def as_zyx(label: np.ndarray) -> np.ndarray:
    """View a ``(Y, X)`` label as ``(1, Y, X)``; ``(Z, Y, X)`` unchanged."""
    if label.ndim == 2:
        return label[None]
    if label.ndim == 3:
        return label
    raise ValueError(f"label must be (Y, X) or (Z, Y, X), got shape {label.shape}")


@lru_cache(maxsize=64)
def disk(radius: int) -> np.ndarray:
    """Boolean disk of ``2 * radius + 1`` pixels across (radius 0 is one pixel)."""
    r = max(0, int(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    out = (yy * yy + xx * xx) <= r * r + r  # "+ r" rounds the rim like a drawn circle
    out.setflags(write=False)
    return out


def bbox(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Tight slices around the True pixels of ``mask`` (any ndim), or None if it is empty."""
    if not mask.any():
        return None
    out = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        out.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(out)


def _box_of(slices: Sequence[slice]) -> Box:
    z, y, x = slices
    return (z.start, z.stop, y.start, y.stop, x.start, x.stop)


def box_slices(box: Box) -> tuple[slice, slice, slice]:
    z0, z1, y0, y1, x0, x1 = box
    return slice(z0, z1), slice(y0, y1), slice(x0, x1)


def union_box(a: Box | None, b: Box | None) -> Box | None:
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]), min(a[4], b[4]), max(a[5], b[5]))


def _edit_from_mask(label: np.ndarray, z: int | None, mask: np.ndarray, value: int, kind: str,
                    only: int | None = None) -> Edit | None:
    """Set ``value`` where ``mask`` (a plane if ``z`` is given, else a volume) is True; None if no change.

    ``only``: restrict the change to pixels currently equal to it (e.g. paint only on background).
    """
    vol = as_zyx(label)
    full = np.zeros(vol.shape, bool)
    if z is None:
        full[:] = mask.reshape(vol.shape)
    else:
        full[z] = mask
    if only is not None:
        full &= vol == only
    full &= vol != value
    sl = bbox(full)
    if sl is None:
        return None
    after = vol[sl].astype(np.int32, copy=True)
    after[full[sl]] = value
    return Edit(_box_of(sl), after, kind)


def _edit_in_box(label: np.ndarray, z: int, box: tuple[slice, slice], mask: np.ndarray, value: int,
                 kind: str) -> Edit | None:
    """:func:`_edit_from_mask` for a mask that only covers ``box`` of plane ``z`` (no full-plane arrays)."""
    vol = as_zyx(label)
    ys, xs = box
    local = mask & (vol[z, ys, xs] != value)
    sub = bbox(local)
    if sub is None:
        return None
    ya, yb = ys.start + sub[0].start, ys.start + sub[0].stop
    xa, xb = xs.start + sub[1].start, xs.start + sub[1].stop
    after = vol[z : z + 1, ya:yb, xa:xb].astype(np.int32, copy=True)
    after[0][local[sub]] = value
    return Edit((z, z + 1, ya, yb, xa, xb), after, kind)


def _check_z(label: np.ndarray, z: int) -> None:
    if not 0 <= z < as_zyx(label).shape[0]:
        raise EditError(f"plane z={z} outside the label (Z={as_zyx(label).shape[0]})")


# ------------------------------------------------------------------------------------------- masks
def stroke_mask(shape: tuple[int, int], points: Iterable[Point], radius: int) -> np.ndarray:
    """Boolean plane: disks of ``radius`` stamped along the polyline through ``points`` (no gaps)."""
    out = np.zeros(shape, bool)
    pts = [(float(y), float(x)) for y, x in points]
    if not pts:
        return out
    # Resample the polyline so consecutive disks overlap (spacing at most half a radius, >= 1 pixel).
    step = max(1.0, radius / 2.0)
    samples = [pts[0]]
    for (y0, x0), (y1, x1) in pairwise(pts):
        n = int(np.ceil(np.hypot(y1 - y0, x1 - x0) / step))
        samples += [(y0 + (y1 - y0) * k / n, x0 + (x1 - x0) * k / n) for k in range(1, n + 1)]
    d = disk(radius)
    r = d.shape[0] // 2
    h, w = shape
    for y, x in samples:
        cy, cx = int(np.floor(y)), int(np.floor(x))
        ya, yb, xa, xb = cy - r, cy + r + 1, cx - r, cx + r + 1
        sy0, sx0 = max(0, -ya), max(0, -xa)
        ya, xa, yb, xb = max(ya, 0), max(xa, 0), min(yb, h), min(xb, w)
        if ya >= yb or xa >= xb:
            continue
        out[ya:yb, xa:xb] |= d[sy0 : sy0 + yb - ya, sx0 : sx0 + xb - xa]
    return out


def stroke_window(shape: tuple[int, int], points: Sequence[Point], radius: int
                  ) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """:func:`stroke_mask` cut to the stroke's neighbourhood: ``((ys, xs), mask of that window)``, or None
    when the stroke misses the plane. Same pixels as the full-plane mask, at the cost of the window."""
    if not len(points):
        return None
    r = disk(radius).shape[0] // 2 + 1
    ys_ = [float(p[0]) for p in points]
    xs_ = [float(p[1]) for p in points]
    h, w = shape
    y0, y1 = max(0, int(np.floor(min(ys_))) - r), min(h, int(np.floor(max(ys_))) + r + 1)
    x0, x1 = max(0, int(np.floor(min(xs_))) - r), min(w, int(np.floor(max(xs_))) + r + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    local = stroke_mask((y1 - y0, x1 - x0), [(y - y0, x - x0) for y, x in zip(ys_, xs_, strict=True)], radius)
    return (slice(y0, y1), slice(x0, x1)), local


def polygon_mask(shape: tuple[int, int], vertices: Sequence[Point]) -> np.ndarray:
    """Boolean plane inside the closed polygon (vertices as ``(y, x)``), outline included."""
    from skimage.draw import polygon, polygon_perimeter

    out = np.zeros(shape, bool)
    if len(vertices) < 3:
        return out
    ys = np.array([v[0] for v in vertices], float)
    xs = np.array([v[1] for v in vertices], float)
    rr, cc = polygon(ys, xs, shape)
    out[rr, cc] = True
    rr, cc = polygon_perimeter(np.round(ys).astype(int), np.round(xs).astype(int), shape, clip=False)
    keep = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
    out[rr[keep], cc[keep]] = True
    return out


# ------------------------------------------------------------------------------------------- operations
def brush(label: np.ndarray, points: Iterable[Point], radius: int, value: int, z: int = 0,
          only: int | None = None) -> Edit | None:
    """Paint ``value`` with a round brush along ``points`` on plane ``z``. Eraser: ``value=0``."""
    _check_z(label, z)
    mask = stroke_mask(as_zyx(label).shape[1:], points, radius)
    return _edit_from_mask(label, z, mask, int(value), "erase" if value == 0 else "stroke", only)


def flood_fill(label: np.ndarray, point: Point, value: int, z: int = 0) -> Edit | None:
    """Fill the 4-connected region of equal label around ``point`` on plane ``z`` with ``value``."""
    from skimage.segmentation import flood

    _check_z(label, z)
    plane = as_zyx(label)[z]
    y, x = int(point[0]), int(point[1])
    if not (0 <= y < plane.shape[0] and 0 <= x < plane.shape[1]):
        raise EditError(f"point ({y}, {x}) outside the image {plane.shape}")
    if plane[y, x] == value:
        return None
    mask = flood(plane, (y, x), connectivity=1)
    return _edit_from_mask(label, z, mask, int(value), "fill")


def polygon_fill(label: np.ndarray, vertices: Sequence[Point], value: int, z: int = 0) -> Edit | None:
    """Fill the polygon/lasso through ``vertices`` on plane ``z`` with ``value``."""
    _check_z(label, z)
    mask = polygon_mask(as_zyx(label).shape[1:], vertices)
    return _edit_from_mask(label, z, mask, int(value), "polygon")


def pick(label: np.ndarray, point: Point, z: int = 0) -> int:
    """The label value under ``point`` (0 outside the image)."""
    vol = as_zyx(label)
    y, x = int(point[0]), int(point[1])
    if not (0 <= z < vol.shape[0] and 0 <= y < vol.shape[1] and 0 <= x < vol.shape[2]):
        return 0
    return int(vol[z, y, x])


def next_free_id(label: np.ndarray) -> int:
    """The smallest id above every id in use: a new instance never collides with an existing one."""
    return int(label.max(initial=0)) + 1


def merge_instances(label: np.ndarray, keep: int, absorb: int) -> Edit | None:
    """Relabel every pixel of instance ``absorb`` as ``keep`` (whole volume)."""
    if keep == absorb or absorb == 0:
        return None
    vol = as_zyx(label)
    return _edit_from_mask(vol, None, vol == absorb, int(keep), "merge")


def delete_instance(label: np.ndarray, instance: int) -> Edit | None:
    """Set every pixel of ``instance`` to background (whole volume)."""
    if instance == 0:
        return None
    vol = as_zyx(label)
    return _edit_from_mask(vol, None, vol == instance, 0, "delete")


def replace_all(label: np.ndarray, new: np.ndarray, kind: str = "accept") -> Edit | None:
    """Replace the whole label by ``new`` (accept a prediction, reset). Box: the pixels that differ."""
    vol, new_vol = as_zyx(label), as_zyx(np.asarray(new))
    if vol.shape != new_vol.shape:
        raise EditError(f"replacement of shape {new_vol.shape} does not fit the label {vol.shape}")
    sl = bbox(vol != new_vol)
    if sl is None:
        return None
    return Edit(_box_of(sl), new_vol[sl].astype(np.int32, copy=True), kind)


def start_from(store: Store, image_id: int, t: int = 0) -> tuple[np.ndarray | None, str | None]:
    """What a first correction starts from: the prediction if present, else the pseudo label."""
    for version in ("prediction", "pseudo"):
        label = store.get_label(image_id, version, t)
        if label is not None:
            return label, version
    return None, None


def source_code(store: Store, image_id: int, version: str | None, t: int = 0) -> int:
    """Provenance code of a label copied from ``version`` of this image (the prediction's model included)."""
    model = None
    if version == "prediction":
        info = store.label_info(image_id, "prediction", t)
        model = info["model_version"] if info else None
    return prov.of_source(version, model)


#: What *Reset label* can start the corrected label from again.
RESET_SOURCES = ("pseudo", "prediction", "empty")


# ------------------------------------------------------------------------------------------- editor
class LabelEditor:
    """Edits of one image (one timepoint) of a project, with an in-memory copy for display.

    ``label`` shows what the user sees and paints on: ``corrected`` if it exists, else the start-from label
    (prediction, else pseudo, else zeros); ``ignore`` is the 0/1 ignore mask. A stroke is collected with
    :meth:`begin_stroke` / :meth:`extend_stroke` (in memory only, for a live preview) and written as ONE
    edit by :meth:`end_stroke`. Time is counted between actions (gaps capped at :data:`IDLE_CAP_S`) and
    stored with each edit, so the corrections table says how long each image took.
    """

    def __init__(self, store: Store, image_id: int, t: int = 0, clock=time.monotonic,
                 writer: Callable[[Callable[[], object]], None] | None = None):
        """``writer`` runs each database write; the GUI passes one that queues it on a background thread
        (writes stay in order), scripts and tests leave it None to write at once."""
        self.store, self.image_id, self.t = store, image_id, t
        self._clock = clock
        self._writer = writer or (lambda fn: fn())
        record = store.image(image_id)
        self.shape: tuple[int, ...] = record.spatial_shape
        corrected = store.get_label(image_id, "corrected", t)
        self.initial, self.initial_version = start_from(store, image_id, t)
        base = corrected if corrected is not None else self.initial
        self.label = as_zyx(np.array(base, np.int32) if base is not None else np.zeros(self.shape, np.int32))
        ignore = store.get_label(image_id, "ignore", t)
        self.ignore = as_zyx(np.array(ignore, np.int32) if ignore is not None else np.zeros(self.shape, np.int32))
        self.has_corrected = corrected is not None
        self.initial_source = source_code(store, image_id, self.initial_version, t)
        self.model_version = store.current_model
        self._stroke: dict | None = None
        self._last = clock()
        self.seconds = 0.0  # spent on this image while this editor was open

    # -------------------------------------------------------------- bookkeeping
    def array(self, version: str) -> np.ndarray:
        if version not in EDITABLE:
            raise ValueError(f"editable versions are {EDITABLE}, got {version!r}")
        return self.label if version == "corrected" else self.ignore

    def tick(self) -> float:
        """Count the time since the last action (capped) and return it."""
        now = self._clock()
        spent = min(max(now - self._last, 0.0), IDLE_CAP_S)
        self._last = now
        self.seconds += spent
        return spent

    @property
    def stroke_active(self) -> bool:
        return self._stroke is not None

    @property
    def stroke_version(self) -> str:
        """The version the stroke in progress paints into (``corrected`` when none is in progress)."""
        return "corrected" if self._stroke is None else self._stroke["version"]

    def apply(self, edit: Edit | None, version: str = "corrected", *, provenance: int = prov.PAINTED,
              touched: np.ndarray | None = None) -> Box | None:
        """Write one edit to the store (one transaction) and to the in-memory copy; return its box.

        ``provenance``: the code the changed pixels (or ``touched``) get; painted by a person by default.
        """
        if edit is None:
            return None
        arr = self.array(version)
        init = None
        if version == "corrected" and not self.has_corrected:
            init = self.initial if self.initial is not None else np.zeros(self.shape, np.int32)
        seconds = self.tick()
        self._writer(partial(
            self.store.apply_edit, self.image_id, edit.box, edit.after, version=version, t=self.t,
            kind=edit.kind, seconds=seconds, model_version=self.model_version, init_from=init,
            init_source=self.initial_source, provenance=provenance, touched=touched,
        ))
        arr[box_slices(edit.box)] = edit.after
        if version == "corrected":
            self.has_corrected = True
        return edit.box

    # -------------------------------------------------------------- strokes (brush, eraser, ignore)
    def begin_stroke(self, value: int, radius: int, z: int = 0, version: str = "corrected") -> None:
        arr = self.array(version)
        _check_z(arr, z)
        self._stroke = {"value": int(value), "radius": int(radius), "z": z, "version": version,
                        "points": [], "before": arr[z].copy(), "box": None}

    def extend_stroke(self, point: Point) -> Box | None:
        """Add a point; paint the new segment into the in-memory label (preview); return the box to redraw."""
        s = self._stroke
        if s is None:
            return None
        seg = [*s["points"][-1:], point]
        s["points"].append(point)
        arr = self.array(s["version"])
        local = stroke_window(arr.shape[1:], seg, s["radius"])
        if local is None:
            return None
        win, mask = local  # only the segment's neighbourhood: a full-plane mask per mouse move is ~ms at 4096²
        sub = bbox(mask)
        if sub is None:
            return None
        sl = tuple(slice(w.start + a.start, w.start + a.stop) for w, a in zip(win, sub, strict=True))
        plane = arr[s["z"]]
        plane[sl][mask[sub]] = s["value"]
        box = (s["z"], s["z"] + 1, sl[0].start, sl[0].stop, sl[1].start, sl[1].stop)
        s["box"] = union_box(s["box"], box)
        return box

    def end_stroke(self) -> Box | None:
        """Commit the stroke as one edit; return the box it changed (None if it changed nothing)."""
        s, self._stroke = self._stroke, None
        if s is None or s["box"] is None:
            return None
        arr = self.array(s["version"])
        z = s["z"]
        _, _, y0, y1, x0, x1 = s["box"]  # the stroke changed nothing outside its box
        ys, xs = slice(y0, y1), slice(x0, x1)
        painted = arr[z, ys, xs].copy()
        arr[z, ys, xs] = s["before"][ys, xs]  # restore, then apply the stroke as one recorded edit
        edit = _edit_in_box(arr, z, (ys, xs), painted != s["before"][ys, xs], s["value"],
                            "erase" if s["value"] == 0 else "stroke")
        if s["version"] == "ignore" and edit is not None:
            edit = Edit(edit.box, edit.after, "ignore" if s["value"] else "unignore")
        return self.apply(edit, s["version"]) or s["box"]

    def cancel_stroke(self) -> Box | None:
        s, self._stroke = self._stroke, None
        if s is None:
            return None
        self.array(s["version"])[s["z"]] = s["before"]
        return s["box"]

    # -------------------------------------------------------------- one-shot tools
    def fill(self, point: Point, value: int, z: int = 0) -> Box | None:
        return self.apply(flood_fill(self.label, point, value, z))

    def polygon(self, vertices: Sequence[Point], value: int, z: int = 0, version: str = "corrected") -> Box | None:
        return self.apply(polygon_fill(self.array(version), vertices, value, z), version)

    def pick(self, point: Point, z: int = 0) -> int:
        return pick(self.label, point, z)

    def new_instance_id(self) -> int:
        return next_free_id(self.label)

    def merge(self, keep: int, absorb: int) -> Box | None:
        return self.apply(merge_instances(self.label, keep, absorb))

    def delete(self, instance: int) -> Box | None:
        return self.apply(delete_instance(self.label, instance))

    def accept_prediction(self) -> Box | None:
        """Copy the model's prediction into ``corrected`` as one edit (undoable like any stroke)."""
        prediction = self.store.get_label(self.image_id, "prediction", self.t)
        if prediction is None:
            raise EditError("this image has no prediction yet; train and score a model first")
        edit = replace_all(self.label, prediction, "accept")
        if edit is None and not self.has_corrected:
            # Same pixels, but the person confirmed them: record a corrected label (one full-image edit).
            vol = as_zyx(np.asarray(prediction, np.int32))
            edit = Edit((0, vol.shape[0], 0, vol.shape[1], 0, vol.shape[2]), vol.copy(), "accept")
        return self.apply(edit, provenance=source_code(self.store, self.image_id, "prediction", self.t))

    def reset(self, to: str) -> Box | None:
        """*Reset label*: the corrected label becomes the pseudo label, the current prediction or empty again,
        as one undoable edit; no pixel counts as painted afterwards."""
        if to not in RESET_SOURCES:
            raise EditError(f"reset to one of {', '.join(RESET_SOURCES)}, not {to!r}")
        if to == "empty":
            new = np.zeros(self.shape, np.int32)
        else:
            new = self.store.get_label(self.image_id, to, self.t)
            if new is None:
                raise EditError(f"this image has no {to} label to reset to")
        code = source_code(self.store, self.image_id, to, self.t)
        new_vol = as_zyx(np.asarray(new, np.int32))
        codes = self.store.get_provenance(self.image_id, self.t)
        changed = self.label != new_vol
        if codes is not None:
            changed |= as_zyx(codes) != code
        elif not self.has_corrected:
            changed |= True  # nothing stored yet: the reset itself is the first corrected label
        sl = bbox(changed)
        if sl is None:
            return None
        edit = Edit(_box_of(sl), new_vol[sl].copy(), f"reset:{to}")
        box = self.apply(edit, provenance=code, touched=np.ones(edit.after.shape, bool))
        self._writer(partial(self.store.set_review, self.image_id, "in_progress"))
        return box

    def mark_done(self) -> None:
        """*Done*: the person has checked all of this image (its untouched pixels train as reviewed)."""
        self.cancel_stroke()
        self.tick()
        init = None if self.has_corrected else (
            self.initial if self.initial is not None else np.zeros(self.shape, np.int32))
        self._writer(partial(self.store.mark_done, self.image_id, self.t, init_from=init,
                             init_source=self.initial_source))
        self.has_corrected = True

    # -------------------------------------------------------------- history (persisted in the store)
    def _latest(self, undone: bool) -> tuple[int, str] | None:
        """(correction id, version) of the edit undo (newest live) or redo (oldest undone) would touch."""
        live, dead = [], []
        for version in EDITABLE:
            for h in self.store.history(self.image_id, self.t, version):
                (dead if h["undone"] else live).append((h["id"], version))
        if not undone:
            return max(live) if live else None
        newest_live = max(live)[0] if live else -1
        dead = [d for d in dead if d[0] > newest_live]  # undone edits behind a newer edit are gone
        return min(dead) if dead else None

    def history_step(self, undo: bool) -> tuple[str, Box, np.ndarray] | None:
        """Undo or redo in the STORE only; return ``(version, box, patch)`` for :meth:`apply_patch`.

        Safe to run on a worker thread (touches no in-memory state), queued after pending writes.
        """
        target = self._latest(undone=not undo)
        if target is None:
            return None
        version = target[1]
        box = (self.store.undo if undo else self.store.redo)(self.image_id, self.t, version)
        if box is None:
            return None
        return version, box, self.store.read_box(self.image_id, version, box, self.t)

    def apply_patch(self, step: tuple[str, Box, np.ndarray] | None) -> Box | None:
        """Bring the in-memory copy in line with a :meth:`history_step` result; return the box."""
        if step is None:
            return None
        version, box, patch = step
        self.array(version)[box_slices(box)] = patch
        if version == "corrected":
            self.has_corrected = True
        self.tick()
        return box

    def undo(self) -> Box | None:
        """Revert the newest edit of this image (any session); return its box for redraw."""
        self.cancel_stroke()
        return self.apply_patch(self.history_step(True))

    def redo(self) -> Box | None:
        self.cancel_stroke()
        return self.apply_patch(self.history_step(False))

    def can_undo(self) -> bool:
        return self._latest(undone=False) is not None

    def can_redo(self) -> bool:
        return self._latest(undone=True) is not None

    def close(self) -> float:
        """Finish with this image; return the seconds spent on it while open (the caller logs them with
        :func:`annotation.loop.record_time`, the one place time events are written)."""
        self.cancel_stroke()
        self.tick()
        return self.seconds
