"""Otsu pseudo labels on the demo nuclei: plausible, and split into instances for the instance task."""

from __future__ import annotations

import numpy as np

from annotation.pseudo import otsu_pseudo_labels, split_instances
from resources.demo import make_nuclei_2d, make_nuclei_3d


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_semantic_pseudo_labels_are_imperfect_but_useful() -> None:
    image, truth = make_nuclei_2d(seed=3, size=192)
    labels = otsu_pseudo_labels(image[None], "semantic")
    assert labels.shape == truth.shape and set(np.unique(labels)) <= {0, 1}
    score = dice(labels, truth)
    assert 0.6 < score < 0.97  # good enough to start from, not the truth


def test_instance_pseudo_labels_split_touching_objects() -> None:
    yy, xx = np.mgrid[:80, :120]
    two = ((yy - 40) ** 2 + (xx - 40) ** 2 < 400) | ((yy - 40) ** 2 + (xx - 75) ** 2 < 400)
    instances = split_instances(two)
    assert len(np.unique(instances[instances > 0])) == 2
    assert ((instances > 0) == two).all()


def test_pseudo_labels_in_3d() -> None:
    image, truth = make_nuclei_3d(seed=0, shape=(12, 64, 64))
    labels = otsu_pseudo_labels(image[None], "instance")
    assert labels.shape == truth.shape and labels.max() >= 2
