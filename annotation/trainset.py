"""What a training round learns from: targets and per-pixel weight maps, written for the engine worker.

Corrected pixels count fully, pseudo-labelled pixels at a lower weight and ignored pixels not at all (like
MMV_Im2Im's ``_CM`` cost maps). Every corrected image is replayed in every round, so the model does not
forget. A share of the corrected images is held out for validation: a model is accepted only if it is not
worse on them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .project import Project
from .store import ImageRecord, Store


@dataclass
class TrainSet:
    train: list[dict] = field(default_factory=list)  # worker spec entries
    val: list[dict] = field(default_factory=list)
    n_corrected: int = 0
    n_pseudo: int = 0
    digest: str = ""


def usable_images(store: Store) -> list[ImageRecord]:
    """Images whose file is still where it was and unchanged (see :func:`annotation.integrity.check_images`)."""
    return [im for im in store.images() if im.state == "ok"]


def corrected_ids(store: Store) -> list[int]:
    """Corrected images in the order they were first corrected (the order defines the held-out share)."""
    rows = store.query(
        "SELECT l.image_id, MIN(COALESCE(c.created_at, l.updated_at)) AS first FROM labels l"
        " LEFT JOIN corrections c ON c.image_id = l.image_id AND c.version = 'corrected'"
        " WHERE l.version = 'corrected' GROUP BY l.image_id ORDER BY first, l.image_id"
    )
    return [r["image_id"] for r in rows]


def assign_validation(store: Store, val_fraction: float) -> list[int]:
    """Hold out every k-th corrected image (k = 1 / val_fraction); stable as more images get corrected.

    Test images (a fixed split chosen by ``simulate`` or the user) are never moved.
    """
    ids = [i for i in corrected_ids(store) if store.image(i).split != "test"]
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
    """Loss weight of corrected, pseudo-labelled and ignored pixels (``training.weights`` in the config)."""
    weights = (project.engine_config_dict().get("training") or {}).get("weights") or {}
    return {"corrected": 1.0, "pseudo": 0.3, "ignore": 0.0, **weights}


def weight_map(store: Store, image_id: int, version: str, shape: tuple[int, ...],
               weights: dict[str, float]) -> np.ndarray:
    """Per-pixel weights of one image's label: full for a corrected label, ``pseudo`` otherwise, ``ignore``
    under the ignore mask. The same map trains the model and is exported as MMV_Im2Im's ``_CM`` cost map."""
    weight = np.full(shape, weights["corrected" if version == "corrected" else "pseudo"], np.float32)
    ignore = store.get_label(image_id, "ignore")
    if ignore is not None:
        weight[ignore.reshape(shape) > 0] = weights.get("ignore", 0.0)
    return weight


def _target(store: Store, image: ImageRecord) -> tuple[np.ndarray, str] | None:
    for version in ("corrected", "pseudo"):
        label = store.get_label(image.id, version)
        if label is not None:
            return label.reshape(image.spatial_shape), version
    return None


def build_regression_trainset(project: Project, folder: Path, val_fraction: float) -> TrainSet:
    """Regression: each image's target file (read once, stored as float32 ``(C, *spatial)`` for the worker);
    every k-th target image is held out, as corrected images are for segmentation."""
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
            result.val.append(entry)
        else:
            result.train.append(entry)
            result.n_corrected += 1
    result.digest = digest.hexdigest()
    return result


def build_trainset(project: Project, folder: Path, weights: dict[str, float], val_fraction: float) -> TrainSet:
    """Write ``NAME_target.npy`` / ``NAME_weight.npy`` into ``folder`` and return the worker's entries."""
    store = project.store
    folder.mkdir(parents=True, exist_ok=True)
    if project.task == "regression":
        return build_regression_trainset(project, folder, val_fraction)
    if project.task == "denoise":  # Noise2Void: the images alone (annotation/denoise.py)
        from .denoise import build_denoise_trainset

        return build_denoise_trainset(project, folder)
    val_ids = set(assign_validation(store, val_fraction))
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
        entry = {"name": image.name, "image": image.path, "t": 0,
                 "target": str(folder / f"{stem}_target.npy"), "weight": str(folder / f"{stem}_weight.npy")}
        digest.update(f"{image.content_hash}:{version}:".encode())
        digest.update(hashlib.blake2b(target.tobytes() + weight.tobytes(), digest_size=16).digest())
        if image.id in val_ids:
            result.val.append(entry)
        else:
            result.train.append(entry)
            result.n_corrected += version == "corrected"
            result.n_pseudo += version == "pseudo"
    result.digest = digest.hexdigest()
    return result


def remove_folder(folder: Path) -> None:
    """Scratch data of a finished job: targets are re-derived from the database each round."""
    if folder.exists():
        for f in folder.iterdir():
            os.unlink(f)
        folder.rmdir()
