"""The ``denoise`` project kind: Noise2Void needs no labels, so its rounds train on the images themselves.

Why a kind of its own: a denoising project has nothing to correct pixel by pixel. Its loop is train on all
images (blind-spot training, see :mod:`im2im_engine.n2v`) -> predict -> rank by the TTA variance of the
denoised output, so a person reviews the images the model is least sure about (new structures, other
noise, artefacts) and decides whether to add more such images or to stop. Test-split images stay out of
training like in the other kinds; the denoised outputs are written by ``score`` (``models/vN/scores``).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from .acceptance import Check
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


def verdict(report: dict, version: int, parent: int | None) -> Check:
    """A denoise round has no labels to check against: the model is accepted when training finished with a
    finite blind-spot loss (the masked-pixel error on the training images, recorded as the metric).

    Comparing parent and child on that loss would mean little (it is measured on noisy pixels, on images the
    child trained on); a person judges the denoised images in the app instead.
    """
    loss = report.get("final_loss")
    ok = isinstance(loss, int | float) and math.isfinite(loss) and bool(report.get("steps"))
    reason = (f"v{version} trained on the noisy images (Noise2Void), final masked-pixel loss {loss:.4g}"
              + (f"; replaces v{parent} without a label check (denoising has no labels)" if parent else "")
              if ok else f"v{version} rejected: training did not finish with a finite loss ({loss!r})")
    return Check(rule="training", images=[], metric="n2v_loss", child=loss if ok else None, parent=None,
                 floor_metric="", accepted=ok, reason=reason)
