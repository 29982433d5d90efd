"""Raw and denoised side by side (or one view with a split slider), zoom and pan linked, for denoise projects.

Why a widget of its own: a denoising project has nothing to paint; the person judges the model by comparing
the noisy image with its denoised version at the same place and zoom, on the same contrast (levels come
from the raw image, so the denoised one is not stretched to look better). :func:`attach` puts it where the
main window's painting canvas was (the canvas stays, hidden, as the loader of each image) and keeps it on
the open image, its Z plane and the current model; nothing else in the window depends on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

if TYPE_CHECKING:
    from .main_window import MainWindow


def _as_zyx(a: np.ndarray | None) -> np.ndarray | None:
    """(Y, X), (Z, Y, X) or (C, Z, Y, X) with C = 1 -> float32 (Z, Y, X)."""
    if a is None:
        return None
    arr = np.asarray(a, np.float32)
    while arr.ndim > 3:
        arr = arr[0]
    return arr[None] if arr.ndim == 2 else arr


class DenoiseView(QWidget):
    """Two linked image panels (raw | denoised) or, with *Split*, one panel whose left part is denoised."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.raw: np.ndarray | None = None  # (Z, Y, X)
        self.denoised: np.ndarray | None = None
        self.z = 0
        self.glw = pg.GraphicsLayoutWidget()
        self.vb_raw = self.glw.addViewBox(row=0, col=0, lockAspect=True, invertY=True)
        self.vb_den = self.glw.addViewBox(row=0, col=1, lockAspect=True, invertY=True)
        self.vb_den.setXLink(self.vb_raw)
        self.vb_den.setYLink(self.vb_raw)
        self.raw_item, self.den_item = pg.ImageItem(), pg.ImageItem()
        self.split_item = pg.ImageItem()  # the denoised part in split mode, drawn over the raw image
        self.vb_raw.addItem(self.raw_item)
        self.vb_raw.addItem(self.split_item)
        self.vb_den.addItem(self.den_item)
        self.split_line = pg.InfiniteLine(angle=90, pen=pg.mkPen((255, 255, 0), width=1))
        self.vb_raw.addItem(self.split_line)
        self.caption = QLabel("no denoised output yet: train and score the project")
        self.split = QCheckBox("Split")
        self.split.setToolTip("one view: denoised left of the line, raw right of it")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 1000)
        self.slider.setValue(500)
        self.slider.setSingleStep(10)  # arrow keys move the line by 1 % of the width, Page Up / Down by 10 %
        self.slider.setPageStep(100)
        self.z_slider = QSlider(Qt.Orientation.Horizontal)
        self.z_slider.setToolTip("Z plane")
        controls = QHBoxLayout()
        controls.addWidget(self.split)
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.z_slider, 1)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.caption)
        box.addWidget(self.glw, 1)
        box.addLayout(controls)
        self.split.toggled.connect(self._layout)
        self.slider.valueChanged.connect(lambda _v: self._draw())
        self.z_slider.valueChanged.connect(self._set_z)
        self._layout(False)

    # ------------------------------------------------------------------ data
    def set_images(self, raw: np.ndarray | None, denoised: np.ndarray | None, caption: str = "") -> None:
        """``raw`` and ``denoised`` as (Y, X) or (Z, Y, X) (a leading channel of 1 is dropped)."""
        self.raw, self.denoised = _as_zyx(raw), _as_zyx(denoised)
        if self.denoised is not None and self.raw is not None and self.denoised.shape != self.raw.shape:
            self.denoised = None  # an output of another image size: never show it misaligned
        n_z = 1 if self.raw is None else self.raw.shape[0]
        self.z = min(self.z, n_z - 1)
        self.z_slider.setRange(0, n_z - 1)
        self.z_slider.setVisible(n_z > 1)
        self.caption.setText(caption or ("raw | denoised" if self.denoised is not None
                                         else "no denoised output yet: train and score the project"))
        self._draw()
        if self.raw is not None:
            self.vb_raw.autoRange(padding=0)

    def levels(self) -> tuple[float, float]:
        """Contrast from the raw image's 1st-99.8th percentiles, used for both panels."""
        if self.raw is None:
            return 0.0, 1.0
        lo, hi = np.percentile(self.raw[self.z], (1.0, 99.8))
        return float(lo), float(max(hi, lo + 1e-6))

    def _set_z(self, z: int) -> None:
        self.z = int(z)
        self._draw()

    def _layout(self, split: bool) -> None:
        self.vb_den.setVisible(not split)
        self.slider.setVisible(split)
        self.split_line.setVisible(split)
        self.split_item.setVisible(split)
        self._draw()

    def _draw(self) -> None:
        if self.raw is None:
            for item in (self.raw_item, self.den_item, self.split_item):
                item.clear()
            return
        levels = self.levels()
        raw = self.raw[self.z]
        self.raw_item.setImage(raw, levels=levels, autoLevels=False)
        den = None if self.denoised is None else self.denoised[self.z]
        if den is None:
            self.den_item.clear()
            self.split_item.clear()
            return
        self.den_item.setImage(den, levels=levels, autoLevels=False)
        if self.split.isChecked():
            cut = round(self.slider.value() / 1000 * raw.shape[1])
            self.split_line.setValue(cut)
            if cut > 0:
                self.split_item.setImage(den[:, :cut], levels=levels, autoLevels=False)
                self.split_item.setRect(0, 0, cut, raw.shape[0])
            else:
                self.split_item.clear()


def denoised_output(window: MainWindow, name: str) -> np.ndarray | None:
    """The current model's denoised output of image ``name`` (from its scores), in raw units when possible."""
    from . import workers

    project = window.project
    path = workers.uncertainty_file(project, project.store.current_model, name)
    if path is None:
        return None
    with np.load(path) as npz:
        if "output" not in npz.files:
            return None
        out = np.asarray(npz["output"], np.float32)
    loaded = window.view.loaded
    if loaded is not None and loaded.record.name == name:
        try:  # back to the image's units, so both panels share one contrast
            from im2im_engine.io import to_spatial
            from im2im_engine.n2v import to_raw_units

            cfg = project.engine_config()
            raw = to_spatial(np.asarray(loaded.data, np.float32), cfg.data.spatial_dims)
            out = to_raw_units(out, raw, cfg)
        except (ValueError, KeyError):
            pass
    return out


#: Window actions that edit a label: a denoise project has none to edit, so they are switched off.
LABEL_ACTIONS = ("undo", "redo", "new_instance", "accept", "brush_smaller", "brush_bigger", "close_polygon",
                 "toggle:labels", "toggle:prediction", "toggle:ignore", "outline")


def attach(window: MainWindow) -> DenoiseView:
    """Put a :class:`DenoiseView` where ``window``'s painting canvas was, following the open image and each
    new model.

    A denoise project has nothing to paint, so the canvas (which still loads each image: the queue, the
    review bar and the Z / channel handling read it) is hidden, the Tools panel and the label-editing
    actions are off, and *Done → next* means "I have looked at this image's output".
    """
    from . import workers

    view = DenoiseView()
    window.view.hide()
    window.central_box.addWidget(view, 1)
    window.docks["Tools"].hide()
    window.docks["Tools"].toggleViewAction().setEnabled(False)
    window.menus["tools"].menuAction().setVisible(False)
    window.reset_menu.menuAction().setVisible(False)
    for action_id, act in window.actions.items():
        if action_id.startswith("tool:") or action_id in LABEL_ACTIONS or action_id.startswith("reset:"):
            act.setEnabled(False)
    review = window.review
    review.reset_button.hide()
    review.source.hide()
    review.done_button.setToolTip("I have looked at this image and its denoised output: mark it done and open "
                                  "the next one in the queue (Ctrl+Enter)")
    window.denoise_view = view
    window.denoise_pending = False

    def refresh(*_args) -> None:
        loaded = window.view.loaded
        if loaded is None:
            return
        name = loaded.record.name
        version = window.project.store.current_model
        window.denoise_pending = True

        def show(out) -> None:
            current = window.view.loaded
            if current is not None and current.record.name == name:
                caption = f"{name}: raw | denoised by v{version}" if out is not None else ""
                view.set_images(current.data[0], None if out is None else out[0], caption)
                view.z_slider.setValue(window.view.z)  # the plane the window opened the stack on
                window.denoise_pending = False

        def failed(exc: BaseException) -> None:
            window.denoise_pending = False
            view.caption.setText(f"{name}: could not read the denoised output: {exc}")

        workers.start(lambda: denoised_output(window, name), on_done=show, on_error=failed)

    window.image_loaded.connect(refresh)
    window.training.model_updated.connect(refresh)
    # one Z plane for both: Page Up / Down (the window's keys) move this view, its slider moves the window's
    window.view.plane_changed.connect(view.z_slider.setValue)
    view.z_slider.valueChanged.connect(window.view.set_z)
    return view
