"""What a training round learns from: targets and per-pixel weight maps, written for the engine worker.

Weights follow where each pixel's label came from (see :mod:`annotation.store.provenance` and
``training.weights``): pixels a person painted count fully, and so do the untouched pixels of an image the
person marked *done*; pixels copied from the pseudo label or a prediction and never vouched for count at
the lower ``pseudo`` / ``prediction`` weights; ignored pixels not at all (like MMV_Im2Im's ``_CM`` cost
maps, which are exported with the same rule). Every corrected image is replayed in every round, so the
model does not forget.

A share of the *done* images is held out and never trained on: the acceptance check of every round (see
:mod:`annotation.acceptance`) evaluates the parent and the new model on them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from im2im_engine.config import Weights

from .project import Project
from .store import ImageRecord, Store
from .store import provenance as prov

#: ``training.weights`` defaults: the engine's ``Weights`` section is the one place they are set.
DEFAULT_WEIGHTS = Weights().model_dump()


@dataclass
class TrainSet:
    train: list[dict] = field(default_factory=list)  # worker spec entries
    check: list[dict] = field(default_factory=list)  # held out from training, for the acceptance check
    n_corrected: int = 0  # training images with a corrected label
    n_done: int = 0  # of those, images the person marked done
    n_pseudo: int = 0
    digest: str = ""


def usable_images(store: Store) -> list[ImageRecord]:
    """Images whose file is still where it was and unchanged (see :func:`annotation.integrity.check_images`),
    and that the person has not excluded."""
    return [im for im in store.images() if im.usable]


def done_ids(store: Store) -> list[int]:
    """Images marked done, in the order they were first corrected (the order defines the held-out share)."""
    rows = store.query(
        "SELECT i.id AS image_id, MIN(COALESCE(c.created_at, l.updated_at)) AS first FROM images i"
        " JOIN labels l ON l.image_id = i.id AND l.version = 'corrected'"
        " LEFT JOIN corrections c ON c.image_id = i.id AND c.version = 'corrected'"
        " WHERE i.review = 'done' GROUP BY i.id ORDER BY first, i.id"
    )
    return [r["image_id"] for r in rows]


def corrected_ids(store: Store) -> list[int]:
    """Images with a corrected label, in the order they were first corrected."""
    rows = store.query(
        "SELECT l.image_id, MIN(COALESCE(c.created_at, l.updated_at)) AS first FROM labels l"
        " LEFT JOIN corrections c ON c.image_id = l.image_id AND c.version = 'corrected'"
        " WHERE l.version = 'corrected' GROUP BY l.image_id ORDER BY first, l.image_id"
    )
    return [r["image_id"] for r in rows]


def assign_validation(store: Store, val_fraction: float) -> list[int]:
    """Hold out every k-th done image (k = 1 / val_fraction); stable as more images are done.

    Only done images are held out: the check needs labels a person vouched for everywhere. Test images (a
    fixed split chosen by ``simulate`` or the user) are never moved.
    """
    ids = [i for i in done_ids(store) if store.image(i).split != "test"]
    if val_fraction <= 0:
        val: list[int] = []
    else:
        k = max(2, round(1 / val_fraction))
        val = [image_id for pos, image_id in enumerate(ids) if pos % k == k - 1]
    pool = [i for i in ids if i not in set(val)]
    if val:
        store.set_split(val, "val")
    if pool:
        store.set_split(pool, "pool")
    return val


def training_weights(project: Project) -> dict[str, float]:
    """Loss weights by provenance (``training.weights`` in the config; older ``corrected`` key understood)."""
    return project.engine_config().training.weights.model_dump()


def weight_map(store: Store, image_id: int, version: str, shape: tuple[int, ...],
               weights: dict[str, float]) -> np.ndarray:
    """Per-pixel weights of one image's ``version`` label (``corrected`` or ``pseudo``).

    Corrected label: painted pixels at ``painted``; the others at ``reviewed`` when the image is done,
    else by what they were copied from (``pseudo``, ``prediction``; 0 for a label started empty). A pseudo
    label: ``pseudo`` everywhere. The ignore mask overrides all of it with ``ignore``. The same map trains
    the model and is exported as MMV_Im2Im's ``_CM`` cost map.
    """
    w = {**DEFAULT_WEIGHTS, **weights}
    codes = store.get_provenance(image_id) if version == "corrected" else None
    if codes is None:
        weight = np.full(shape, w["pseudo"], np.float32)
    else:
        codes = codes.reshape(shape)
        if store.image(image_id).review == "done":
            weight = np.full(shape, w["reviewed"], np.float32)
        else:
            weight = np.zeros(shape, np.float32)  # EMPTY: nothing known
            weight[codes == prov.PSEUDO] = w["pseudo"]
            weight[prov.is_prediction(codes)] = w["prediction"]
        weight[codes == prov.PAINTED] = w["painted"]
    ignore = store.get_label(image_id, "ignore")
    if ignore is not None:
        weight[ignore.reshape(shape) > 0] = w["ignore"]
    return weight


def trusted_pixels(weight: np.ndarray, version: str, weights: dict[str, float]) -> np.ndarray:
    """0/1 map of the pixels a check may judge a model on: painted or reviewed pixels of a corrected label
    (all of them when none is), every non-ignored pixel of a pseudo label."""
    if version == "corrected":
        w = {**DEFAULT_WEIGHTS, **weights}
        trusted = weight >= min(w["painted"], w["reviewed"])
        if trusted.any():
            return trusted.astype(np.float32)
    return (weight > 0).astype(np.float32)


def check_entry(entry: dict) -> dict:
    """A training entry as a check entry: judged on its trusted pixels only (a denoise entry has none)."""
    weight = entry.get("trust") or entry.get("weight")
    return {**entry, "weight": weight} if weight else dict(entry)


def _target(store: Store, image: ImageRecord) -> tuple[np.ndarray, str] | None:
    for version in ("corrected", "pseudo"):
        label = store.get_label(image.id, version)
        if label is not None:
            return label.reshape(image.spatial_shape), version
    return None


def build_regression_trainset(project: Project, folder: Path, val_fraction: float) -> TrainSet:
    """Regression: each image's target file (read once, stored as float32 ``(C, *spatial)`` for the worker);
    every k-th target image is held out for the check, as done images are for segmentation."""
    from im2im_engine import io

    store = project.store
    result = TrainSet()
    digest = hashlib.blake2b(digest_size=16)
    k = max(2, round(1 / val_fraction)) if val_fraction > 0 else 0
    with_targets = [(im, store.target(im.id)) for im in usable_images(store) if im.split != "test"]
    with_targets = [(im, t) for im, t in with_targets if t is not None]
    dims = 3 if any(im.is_3d for im, _ in with_targets) else 2
    for pos, (image, target) in enumerate(with_targets):
        data = io.to_spatial(np.asarray(io.read_image(target["path"]).data, np.float32), dims)
        stem = f"{image.id:06d}"
        np.save(folder / f"{stem}_target.npy", data)
        np.save(folder / f"{stem}_weight.npy", np.ones(data.shape[1:], np.float32))
        entry = {"name": image.name, "image": image.path, "t": 0,
                 "target": str(folder / f"{stem}_target.npy"), "weight": str(folder / f"{stem}_weight.npy")}
        digest.update(f"{image.content_hash}:{target['content_hash']}".encode())
        if k and pos % k == k - 1:
            result.check.append(entry)
        else:
            result.train.append(entry)
            result.n_corrected += 1
            result.n_done += 1
    result.digest = digest.hexdigest()
    return result


def build_trainset(project: Project, folder: Path, weights: dict[str, float], val_fraction: float) -> TrainSet:
    """Write ``NAME_target.npy`` / ``NAME_weight.npy`` into ``folder`` and return the worker's entries;
    held-out done images go to ``check``, never to ``train``."""
    store = project.store
    folder.mkdir(parents=True, exist_ok=True)
    if project.task == "regression":
        return build_regression_trainset(project, folder, val_fraction)
    if project.task == "denoise":  # Noise2Void: the images alone (annotation/denoise.py)
        from .denoise import build_denoise_trainset

        return build_denoise_trainset(project, folder)
    held_out = set(assign_validation(store, val_fraction))
    result = TrainSet()
    digest = hashlib.blake2b(digest_size=16)
    for image in usable_images(store):
        if image.split == "test":
            continue
        found = _target(store, image)
        if found is None:
            continue
        target, version = found
        weight = weight_map(store, image.id, version, target.shape, weights)
        stem = f"{image.id:06d}"
        np.save(folder / f"{stem}_target.npy", target.astype(np.int32))
        np.save(folder / f"{stem}_weight.npy", weight)
        np.save(folder / f"{stem}_trust.npy", trusted_pixels(weight, version, weights))
        entry = {"name": image.name, "image_id": image.id, "image": image.path, "t": 0, "version": version,
                 "done": image.review == "done", "trust": str(folder / f"{stem}_trust.npy"),
                 "target": str(folder / f"{stem}_target.npy"), "weight": str(folder / f"{stem}_weight.npy")}
        digest.update(f"{image.content_hash}:{version}:{image.review}:".encode())
        digest.update(hashlib.blake2b(target.tobytes() + weight.tobytes(), digest_size=16).digest())
        if image.id in held_out:
            result.check.append(entry)
        else:
            result.train.append(entry)
            result.n_corrected += version == "corrected"
            result.n_done += image.review == "done" and version == "corrected"
            result.n_pseudo += version == "pseudo"
    result.digest = digest.hexdigest()
    return result


def remove_folder(folder: Path) -> None:
    """Scratch data of a finished job: targets are re-derived from the database each round."""
    if folder.exists():
        for f in folder.iterdir():
            os.unlink(f)
        folder.rmdir()
