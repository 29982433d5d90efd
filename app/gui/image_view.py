"""The image view: pyqtgraph image + histogram/LUT, overlays, Z/T/channel controls, pixel readout.

Fast-path rules this module keeps (pyqtgraph docs, "ImageItem performance"): row-major arrays, explicit
``levels`` so nothing scans the data, uint8 overlays through a 256-entry LUT, and after an edit only the
touched box of the overlay's uint8 array is recomputed before ``setImage(..., autoLevels=False)``.
Mouse gestures over the image go to a *handler* (the tool controller); the view itself knows no tools.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget
from superqt import QLabeledSlider

from . import overlays
from .workers import LoadedImage

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

Point = tuple[float, float]
OVERLAYS = ("labels", "prediction", "uncertainty", "ignore")
DEFAULT_OPACITY = {"labels": 0.45, "prediction": 0.9, "uncertainty": 0.55, "ignore": 0.5}


class GestureHandler(Protocol):
    def wants_drag(self) -> bool: ...
    def drag_start(self, p: Point, modifiers: Qt.KeyboardModifier) -> None: ...
    def drag_move(self, p: Point) -> None: ...
    def drag_end(self) -> None: ...
    def click(self, p: Point, double: bool, modifiers: Qt.KeyboardModifier) -> bool: ...


class InputCanvas(pg.GraphicsObject):
    """An invisible item over the whole image that turns left-button gestures into tool calls.

    Why a separate item: overlays may be hidden, and hidden items get no mouse events. Gestures the
    handler does not want are ignored, so the ViewBox still pans (middle/right drag, pan tool) and zooms.
    """

    def __init__(self) -> None:
        super().__init__()
        self._rect = QRectF(0, 0, 1, 1)
        self.handler: GestureHandler | None = None
        self.setZValue(100)

    def set_size(self, height: int, width: int) -> None:
        self.prepareGeometryChange()
        self._rect = QRectF(0, 0, width, height)

    def boundingRect(self) -> QRectF:
        return self._rect

    def paint(self, painter, *args) -> None:
        return None

    @staticmethod
    def _point(pos: QPointF) -> Point:
        return (float(pos.y()), float(pos.x()))

    def mouseDragEvent(self, ev) -> None:
        h = self.handler
        if h is None or ev.button() != Qt.MouseButton.LeftButton or not h.wants_drag():
            ev.ignore()
            return
        ev.accept()
        if ev.isStart():
            h.drag_start(self._point(ev.buttonDownPos()), ev.modifiers())
        h.drag_move(self._point(ev.pos()))
        if ev.isFinish():
            h.drag_end()

    def mouseClickEvent(self, ev) -> None:
        h = self.handler
        if h is None or ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        if h.click(self._point(ev.pos()), ev.double(), ev.modifiers()):
            ev.accept()
        else:
            ev.ignore()


class ImageView(QWidget):
    """Shows one :class:`LoadedImage` with its overlays; emits the pixel readout and plane changes."""

    readout = Signal(str)
    plane_changed = Signal(int)  # z
    time_changed = Signal(int)  # t (the window reloads the image)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.loaded: LoadedImage | None = None
        self.task = "semantic"
        self.z = 0
        self.channel = -1  # -1: composite (or the only channel)
        self._hover: Point | None = None
        self._label_u8 = np.zeros((1, 1), np.uint8)
        self._ignore_u8 = np.zeros((1, 1), np.uint8)
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setBackground("#1e1e1e")
        self.vb = self.glw.addViewBox(row=0, col=0, lockAspect=True, invertY=True, enableMenu=False)
        self.image_item = pg.ImageItem()
        self.vb.addItem(self.image_item)
        self.items: dict[str, pg.ImageItem] = {}
        for z, name in enumerate(("uncertainty", "prediction", "labels", "ignore"), start=1):
            item = pg.ImageItem()
            item.setZValue(z)
            item.setOpacity(DEFAULT_OPACITY[name])
            self.vb.addItem(item)
            self.items[name] = item
        self.luts = {"labels": overlays.class_lut(), "prediction": overlays.single_colour_lut((255, 235, 60)),
                     "uncertainty": overlays.heat_lut(), "ignore": overlays.single_colour_lut((255, 40, 160))}
        self.canvas = InputCanvas()
        self.vb.addItem(self.canvas)
        self.cursor = pg.QtWidgets.QGraphicsEllipseItem(0, 0, 1, 1)
        self.cursor.setPen(pg.mkPen((255, 255, 255, 200), width=1, cosmetic=True))
        self.cursor.setZValue(101)
        self.cursor.setVisible(False)
        self.vb.addItem(self.cursor, ignoreBounds=True)
        self.path = pg.PlotDataItem(pen=pg.mkPen((255, 255, 0), width=2, style=Qt.PenStyle.DashLine))
        self.path.setZValue(102)
        self.vb.addItem(self.path, ignoreBounds=True)
        self.hist = pg.HistogramLUTItem(image=self.image_item)
        self.hist.setMaximumWidth(130)
        self.glw.addItem(self.hist, row=0, col=1)
        self.glw.scene().sigMouseMoved.connect(self._mouse_moved)

        self.channel_box = QComboBox()
        self.channel_box.setMinimumWidth(110)
        self.channel_box.setToolTip("Channel to show (C cycles); Composite overlays all channels in colour")
        self.channel_box.currentIndexChanged.connect(self._channel_changed)
        self.z_slider = QLabeledSlider(Qt.Orientation.Horizontal)
        self.z_slider.setToolTip("Z plane (Page Up / Page Down)")
        self.z_slider.valueChanged.connect(self.set_z)
        self.t_spin = QSpinBox()
        self.t_spin.setToolTip("Timepoint")
        self.t_spin.valueChanged.connect(self.time_changed)
        self.info = QLabel("")
        self.info.setObjectName("imageInfo")
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 2, 6, 2)
        self.z_label, self.t_label = QLabel("Z"), QLabel("T")
        for w in (QLabel("Channel"), self.channel_box, self.z_label, self.z_slider, self.t_label, self.t_spin):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.info)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.glw, 1)
        layout.addLayout(bar)

    # ------------------------------------------------------------------ data
    @property
    def editor(self):
        return None if self.loaded is None else self.loaded.editor

    def set_image(self, loaded: LoadedImage, task: str) -> None:
        """Show a newly loaded image; keeps the zoom if the new image has the same size."""
        same_size = self.loaded is not None and self.loaded.data.shape[-2:] == loaded.data.shape[-2:]
        self.loaded, self.task = loaded, task
        self.luts["labels"] = overlays.instance_lut() if task == "instance" else overlays.class_lut()
        c, nz, h, w = loaded.data.shape
        n_t = loaded.record.shape[0]
        self.canvas.set_size(h, w)
        self.channel_box.blockSignals(True)
        self.channel_box.clear()
        names = loaded.record.channel_names or [f"C{i}" for i in range(c)]
        if c > 1:
            self.channel_box.addItem("Composite")
        self.channel_box.addItems(names[:c])
        self.channel_box.setCurrentIndex(0)
        self.channel = -1 if c > 1 else 0
        self.channel_box.setEnabled(c > 1)
        self.channel_box.blockSignals(False)
        self.z_slider.blockSignals(True)
        self.z_slider.setRange(0, nz - 1)
        self.z = min(self.z, nz - 1) if same_size else nz // 2
        self.z_slider.setValue(self.z)
        self.z_slider.blockSignals(False)
        for w_ in (self.z_slider, self.z_label):
            w_.setVisible(nz > 1)
        self.t_spin.blockSignals(True)
        self.t_spin.setRange(0, n_t - 1)
        self.t_spin.setValue(loaded.t)
        self.t_spin.blockSignals(False)
        for w_ in (self.t_spin, self.t_label):
            w_.setVisible(n_t > 1)
        dims = f"{w}×{h}" + (f"×{nz}" if nz > 1 else "") + f", {c} ch, {loaded.record.dtype}"
        self.info.setText(f"{loaded.record.name}  ({dims})")
        self._draw_image(reset_levels=True)
        self.refresh_overlays()
        if not same_size:
            self.vb.autoRange(padding=0.02)

    def _draw_image(self, reset_levels: bool = False) -> None:
        if self.loaded is None:
            return
        data, levels = self.loaded.data, self.loaded.levels
        if self.channel < 0:
            colours = [overlays.CHANNEL_COLOURS[i % len(overlays.CHANNEL_COLOURS)] for i in range(data.shape[0])]
            rgb = overlays.composite(data[:, self.z], levels, colours)
            self.image_item.setImage(rgb, autoLevels=False, levels=(0, 255))
            self.hist.setLevels(0, 255)
        else:
            plane = data[self.channel, self.z]
            if reset_levels:
                lo, hi = levels[self.channel]
            else:
                lo, hi = self.image_item.getLevels() if self.image_item.getLevels() is not None else levels[0]
            self.image_item.setImage(plane, autoLevels=False, levels=(lo, hi))
            self.hist.setLevels(lo, hi)
            self.hist.setHistogramRange(float(plane.min()), float(plane.max()))

    def _set_overlay(self, name: str, array: np.ndarray | None) -> None:
        item = self.items[name]
        if array is None:
            item.clear()
            return
        item.setImage(array, autoLevels=False, levels=(0, 255), lut=self.luts[name])

    def refresh_overlays(self) -> None:
        """Recompute every overlay for the current plane (image switch, Z change, new prediction)."""
        ld = self.loaded
        if ld is None:
            return
        ed = ld.editor
        self._label_u8 = overlays.label_index(ed.label[self.z])
        self._ignore_u8 = (ed.ignore[self.z] > 0).astype(np.uint8)
        self._set_overlay("labels", self._label_u8)
        self._set_overlay("ignore", self._ignore_u8)
        pred = ld.prediction
        self._set_overlay("prediction", None if pred is None else overlays.outline(pred[self.z]))
        unc = ld.uncertainty
        self._set_overlay("uncertainty", None if unc is None else overlays.to_uint8(unc[self.z]))

    def refresh_box(self, box: tuple[int, ...] | None, version: str = "corrected") -> None:
        """Redraw only the region an edit touched (if it is on the shown plane)."""
        if box is None or self.loaded is None:
            return
        z0, z1, y0, y1, x0, x1 = box
        if not z0 <= self.z < z1:
            return
        ed = self.loaded.editor
        if version == "ignore":
            self._ignore_u8[y0:y1, x0:x1] = ed.ignore[self.z, y0:y1, x0:x1] > 0
            self._update_overlay_box("ignore", self._ignore_u8, (y0, y1, x0, x1))
        else:
            self._label_u8[y0:y1, x0:x1] = overlays.label_index(ed.label[self.z, y0:y1, x0:x1])
            self._update_overlay_box("labels", self._label_u8, (y0, y1, x0, x1))

    def _update_overlay_box(self, name: str, array: np.ndarray, yx: tuple[int, int, int, int]) -> None:
        """Show an in-place change of an overlay's uint8 array, repainting only the changed box.

        Why not ``setImage``: it invalidates the whole item, so every mouse move repainted the whole
        viewport (every overlay and the image, rescaled): 10-40 ms at 4096². The uint8 + LUT image becomes
        an Indexed8 QImage over the same buffer without per-pixel work, so marking it for re-render and
        updating the box's rectangle costs well under a millisecond. Falls back to ``setImage`` when the
        item does not show this array (or a pyqtgraph without ``_renderRequired``).
        """
        item = self.items[name]
        if item.image is not array or not hasattr(item, "_renderRequired"):
            self._set_overlay(name, array)
            return
        y0, y1, x0, x1 = yx
        item._renderRequired = True
        item.update(QRectF(x0, y0, x1 - x0, y1 - y0))

    def set_prediction(self, prediction: np.ndarray | None, uncertainty: np.ndarray | None) -> None:
        if self.loaded is not None:
            self.loaded.prediction, self.loaded.uncertainty = prediction, uncertainty
            self.refresh_overlays()

    # ------------------------------------------------------------------ controls
    def set_z(self, z: int) -> None:
        if self.loaded is None:
            return
        z = int(np.clip(z, 0, self.loaded.data.shape[1] - 1))
        if z == self.z and self.z_slider.value() == z:
            return
        self.z = z
        self.z_slider.blockSignals(True)
        self.z_slider.setValue(z)
        self.z_slider.blockSignals(False)
        self._draw_image()
        self.refresh_overlays()
        self.plane_changed.emit(z)

    def step_z(self, delta: int) -> None:
        self.set_z(self.z + delta)

    def _channel_changed(self, index: int) -> None:
        if self.loaded is None or index < 0:
            return
        multi = self.loaded.data.shape[0] > 1
        self.channel = index - 1 if multi else index
        self._draw_image(reset_levels=True)

    def cycle_channel(self) -> None:
        n = self.channel_box.count()
        if n > 1:
            self.channel_box.setCurrentIndex((self.channel_box.currentIndex() + 1) % n)

    def set_overlay_visible(self, name: str, visible: bool) -> None:
        self.items[name].setVisible(visible)

    def set_overlay_opacity(self, name: str, opacity: float) -> None:
        self.items[name].setOpacity(opacity)

    def reset_view(self) -> None:
        self.vb.autoRange(padding=0.02)

    # ------------------------------------------------------------------ cursor, path, readout
    def set_cursor(self, diameter: float | None) -> None:
        """Brush outline of ``diameter`` pixels following the mouse (None hides it)."""
        self._cursor_d = diameter
        self.cursor.setVisible(diameter is not None and self._hover is not None)
        self._place_cursor()

    def _place_cursor(self) -> None:
        d = getattr(self, "_cursor_d", None)
        if d is None or self._hover is None:
            return
        y, x = self._hover
        cy, cx = np.floor(y) + 0.5, np.floor(x) + 0.5
        self.cursor.setRect(cx - d / 2, cy - d / 2, d, d)

    def set_path(self, points: list[Point], closed: bool = False) -> None:
        if not points:
            self.path.setData([], [])
            return
        pts = [*points, points[0]] if closed else points
        self.path.setData([p[1] for p in pts], [p[0] for p in pts])

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        if self.loaded is None or not self.vb.sceneBoundingRect().contains(scene_pos):
            return
        p = self.vb.mapSceneToView(scene_pos)
        self._hover = (p.y(), p.x())
        self.cursor.setVisible(getattr(self, "_cursor_d", None) is not None)
        self._place_cursor()
        self.readout.emit(self.readout_text(p.y(), p.x()))

    def readout_text(self, y: float, x: float) -> str:
        """'x, y, z | value | label | prediction | uncertainty' under the mouse, or '' outside."""
        ld = self.loaded
        if ld is None:
            return ""
        iy, ix = int(np.floor(y)), int(np.floor(x))
        _, nz, h, w = ld.data.shape
        if not (0 <= iy < h and 0 <= ix < w):
            return ""
        values = ld.data[:, self.z, iy, ix]
        vals = ", ".join(f"{v:.4g}" for v in values.tolist())
        parts = [f"x {ix}  y {iy}" + (f"  z {self.z}" if nz > 1 else ""), f"value {vals}",
                 f"label {int(ld.editor.label[self.z, iy, ix])}"]
        if ld.editor.ignore[self.z, iy, ix]:
            parts.append("ignored")
        if ld.prediction is not None:
            parts.append(f"prediction {int(ld.prediction[self.z, iy, ix])}")
        if ld.uncertainty is not None:
            parts.append(f"uncertainty {float(ld.uncertainty[self.z, iy, ix]):.3f}")
        return "   |   ".join(parts)

    # ------------------------------------------------------------------ for tests and scripts
    def image_to_widget(self, y: float, x: float) -> QPoint:
        """Viewport coordinates of the centre of pixel (y, x): where a test clicks to hit that pixel."""
        scene = self.vb.mapViewToScene(QPointF(x + 0.5, y + 0.5))
        return self.glw.mapFromScene(scene)

