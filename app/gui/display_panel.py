"""Left-hand display controls: contrast (automatic / full range), gamma, colormap, labels as outlines; and
the label list with the size of every label of the image shown."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .image_view import COLORMAPS, ImageView


class DisplayPanel(QGroupBox):
    """Buttons and fields bound to an :class:`ImageView`'s display settings."""

    def __init__(self, view: ImageView, parent: QWidget | None = None):
        super().__init__("Display", parent)
        self.view = view
        self.auto_button = QPushButton("Auto contrast")
        self.auto_button.setToolTip("Contrast from each image's 0.5–99.8 percentiles, for this channel (A)")
        self.full_button = QPushButton("Full range")
        self.full_button.setToolTip("Contrast from each image's minimum to maximum, for this channel")
        self.auto_button.clicked.connect(lambda: view.set_contrast("auto"))
        self.full_button.clicked.connect(lambda: view.set_contrast("full"))
        self.gamma = QDoubleSpinBox()
        self.gamma.setRange(0.1, 5.0)
        self.gamma.setSingleStep(0.1)
        self.gamma.setDecimals(2)
        self.gamma.setValue(view.gamma)
        self.gamma.setToolTip("Gamma: below 1 brightens dim structures, above 1 darkens them")
        self.gamma.valueChanged.connect(lambda g: view.set_gamma(g))
        self.colormap = QComboBox()
        self.colormap.addItems(list(COLORMAPS))
        self.colormap.setCurrentText(view.colormap)
        self.colormap.setToolTip("Colormap of a single channel (the composite keeps each channel's colour)")
        self.colormap.currentTextChanged.connect(lambda name: view.set_colormap(name))
        self.outlines = QCheckBox("Labels as outlines (O)")
        self.outlines.setToolTip("Draw the labels as outlines only, so the image shows through")
        self.outlines.toggled.connect(lambda on: view.set_outline_labels(on))
        self.kept = QLabel("Contrast you set is kept per channel when you switch images.")
        self.kept.setObjectName("muted")
        self.kept.setWordWrap(True)
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 6, 6, 6)
        grid.addWidget(self.auto_button, 0, 0)
        grid.addWidget(self.full_button, 0, 1)
        grid.addWidget(QLabel("Gamma"), 1, 0)
        grid.addWidget(self.gamma, 1, 1)
        grid.addWidget(QLabel("Colormap"), 2, 0)
        grid.addWidget(self.colormap, 2, 1)
        grid.addWidget(self.outlines, 3, 0, 1, 2)
        grid.addWidget(self.kept, 4, 0, 1, 2)


class LabelList(QGroupBox):
    """Every label of the image with its colour and size in pixels; a click paints with that label.

    Counting is ``np.bincount`` over the label (milliseconds at 2048²) and waits until edits pause.
    """

    picked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Labels in this image", parent)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Label", "Pixels"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(120)
        self.table.setMaximumHeight(220)
        self.table.cellClicked.connect(lambda row, _col: self._clicked(row))
        self.total = QLabel("")
        self.total.setObjectName("muted")
        box = QVBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(self.table)
        box.addWidget(self.total)
        self._label: np.ndarray | None = None
        self._lut: np.ndarray | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self._count)
        self.ids: list[int] = []

    def show_label(self, label: np.ndarray | None, lut: np.ndarray | None, now: bool = False) -> None:
        """Count ``label`` (its current values) soon, or ``now``."""
        self._label, self._lut = label, lut
        if now:
            self._count()
        else:
            self._timer.start()

    def _count(self) -> None:
        label = self._label
        if label is None:
            self.table.setRowCount(0)
            self.total.setText("")
            return
        counts = np.bincount(label.ravel()) if label.size else np.zeros(1, np.int64)
        ids = [int(i) for i in np.flatnonzero(counts) if i > 0]
        self.ids = ids
        self.table.setRowCount(len(ids))
        for row, i in enumerate(ids):
            name = QTableWidgetItem(f"  {i}")
            if self._lut is not None:
                r, g, b, _a = (int(v) for v in self._lut[(i - 1) % 255 + 1])
                name.setForeground(QColor(r, g, b))
            name.setData(Qt.ItemDataRole.UserRole, i)
            size = QTableWidgetItem(f"{int(counts[i]):,}")
            size.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, 0, name)
            self.table.setItem(row, 1, size)
        labelled = int(counts[1:].sum()) if counts.size > 1 else 0
        self.total.setText(f"{len(ids)} label{'s' if len(ids) != 1 else ''}, "
                           f"{100 * labelled / max(label.size, 1):.1f}% of the pixels labelled")

    def sizes(self) -> dict[int, int]:
        """{label: pixels} as shown (tests)."""
        return {int(self.table.item(r, 0).data(Qt.ItemDataRole.UserRole)): int(self.table.item(r, 1).text().replace(",", ""))
                for r in range(self.table.rowCount())}

    def _clicked(self, row: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            self.picked.emit(int(item.data(Qt.ItemDataRole.UserRole)))
