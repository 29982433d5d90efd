"""The ``denoise`` project kind: Noise2Void needs no labels, so its rounds train on the images themselves.

Why a kind of its own: a denoising project has nothing to correct pixel by pixel. Its loop is train on all
images (blind-spot training, see :mod:`im2im_engine.n2v`) -> predict -> rank by the TTA variance of the
denoised output, so a person reviews the images the model is least sure about (new structures, other
noise, artefacts) and decides whether to add more such images or to stop. Test-split images stay out of
training like in the other kinds; the denoised outputs are written by ``score`` (``models/vN/scores``).
Each round is checked like the others (:mod:`annotation.acceptance`): one image left out of the round judges
the parent and the new model by their blind-spot predictions of the same hidden pixels.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .project import Project, ProjectError
from .trainset import TrainSet, usable_images


def build_denoise_trainset(project: Project, folder: Path) -> TrainSet:
    """Every usable, non-test image is a training entry without target or weight (the worker needs none)."""
    result = TrainSet()
    digest = hashlib.blake2b(digest_size=16)
    for image in usable_images(project.store):
        if image.split == "test":
            continue
        result.train.append({"name": image.name, "image": image.path, "t": 0})
        digest.update(f"{image.content_hash}:".encode())
    result.digest = digest.hexdigest()
    return result


def check_init(labels: object, pseudo: object) -> None:
    """``init --task denoise`` takes images only: labels or pseudo labels would mean another task."""
    if labels is not None or pseudo:
        raise ProjectError("a denoise project needs no labels (Noise2Void learns from the noisy images "
                           "alone); drop --labels/--pseudo, or use --task regression for noisy/clean pairs")
