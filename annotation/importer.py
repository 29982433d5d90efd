"""Registering images and their pseudo labels into a project.

Images are referenced by path (never copied) together with a content hash, so a moved or changed file is
noticed later. A folder with some bad files imports the good ones and reports the rest: one line per
skipped file naming the problem.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from im2im_engine import io

from .pseudo import otsu_pseudo_labels
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


def image_record(path: Path) -> dict:
    """Everything ``images`` stores about a file. Raises :class:`io.ImageReadError` for unreadable files."""
    info = io.image_info(path)
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


def disambiguate_names(store: Store) -> None:
    """Same stem in two sub-folders: name them by their path relative to the common folder instead."""
    images = store.images()
    by_name: dict[str, list[ImageRecord]] = {}
    for im in images:
        by_name.setdefault(im.name, []).append(im)
    clashes = [group for group in by_name.values() if len(group) > 1]
    if not clashes:
        return
    root = Path(os.path.commonpath([im.path for im in images]))
    with store.write() as c:
        for group in clashes:
            for im in group:
                rel = Path(im.path).relative_to(root)
                c.execute("UPDATE images SET name = ? WHERE id = ?", (str(rel.with_name(file_stem(rel))), im.id))


def match_masks(images: list[ImageRecord], labels_dir: Path) -> tuple[dict[int, Path], list[str]]:
    """Image id -> mask path, by file stem (with common mask suffixes). Returns (matches, unmatched names)."""
    masks = {file_stem(p): p for p in io.find_images(labels_dir)}
    matches, unmatched = {}, []
    for im in images:
        stem = Path(im.name).name
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
    task: str = "semantic", num_classes: int = 2,
) -> None:
    """Masks from another tool, matched by stem, stored as the ``pseudo`` version of each image's t=0."""
    images = store.images()
    matches, report.unmatched_images = match_masks(images, labels_dir)
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


def import_targets(store: Store, targets_dir: Path, report: ImportReport, progress: Progress | None = None) -> None:
    """Regression targets (e.g. clean images for denoising), matched by stem; referenced by path + hash."""
    images = store.images()
    matches, report.unmatched_images = match_masks(images, targets_dir)
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
    store: Store, task: str, method: str, report: ImportReport, progress: Progress | None = None
) -> None:
    """Classical pseudo labels for every image that has none yet (timepoint 0)."""
    if method != "otsu":
        raise ValueError(f"--pseudo must be 'otsu', got {method!r}")
    todo = [im for im in store.images() if not store.has_label(im.id, "pseudo")]
    for i, image in enumerate(todo):
        try:
            data = io.read_image(image.path).data
            labels = otsu_pseudo_labels(data, task)
            labels = labels.reshape(image.spatial_shape)
        except (io.ImageReadError, OSError, ValueError) as exc:
            report.labels_skipped.append((image.path, str(exc)))
        else:
            store.put_label(image.id, "pseudo", labels.astype(np.int32), source=f"pseudo:{method}")
            report.labels += 1
        if progress:
            progress(i + 1, len(todo), image.name)
