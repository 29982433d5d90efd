"""Where each pixel of a corrected label came from.

A corrected label starts as a copy of the pseudo label or of a model's prediction (or empty), and a person
then paints some of it. Training must not treat the copied pixels as if a person had drawn them, so the
store keeps, per pixel of every corrected label, a provenance code beside the value (same tiles, same
transaction, same undo):

* ``EMPTY`` (0): no source — the label was started (or reset) empty;
* ``PSEUDO`` (1): copied from the pseudo label;
* ``PAINTED`` (2): set by a person's edit (brush, eraser, fill, polygon, merge, delete, a whole mask given
  with ``correct --mask``);
* ``PREDICTION_BASE + N``: copied from the prediction of model version N.

``ignore`` is not a provenance code: the ignore mask is its own label and overrides any provenance when
weights are built (see :func:`annotation.trainset.weight_map`).
"""

from __future__ import annotations

import numpy as np

EMPTY = 0
PSEUDO = 1
PAINTED = 2
PREDICTION_BASE = 1000


def prediction(model_version: int | None) -> int:
    """The code of pixels copied from the prediction of ``model_version`` (0 when unknown)."""
    return PREDICTION_BASE + int(model_version or 0)


def of_source(version: str | None, model_version: int | None = None) -> int:
    """The code for a label copied from ``version`` (``pseudo``, ``prediction`` or None for empty)."""
    if version == "pseudo":
        return PSEUDO
    if version == "prediction":
        return prediction(model_version)
    if version in (None, "empty"):
        return EMPTY
    raise ValueError(f"a corrected label starts from pseudo, prediction or empty, not {version!r}")


def is_prediction(codes: np.ndarray) -> np.ndarray:
    return np.asarray(codes) >= PREDICTION_BASE


def describe(code: int) -> str:
    """Words for one code, as the GUI and exports show it."""
    if code >= PREDICTION_BASE:
        n = code - PREDICTION_BASE
        return f"prediction of v{n}" if n else "prediction"
    return {EMPTY: "empty", PSEUDO: "pseudo", PAINTED: "painted"}.get(int(code), f"unknown ({code})")


def summary(codes: np.ndarray) -> dict[str, int]:
    """Pixel counts by source (``painted``, ``pseudo``, ``prediction``, ``empty``)."""
    c = np.asarray(codes)
    return {"painted": int((c == PAINTED).sum()), "pseudo": int((c == PSEUDO).sum()),
            "prediction": int(is_prediction(c).sum()), "empty": int((c == EMPTY).sum())}
