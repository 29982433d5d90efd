"""Left-hand panels: the tool palette (tools, brush size, label value) and the overlay layers."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledSlider

from .image_view import DEFAULT_OPACITY, OVERLAYS
from .tools import TOOLS, ToolController

OVERLAY_TEXT = {"labels": "Labels", "prediction": "Prediction (outline)", "uncertainty": "Uncertainty",
                "ignore": "Ignore mask"}


class ToolPanel(QWidget):
    """Tool buttons bound to a :class:`ToolController`, plus the one-shot actions."""

    action = Signal(str)  # "undo", "redo", "new_instance", "accept"

    def __init__(self, tools: ToolController, parent: QWidget | None = None):
        super().__init__(parent)
        self.tools = tools
        self.buttons: dict[str, QToolButton] = {}
        grid = QGridLayout()
        grid.setSpacing(3)
        for i, (tool, (label, key, desc)) in enumerate(TOOLS.items()):
            b = QToolButton()
            b.setText(f"{label}  ({key})")
            b.setToolTip(f"{label} — {desc}  [{key}]")
            b.setCheckable(True)
            b.setAutoExclusive(True)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            b.setSizePolicy(b.sizePolicy().horizontalPolicy().Expanding, b.sizePolicy().verticalPolicy())
            b.clicked.connect(lambda _=False, t=tool: tools.set_tool(t))
            grid.addWidget(b, i // 2, i % 2)
            self.buttons[tool] = b
        self.size = QLabeledSlider(Qt.Orientation.Horizontal)
        self.size.setRange(1, 101)
        self.size.setValue(tools.size)
        self.size.setToolTip("Brush diameter in pixels ([ and ])")
        self.size.valueChanged.connect(tools.set_size)
        self.value = QSpinBox()
        self.value.setRange(0, 2**31 - 1 if tools.max_value is None else tools.max_value)
        self.value.setValue(tools.value)
        self.value.setToolTip("Label value the brush, fill and polygon paint (1–9 keys, picker, N)")
        self.value.valueChanged.connect(lambda v: v != tools.value and tools.set_value(v))
        self.swatch = QLabel()
        self.swatch.setFixedSize(18, 18)
        form = QGridLayout()
        form.addWidget(QLabel("Size"), 0, 0)
        form.addWidget(self.size, 0, 1, 1, 2)
        form.addWidget(QLabel("Label"), 1, 0)
        form.addWidget(self.value, 1, 1)
        form.addWidget(self.swatch, 1, 2)
        actions = QGridLayout()
        for i, (name, text, tip) in enumerate([
            ("new_instance", "New instance", "N"), ("accept", "Accept prediction", "Ctrl+Shift+A"),
            ("undo", "↶ Undo", "Ctrl+Z"), ("redo", "↷ Redo", "Ctrl+Shift+Z"),
        ]):
            b = QPushButton(text)
            b.setToolTip(f"{text} [{tip}]")
            b.clicked.connect(lambda _=False, n=name: self.action.emit(n))
            actions.addWidget(b, i // 2, i % 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(grid)
        layout.addLayout(form)
        layout.addLayout(actions)
        tools.tool_changed.connect(self._tool_changed)
        tools.size_changed.connect(self._size_changed)
        tools.value_changed.connect(self._value_changed)
        self._tool_changed(tools.tool)

    def _tool_changed(self, tool: str) -> None:
        self.buttons[tool].setChecked(True)

    def _size_changed(self, size: int) -> None:
        if self.size.value() != size:
            self.size.setValue(size)

    def _value_changed(self, value: int) -> None:
        if self.value.value() != value:
            self.value.setValue(value)

    def set_colour(self, rgba) -> None:
        pix = QPixmap(18, 18)
        pix.fill(QColor(*[int(c) for c in rgba[:3]]) if rgba[3] else QColor(0, 0, 0, 0))
        self.swatch.setPixmap(pix)


class LayerPanel(QGroupBox):
    """A checkbox and an opacity slider per overlay."""

    visibility = Signal(str, bool)
    opacity = Signal(str, float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Overlays", parent)
        self.checks: dict[str, QCheckBox] = {}
        self.sliders: dict[str, QLabeledSlider] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        keys = {"labels": "L", "prediction": "R", "uncertainty": "U", "ignore": "I"}
        for name in OVERLAYS:
            row = QHBoxLayout()
            check = QCheckBox(f"{OVERLAY_TEXT[name]} ({keys[name]})")
            check.setChecked(True)
            check.toggled.connect(lambda on, n=name: self.visibility.emit(n, on))
            slider = QLabeledSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, 100)
            slider.setValue(int(DEFAULT_OPACITY[name] * 100))
            slider.setToolTip(f"{OVERLAY_TEXT[name]} opacity (%)")
            slider.valueChanged.connect(lambda v, n=name: self.opacity.emit(n, v / 100))
            row.addWidget(check, 3)
            row.addWidget(slider, 2)
            layout.addLayout(row)
            self.checks[name], self.sliders[name] = check, slider

    def toggle(self, name: str) -> None:
        self.checks[name].toggle()

    def set_available(self, name: str, available: bool) -> None:
        """Grey out an overlay that has no data for this image (e.g. no model yet)."""
        self.checks[name].setEnabled(available)
        self.sliders[name].setEnabled(available)
        tip = "" if available else "nothing to show yet (train and score a model)"
        self.checks[name].setToolTip(tip)
