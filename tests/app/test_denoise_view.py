"""The raw | denoised view of denoise projects: linked zoom, shared contrast, split slider, Z planes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")


def test_panels_share_zoom_and_contrast_and_split_shows_both(qtbot):
    from app.gui.denoise_view import DenoiseView

    view = DenoiseView()
    qtbot.addWidget(view)
    rng = np.random.default_rng(0)
    raw = rng.poisson(20, (3, 40, 50)).astype(np.float32)
    view.set_images(raw[None], np.full_like(raw, 20.0), "raw | denoised")
    assert view.z_slider.isVisibleTo(view) and view.z_slider.maximum() == 2
    view.vb_raw.setRange(xRange=(5, 15), yRange=(5, 15), padding=0)
    assert np.allclose(view.vb_den.viewRange(), view.vb_raw.viewRange())  # linked zoom and pan
    lo, hi = view.levels()
    assert tuple(view.den_item.levels) == pytest.approx((lo, hi))  # denoised shown on the raw contrast
    view.split.setChecked(True)
    view.slider.setValue(400)
    assert not view.vb_den.isVisible()
    assert view.split_item.image.shape == (40, 20)  # the left 40 % is the denoised image
    view.z_slider.setValue(2)
    assert view.z == 2


def test_mismatched_or_missing_output_is_not_shown(qtbot):
    from app.gui.denoise_view import DenoiseView

    view = DenoiseView()
    qtbot.addWidget(view)
    view.set_images(np.zeros((30, 30), np.float32), np.zeros((20, 20), np.float32))
    assert view.denoised is None and "no denoised output" in view.caption.text()
    view.set_images(np.zeros((30, 30), np.float32), None)
    assert view.den_item.image is None
