"""The image view: pyqtgraph image + histogram/LUT, overlays, Z/T/channel controls, pixel readout.

Display settings a person expects from Fiji or napari live here too: contrast per channel (automatic per
image, the image's full range, or the levels the person dragged, kept when switching images), gamma, a
colormap, labels as outlines, the zoom in percent, +/- zoom and a scale bar from the file's pixel size.

Fast-path rules this module keeps (pyqtgraph docs, "ImageItem performance"): row-major arrays, explicit
``levels`` so nothing scans the data, uint8 overlays through a 256-entry LUT, and after an edit only the
touched box of the overlay's uint8 array is recomputed before ``setImage(..., autoLevels=False)``.
Mouse gestures over the image go to a *handler* (the tool controller); the view itself knows no tools.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSpinBox, QToolButton, QVBoxLayout, QWidget
from superqt import QLabeledSlider

from . import overlays
from .workers import LoadedImage

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

Point = tuple[float, float]
OVERLAYS = ("labels", "prediction", "uncertainty", "ignore")
DEFAULT_OPACITY = {"labels": 0.45, "prediction": 0.9, "uncertainty": 0.55, "ignore": 0.5}
#: colormap choices for a single channel: name shown -> pyqtgraph colormap (None: grey)
COLORMAPS = {"grey": None, "viridis": "viridis", "magma": "magma", "inferno": "inferno", "cividis": "cividis",
             "fire": "CET-L3", "green": "green", "magenta": "magenta", "cyan": "cyan"}
_SOLID = {"green": (0, 255, 0), "magenta": (255, 0, 255), "cyan": (0, 255, 255)}
ZOOM_STEP = 1.25


def channel_name(names: list[str], index: int) -> str:
    """The file's name of a channel; readers' made-up names ("Channel:0:0", "C0") become "Channel 1"."""
    name = names[index] if index < len(names) else ""
    if not name or re.fullmatch(r"(Channel:\d+:\d+|C\d+|\d+)", name):
        return f"Channel {index + 1}"
    return name


@dataclass
class Contrast:
    """How a channel's display range is chosen: ``auto`` (percentiles of each image), ``full`` (each image's
    minimum to maximum) or ``manual`` (the levels the person set, kept for every image)."""

    mode: str = "auto"
    levels: tuple[float, float] | None = None


def colormap_lut(name: str, gamma: float = 1.0, n: int = 256) -> np.ndarray:
    """(n, 4) uint8 lookup table: the colormap sampled at ``x ** gamma``."""
    x = np.linspace(0.0, 1.0, n) ** gamma
    key = COLORMAPS.get(name)
    if key is None or key in _SOLID:
        rgb = np.outer(x, np.array(_SOLID.get(key, (255, 255, 255)), float))
        return np.concatenate([rgb, np.full((n, 1), 255.0)], axis=1).astype(np.uint8)
    return pg.colormap.get(key).map(x, mode="byte")


def nice_length(target: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``target`` (scale bar lengths)."""
    if target <= 0:
        return 0.0
    base = 10 ** math.floor(math.log10(target))
    return max(m * base for m in (1, 2, 5) if m * base <= target)


class ScaleBar(pg.ScaleBar):
    """A scale bar in micrometres that picks a round length for the current zoom (about 1/6 of the view)."""

    def __init__(self) -> None:
        super().__init__(size=10, width=4, brush=(255, 255, 255, 220), pen=None, suffix="", offset=(-18, -18))
        self.pixel_um: float | None = None
        self.text.setColor((255, 255, 255))

    def set_pixel_size(self, um: float | None) -> None:
        self.pixel_um = um
        self.setVisible(um is not None)
        self.updateBar()

    def label(self) -> str:
        return self.text.textItem.toPlainText()

    def updateBar(self) -> None:
        view = self.parentItem()
        if view is None or not self.pixel_um:
            return
        visible_px = view.viewRect().width()
        length_um = nice_length(visible_px * self.pixel_um / 6)
        if length_um <= 0:
            return
        self.size = length_um / self.pixel_um
        self.text.setText(f"{length_um:g} µm" if length_um >= 1 else f"{length_um * 1000:g} nm")
        super().updateBar()


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
        self.contrast: dict[int, Contrast] = {}  # per channel index, kept across images
        self.gamma = 1.0
        self.colormap = "grey"
        self.outline_labels = False
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
        self.hist.gradient.showTicks(False)  # the colormap and gamma come from the display controls
        self.hist.sigLevelChangeFinished.connect(lambda _h: self._levels_dragged())
        self.glw.addItem(self.hist, row=0, col=1)
        self.glw.scene().sigMouseMoved.connect(self._mouse_moved)
        self.scale_bar = ScaleBar()
        self.scale_bar.setParentItem(self.vb)
        self.scale_bar.setVisible(False)
        self.zoom_label = QLabel("")
        self.zoom_label.setObjectName("imageInfo")
        self.zoom_label.setToolTip("Zoom: screen pixels per image pixel (+ / − zoom, 0 fits the image)")
        self._zoom_timer = QTimer(self)  # range changes come in bursts while zooming: update once they settle
        self._zoom_timer.setSingleShot(True)
        self._zoom_timer.setInterval(30)
        self._zoom_timer.timeout.connect(self._show_zoom)
        self.vb.sigRangeChanged.connect(lambda *_a: self._zoom_timer.start())
        self.composite_note = QLabel("Composite: contrast per channel; pick a channel to adjust it")
        self.composite_note.setObjectName("imageInfo")
        self.composite_note.setVisible(False)

        self.channel_box = QComboBox()
        self.channel_box.setMinimumWidth(110)
        self.channel_box.setToolTip("Channel to show (C cycles); Composite overlays all channels in colour")
        self.channel_box.currentIndexChanged.connect(lambda i: self._channel_changed(i))
        self.z_slider = QLabeledSlider(Qt.Orientation.Horizontal)
        self.z_slider.setToolTip("Z plane (Page Up / Page Down)")
        self.z_slider.valueChanged.connect(lambda z: self.set_z(z))
        self.t_spin = QSpinBox()
        self.t_spin.setToolTip("Timepoint")
        self.t_spin.valueChanged.connect(lambda t: self.time_changed.emit(t))
        self.zoom_in_button, self.zoom_out_button = QToolButton(), QToolButton()
        for button, text, tip, factor in ((self.zoom_out_button, "−", "Zoom out (−)", 1 / ZOOM_STEP),
                                          (self.zoom_in_button, "+", "Zoom in (+)", ZOOM_STEP)):
            button.setText(text)
            button.setToolTip(tip)
            button.clicked.connect(lambda _c=False, f=factor: self.zoom(f))
        self.info = QLabel("")
        self.info.setObjectName("imageInfo")
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 2, 6, 2)
        self.z_label, self.t_label = QLabel("Z"), QLabel("T")
        for w in (QLabel("Channel"), self.channel_box, self.z_label, self.z_slider, self.t_label, self.t_spin):
            bar.addWidget(w)
        bar.addWidget(self.composite_note)
        bar.addStretch(1)
        bar.addWidget(self.info)
        bar.addWidget(self.zoom_out_button)
        bar.addWidget(self.zoom_label)
        bar.addWidget(self.zoom_in_button)
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
        names = list(loaded.record.channel_names or [])
        if c > 1:
            self.channel_box.addItem("Composite")
        self.channel_box.addItems([channel_name(names, i) for i in range(c)])
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
        self._draw_image()
        self.refresh_overlays()
        if not same_size:
            self.vb.autoRange(padding=0.02)
        self.scale_bar.set_pixel_size(loaded.pixel_size_um)
        self._show_zoom()

    # ------------------------------------------------------------------ contrast, gamma, colormap
    def levels_of(self, channel: int) -> tuple[float, float]:
        """The display range of ``channel`` for the image shown, by that channel's contrast mode."""
        ld = self.loaded
        setting = self.contrast.get(channel, Contrast())
        if setting.mode == "manual" and setting.levels is not None:
            return setting.levels
        if setting.mode == "full" and ld is not None:
            data = ld.data[channel]
            lo, hi = float(data.min()), float(data.max())
            return lo, max(hi, lo + 1e-6)
        return ld.levels[channel] if ld is not None else (0.0, 1.0)

    def set_contrast(self, mode: str) -> None:
        """``auto`` (per image percentiles) or ``full`` (per image min-max) for the channel shown, or for
        every channel in the composite; kept when switching images."""
        if self.loaded is None:
            return
        channels = range(self.loaded.data.shape[0]) if self.channel < 0 else [self.channel]
        for c in channels:
            self.contrast[c] = Contrast(mode)
        self._draw_image()

    def _levels_dragged(self) -> None:
        """The person moved the histogram's levels: keep them for this channel (manual)."""
        if self.loaded is None or self.channel < 0 or self._drawing:
            return
        lo, hi = self.hist.getLevels()
        self.contrast[self.channel] = Contrast("manual", (float(lo), float(hi)))

    def set_gamma(self, gamma: float) -> None:
        self.gamma = float(min(max(gamma, 0.1), 10.0))
        self._draw_image()

    def set_colormap(self, name: str) -> None:
        if name not in COLORMAPS:
            raise ValueError(f"unknown colormap {name!r}")
        self.colormap = name
        self._draw_image()

    _drawing = False

    def _draw_image(self) -> None:
        if self.loaded is None:
            return
        self._drawing = True
        try:
            data = self.loaded.data
            composite = self.channel < 0
            self.hist.setVisible(not composite)
            self.composite_note.setVisible(composite)
            if composite:
                colours = [overlays.CHANNEL_COLOURS[i % len(overlays.CHANNEL_COLOURS)] for i in range(data.shape[0])]
                levels = [self.levels_of(c) for c in range(data.shape[0])]
                rgb = overlays.composite(data[:, self.z], levels, colours, self.gamma)
                self.image_item.setLookupTable(None)
                self.image_item.setImage(rgb, autoLevels=False, levels=(0, 255))
            else:
                plane = data[self.channel, self.z]
                lo, hi = self.levels_of(self.channel)
                self.image_item.setImage(plane, autoLevels=False, levels=(lo, hi))
                lut = colormap_lut(self.colormap, self.gamma)
                positions = np.linspace(0.0, 1.0, 16)
                self.hist.gradient.setColorMap(pg.ColorMap(positions, lut[np.round(positions * 255).astype(int)]))
                self.hist.gradient.showTicks(False)
                self.image_item.setLookupTable(lut)
                self.hist.setLevels(lo, hi)
                self.hist.setHistogramRange(min(float(plane.min()), lo), max(float(plane.max()), hi))
        finally:
            self._drawing = False

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
        self._label_u8 = self._labels_u8(ed.label[self.z])
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
            if self.outline_labels:  # an edit moves the outline up to one pixel outside its box
                h, w = self._label_u8.shape
                y0, y1, x0, x1 = max(y0 - 1, 0), min(y1 + 1, h), max(x0 - 1, 0), min(x1 + 1, w)
                ry0, ry1, rx0, rx1 = max(y0 - 1, 0), min(y1 + 1, h), max(x0 - 1, 0), min(x1 + 1, w)
                ring = self._labels_u8(ed.label[self.z, ry0:ry1, rx0:rx1])
                self._label_u8[y0:y1, x0:x1] = ring[y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0]
            else:
                self._label_u8[y0:y1, x0:x1] = overlays.label_index(ed.label[self.z, y0:y1, x0:x1])
            self._update_overlay_box("labels", self._label_u8, (y0, y1, x0, x1))

    def _labels_u8(self, plane: np.ndarray) -> np.ndarray:
        index = overlays.label_index(plane)
        return index * overlays.outline(plane) if self.outline_labels else index

    def set_outline_labels(self, on: bool) -> None:
        """Labels drawn as outlines only (the image shows through), or filled."""
        self.outline_labels = bool(on)
        self.refresh_overlays()

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
        self._draw_image()

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

    def zoom_percent(self) -> float:
        """Screen pixels per image pixel, in percent."""
        px = self.vb.viewPixelSize()[0]
        return 100.0 / px if px > 0 else 100.0

    def zoom(self, factor: float) -> None:
        """Zoom in (factor > 1) or out around the centre of the view."""
        centre = self.vb.viewRect().center()
        self.vb.scaleBy((1 / factor, 1 / factor), center=centre)
        self._show_zoom()

    def _show_zoom(self) -> None:
        self.zoom_label.setText(f"{self.zoom_percent():.0f}%" if self.loaded is not None else "")

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

