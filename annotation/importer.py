"""Registering images and their pseudo labels into a project.

Images are referenced by path (never copied) together with a content hash, so a moved or changed file is
noticed later. A folder with some bad files imports the good ones and reports the rest: one line per
skipped file naming the problem.

Every image is checked against the project before it is registered (:func:`fit_image`), with the same
functions the engine worker uses (``io.to_spatial``, ``data.as_channel_first``), so an image the import
accepts is one training accepts. An image that does not fit is refused with the reason, or fitted by the
person's choice (:class:`FitOptions`): one channel of a multi-channel or RGB image, or the maximum
projection of a z-stack for a 2D project. A fitted image is written once, as the project will read it, to
``PROJECT/derived/NAME.ome.tif`` (atomically) and registered by that path; the file it came from is recorded
in a ``fit`` event. Everything that reads images (training, scoring, the viewer, exports) then needs no
per-image read option.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from im2im_engine import io

from .pseudo import METHODS, pseudo_labels
from .store import ImageRecord, Store

Progress = Callable[[int, int, str], None]  # done, total, what

#: Suffixes commonly appended to mask file names; ``cell01_mask.tif`` matches image ``cell01.tif``.
MASK_SUFFIXES = ("", "_mask", "_masks", "_label", "_labels", "_seg", "_gt", "_GT", "_cp_masks", "_instances",
                 "_target", "_clean")


@dataclass
class ImportReport:
    added: list[int] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, problem)
    labels: int = 0
    labels_skipped: list[tuple[str, str]] = field(default_factory=list)
    unmatched_images: list[str] = field(default_factory=list)
    config_notes: list[str] = field(default_factory=list)  # settings fitted to the data (e.g. windows cut)
    fitted: list[tuple[str, str]] = field(default_factory=list)  # (path, what was done to make it fit)
    shape: str = ""  # the project's images, e.g. "2D, 1 channel"
    shape_note: str = ""  # why that shape, when the images disagree
    already: list[str] = field(default_factory=list)  # paths already in the project (add_images)
    choices: dict[str, str] = field(default_factory=dict)  # refused path -> the choice that would make it fit

    def problems(self) -> list[str]:
        return [f"{p}: {why}" for p, why in self.skipped + self.labels_skipped]


def content_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """BLAKE2b of the file bytes (fast, and collisions are not a practical concern here)."""
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(io.IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def image_record(path: Path, info: io.ImageInfo | None = None) -> dict:
    """Everything ``images`` stores about a file. Raises :class:`io.ImageReadError` for unreadable files."""
    info = info or io.image_info(path)
    stat = path.stat()
    return {
        "path": str(path.resolve()),
        "name": file_stem(path),
        "shape": list(info.shape),
        "dims": info.dims,
        "dtype": info.dtype,
        "channel_names": info.channel_names,
        "content_hash": content_hash(path),
        "size_bytes": stat.st_size,
        "mtime": stat.st_mtime,
    }


#: What the engine worker accepts as an image name (it names output files after it).
_UNSAFE = re.compile(r"[^\w.\- ]+")


def safe_name(text: str) -> str:
    """An image name the worker accepts: letters, digits, ``_ . - `` and spaces; anything else becomes ``_``."""
    name = _UNSAFE.sub("_", text).strip(" .") or "image"
    return name


def unique_names(paths: list[Path], taken: Iterable[str] = ()) -> list[str]:
    """A name per file: its stem, made safe; stems found in several folders get their folder path in front
    (``a_cell01``, ``b_cell01``), and a name already ``taken`` a number (``cell01-2``)."""
    stems = [safe_name(file_stem(p)) for p in paths]
    counts = Counter(stems)
    names = list(stems)
    clashing = [i for i, s in enumerate(stems) if counts[s] > 1]
    if clashing:
        root = Path(os.path.commonpath([str(paths[i].resolve().parent) for i in clashing]))
        for i in clashing:
            rel = paths[i].resolve().relative_to(root)
            names[i] = safe_name("_".join([*rel.parent.parts, file_stem(rel)]))
    used = set(taken)
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in used:
            n += 1
            candidate = f"{name}-{n}"
        used.add(candidate)
        out.append(candidate)
    return out


def match_masks(images: list[ImageRecord], labels_dir: Path,
                stems: dict[int, str] | None = None) -> tuple[dict[int, Path], list[str]]:
    """Image id -> mask path, by file stem (with common mask suffixes). Returns (matches, unmatched names).

    ``stems``: the stem of each image's original file where it differs from its name (fitted images, names
    made unique or safe)."""
    masks = {file_stem(p): p for p in io.find_images(labels_dir)}
    matches, unmatched = {}, []
    for im in images:
        stem = (stems or {}).get(im.id) or Path(im.name).name
        found = next((masks[stem + s] for s in MASK_SUFFIXES if stem + s in masks), None)
        if found is None:
            unmatched.append(im.name)
        else:
            matches[im.id] = found
    return matches, unmatched


def fit_mask_to_task(mask: np.ndarray, task: str, num_classes: int = 2) -> np.ndarray:
    """Masks from other tools are often instance ids; for a semantic task with ``num_classes`` classes,
    values that cannot be class ids (``>= num_classes``, or any value > 0 for a binary task) mean
    "foreground" and become class 1. Instance masks are kept as they are."""
    mask = np.asarray(mask)
    if task == "semantic" and (num_classes <= 2 or mask.max(initial=0) >= num_classes):
        return (mask > 0).astype(np.int32)
    return mask.astype(np.int32)


def import_masks(
    store: Store, labels_dir: Path, report: ImportReport, progress: Progress | None = None,
    task: str = "semantic", num_classes: int = 2, only: dict[int, str] | None = None,
) -> None:
    """Masks from another tool, matched by stem, stored as the ``pseudo`` version of each image's t=0.

    ``only``: image id -> original file stem of the images to look for (default: every image)."""
    images = [im for im in store.images() if only is None or im.id in only]
    matches, report.unmatched_images = match_masks(images, labels_dir, only)
    by_id = {im.id: im for im in images}
    for i, (image_id, mask_path) in enumerate(matches.items()):
        image = by_id[image_id]
        try:
            mask = io.read_mask(mask_path, expected_spatial=image.spatial_shape)
        except (io.ImageReadError, OSError) as exc:
            report.labels_skipped.append((str(mask_path), getattr(exc, "problem", None) or str(exc)))
        else:
            mask = fit_mask_to_task(mask, task, num_classes)
            store.put_label(image_id, "pseudo", mask, source=f"import:{mask_path}")
            report.labels += 1
        if progress:
            progress(i + 1, len(matches), mask_path.name)


def import_targets(store: Store, targets_dir: Path, report: ImportReport, progress: Progress | None = None,
                   only: dict[int, str] | None = None) -> None:
    """Regression targets (e.g. clean images for denoising), matched by stem; referenced by path + hash."""
    images = [im for im in store.images() if only is None or im.id in only]
    matches, report.unmatched_images = match_masks(images, targets_dir, only)
    by_id = {im.id: im for im in images}
    for i, (image_id, path) in enumerate(matches.items()):
        image = by_id[image_id]
        try:
            info = io.image_info(path)
            if tuple(info.spatial_shape) != tuple(image.spatial_shape):
                raise io.ImageReadError(path, f"target of shape {info.spatial_shape} does not fit image "
                                              f"{image.name} of shape {image.spatial_shape}")
        except (io.ImageReadError, OSError) as exc:
            report.labels_skipped.append((str(path), getattr(exc, "problem", None) or str(exc)))
        else:
            store.set_target(image_id, str(path.resolve()), content_hash(path))
            report.labels += 1
        if progress:
            progress(i + 1, len(matches), path.name)


def generate_pseudo_labels(
    store: Store, task: str, method: str, report: ImportReport, progress: Progress | None = None,
    only: Iterable[int] | None = None,
) -> None:
    """Classical pseudo labels (:data:`annotation.pseudo.METHODS`) for every image that has none yet
    (timepoint 0); ``only``: just these image ids."""
    if method not in METHODS:
        raise ValueError(f"--pseudo must be one of {', '.join(METHODS)}, got {method!r}")
    wanted = None if only is None else set(only)
    todo = [im for im in store.images()
            if (wanted is None or im.id in wanted) and not store.has_label(im.id, "pseudo")]
    for i, image in enumerate(todo):
        try:
            data = io.read_image(image.path).data
            labels = pseudo_labels(data, task, method)
            labels = labels.reshape(image.spatial_shape)
        except (io.ImageReadError, OSError, ValueError) as exc:
            report.labels_skipped.append((image.path, str(exc)))
        else:
            store.put_label(image.id, "pseudo", labels.astype(np.int32), source=f"pseudo:{method}")
            report.labels += 1
        if progress:
            progress(i + 1, len(todo), image.name)


# ------------------------------------------------------------------------------ fitting images to a project
DERIVED_DIR = "derived"
RGB_NAMES = ("R", "G", "B", "A")


@dataclass(frozen=True)
class FitOptions:
    """The person's choices for images that do not fit the project as they are.

    ``channel``: which channel of an image with more channels than the project takes (an index, or a
    channel name; ``R``/``G``/``B`` for RGB). ``z_projection="max"``: a z-stack becomes its maximum
    projection in a 2D project. ``dims``: 2 or 3 for a new project (default: what most images are).
    """

    channel: int | str | None = None
    z_projection: str | None = None
    dims: int | None = None


@dataclass(frozen=True)
class ProjectShape:
    """What every image of a project must be: 2D planes or 3D stacks, with ``in_channels`` channels."""

    spatial_dims: int
    in_channels: int

    def __str__(self) -> str:
        return f"{self.spatial_dims}D, {self.in_channels} channel{'s' if self.in_channels != 1 else ''}"

    @classmethod
    def of_config(cls, engine_config: Any) -> ProjectShape:
        return cls(engine_config.data.spatial_dims, engine_config.data.in_channels)


@dataclass
class Candidate:
    """A readable image file, from its header: what the fit check needs. ``record`` is its ``images`` row."""

    path: Path
    info: io.ImageInfo
    samples: int  # colour samples per pixel (3 for RGB)
    record: dict | None  # None when surveyed without hashing (a preview)

    @property
    def n_channels(self) -> int:
        return self.info.n_channels * self.samples

    @property
    def n_planes(self) -> int:
        return self.info.shape[2]

    @property
    def channel_names(self) -> list[str]:
        if self.samples > 1:
            return list(RGB_NAMES[: self.samples]) if self.info.n_channels == 1 else \
                [f"C{i}" for i in range(self.n_channels)]
        return list(self.info.channel_names)

    def describe_channels(self) -> str:
        if self.samples > 1 and self.info.n_channels == 1:
            return "an RGB colour image" if self.samples == 3 else f"a colour image with {self.samples} samples"
        names = ", ".join(self.channel_names)
        return f"{self.n_channels} channel{'s' if self.n_channels != 1 else ''} ({names})"


@dataclass
class Fit:
    """The verdict on one image: it fits as it is, it fits after ``what`` was done, or it is refused."""

    candidate: Candidate
    ok: bool
    reason: str = ""  # refused: why, in words
    choice: str | None = None  # refused: the choice that would make it fit ("channel", "z_projection", "dims")
    channel: int | None = None
    z_projection: str | None = None
    what: str = ""  # fitted: what was done, in words

    @property
    def needs_file(self) -> bool:
        """A fitted image is written once as the project reads it (RGB samples are never read otherwise)."""
        return self.ok and (self.channel is not None or self.z_projection is not None or self.candidate.samples > 1)

    @property
    def effective_shape(self) -> tuple[int, int, int, int]:
        """(C, Z, Y, X) as the project will read it."""
        c = 1 if self.channel is not None else self.candidate.n_channels
        z = 1 if self.z_projection else self.candidate.n_planes
        return (c, z, *self.candidate.info.shape[3:])


def survey(paths: list[Path], report: ImportReport, progress: Progress | None = None,
           records: bool = True) -> list[Candidate]:
    """Read the header of every file (and hash it, unless ``records=False``: a preview); unreadable ones go
    to ``report.skipped`` with the reason."""
    out = []
    for i, path in enumerate(paths):
        try:
            info = io.image_info(path)
            samples = io.color_samples(path) if info.n_channels == 1 else 1
            out.append(Candidate(path, info, samples, image_record(path, info) if records else None))
        except (io.ImageReadError, OSError) as exc:
            report.skipped.append((str(path), getattr(exc, "problem", None) or str(exc)))
        if progress:
            progress(i + 1, len(paths), f"reading {path.name}")
    return out


def choose_shape(candidates: list[Candidate], options: FitOptions) -> tuple[ProjectShape, str]:
    """A new project's shape from its images: what most of them are, unless the person chose. Returns the
    shape and, when the images disagree, a sentence saying what was chosen and why."""
    n = len(candidates)
    stacks = sum(c.n_planes > 1 for c in candidates)
    if options.dims in (2, 3):
        dims = options.dims
    elif options.z_projection == "max":
        dims = 2
    else:
        dims = 3 if stacks * 2 > n or (stacks * 2 == n and candidates[0].n_planes > 1) else 2
    if options.channel is not None:
        channels = 1
    else:
        fitting = [c for c in candidates if (c.n_planes > 1) == (dims == 3) or options.z_projection == "max"]
        counts = Counter(c.n_channels for c in fitting or candidates)
        top = max(counts.values())
        channels = next(c.n_channels for c in (fitting or candidates) if counts[c.n_channels] == top)
    shape = ProjectShape(dims, channels)
    agree = sum((c.n_planes > 1) == (dims == 3) and c.n_channels == channels for c in candidates)
    note = "" if agree == n else f"the project is {shape}, as {agree} of the {n} images are"
    return shape, note


def _pick_channel(candidate: Candidate, channel: int | str) -> int | None:
    names = candidate.channel_names
    if isinstance(channel, int) or (isinstance(channel, str) and channel.isdigit()):
        k = int(channel)
        return k if 0 <= k < candidate.n_channels else None
    wanted = channel.strip().lower()
    aliases = {"red": "r", "green": "g", "blue": "b", "alpha": "a"}
    wanted = aliases.get(wanted, wanted)
    for k, name in enumerate(names):
        if name.lower() == wanted:
            return k
    return None


def fit_image(candidate: Candidate, shape: ProjectShape, options: FitOptions, engine_config: Any) -> Fit:
    """Does this image fit the project, and if not, does a choice in ``options`` make it fit?

    The last word is the engine's own check of the image as it will be read (``io.to_spatial`` then
    ``data.as_channel_first``, as the worker does before training or scoring), so the import never accepts
    an image that training would skip."""
    from im2im_engine.data import as_channel_first

    c = candidate
    fit = Fit(c, ok=True)
    done = []
    if shape.spatial_dims == 2 and c.n_planes > 1:
        if options.z_projection != "max":
            return Fit(c, False, f"a z-stack of {c.n_planes} planes, but the project is 2D (one plane per image); "
                                 "use its maximum projection, or make a 3D project for stacks", "z_projection")
        fit.z_projection = "max"
        done.append(f"maximum projection of its {c.n_planes} planes")
    if shape.spatial_dims == 3 and c.n_planes == 1:
        return Fit(c, False, "a single plane, but the project is 3D (z-stacks); 2D images need a 2D project",
                   "dims")
    if c.n_channels != shape.in_channels:
        if shape.in_channels == 1 and options.channel is not None:
            k = _pick_channel(c, options.channel)
            if k is None:
                return Fit(c, False, f"has no channel {options.channel!r}: it is {c.describe_channels()}",
                           "channel")
            fit.channel = k
            done.append(f"channel {k} ({c.channel_names[k]}) of its {c.n_channels}")
        else:
            takes = f"{shape.in_channels} channel{'s' if shape.in_channels != 1 else ''}"
            how = "; choose which channel to use" if shape.in_channels == 1 else ""
            return Fit(c, False, f"{c.describe_channels()}, but the project takes {takes}{how}",
                       "channel" if shape.in_channels == 1 else None)
    elif c.samples > 1:
        done.append(f"its {c.samples} colour samples as {c.samples} channels")
    effective = np.broadcast_to(np.zeros((), np.float32), fit.effective_shape)  # no pixels allocated
    try:
        as_channel_first(io.to_spatial(effective, shape.spatial_dims), engine_config)
    except ValueError as exc:
        return Fit(c, False, " ".join(str(exc).split()))
    fit.what = "; ".join(done)
    return fit


def describe_fits(fits: list[Fit]) -> dict[str, int]:
    """How many images fit as they are, were fitted, were refused."""
    return {"as_is": sum(f.ok and not f.what for f in fits), "fitted": sum(f.ok and bool(f.what) for f in fits),
            "refused": sum(not f.ok for f in fits)}


def derived_path(root: Path, name: str) -> Path:
    folder = root / DERIVED_DIR
    path, n = folder / f"{name}.ome.tif", 1
    while path.exists():
        n += 1
        path = folder / f"{name}-{n}.ome.tif"
    return path


def write_fitted(fit: Fit, root: Path, name: str) -> dict:
    """Write the image as the project reads it to ``root/derived/NAME.ome.tif`` (atomically) and return its
    ``images`` row (named like the original). Raises :class:`io.ImageReadError` / ``OSError``."""
    c = fit.candidate
    data = io.read_fitted(c.path, 0, channel=fit.channel, z_projection=fit.z_projection)
    names = [c.channel_names[fit.channel]] if fit.channel is not None else c.channel_names
    z, y, x = c.info.physical_pixel_sizes
    out = io.write_ome_tiff(derived_path(root, name), data, dim_order="CZYX", channel_names=names,
                            physical_pixel_sizes=(None if fit.z_projection else z, y, x))
    record = image_record(out)
    record["name"] = name
    return record


def register(store: Store, root: Path, fits: list[Fit], names: list[str], report: ImportReport,
             progress: Progress | None = None) -> dict[int, str]:
    """Register every fitting image (writing fitted ones under ``root/derived``); refused ones go to
    ``report.skipped`` with the reason. Returns image id -> original file stem (for matching masks)."""
    stems: dict[int, str] = {}
    todo = [(f, n) for f, n in zip(fits, names, strict=True)]
    for f, _ in todo:
        if not f.ok:
            report.skipped.append((str(f.candidate.path), f.reason))
            if f.choice:
                report.choices[str(f.candidate.path)] = f.choice
    todo = [(f, n) for f, n in todo if f.ok]
    for i, (fit, name) in enumerate(todo):
        c = fit.candidate
        try:
            record = write_fitted(fit, root, name) if fit.needs_file else \
                {**(c.record or image_record(c.path, c.info)), "name": name}
        except (io.ImageReadError, OSError) as exc:
            report.skipped.append((str(c.path), getattr(exc, "problem", None) or str(exc)))
            continue
        image_id = store.add_image(record)
        stems[image_id] = file_stem(c.path)
        report.added.append(image_id)
        if fit.needs_file:
            what = fit.what or "converted"
            report.fitted.append((str(c.path), f"{what} (saved as {Path(record['path']).relative_to(root)})"))
            store.log("fit", image_id, source=str(c.path.resolve()),
                      source_hash=(c.record or {}).get("content_hash") or content_hash(c.path),
                      file=record["path"], what=what)
        if progress:
            progress(i + 1, len(todo), f"registering {c.path.name}")
    return stems
