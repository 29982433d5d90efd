"""The queue: images ranked by the active strategy, with score, thumbnail and state.

Ranking is :func:`annotation.loop.queue` (DB only, run on a worker so a big project never stalls the
window); thumbnails are made on a worker too and cached per image id for the session.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from annotation import loop
from annotation.project import Project
from annotation.strategies import STRATEGIES

from . import workers

STATE_COLOURS = {"pseudo": "#9e9e9e", "predicted": "#4fc3f7", "corrected": "#81c784"}
THUMB = 48


def to_icon(thumb: np.ndarray | None) -> QIcon:
    if thumb is None:
        return QIcon()
    arr = np.ascontiguousarray(thumb)
    image = QImage(arr.data, arr.shape[1], arr.shape[0], arr.strides[0], QImage.Format.Format_Grayscale8)
    return QIcon(QPixmap.fromImage(image.copy()))


class QueuePanel(QWidget):
    """Ranked list; emits ``image_selected`` when the user picks an image (click, next, previous)."""

    image_selected = Signal(int)
    refreshed = Signal()

    def __init__(self, project: Project, parent: QWidget | None = None):
        super().__init__(parent)
        self.project = project
        self.entries: list[loop.QueueEntry] = []
        self.current: int | None = None
        self._thumbs: dict[int, QIcon] = {}
        self._thumbs_pending: set[int] = set()
        self._generation = 0

        self.strategy = QComboBox()
        self.strategy.addItems(list(STRATEGIES))
        self.strategy.setCurrentText(project.loop.strategy)
        self.strategy.setToolTip("How images are ranked: most useful to correct first")
        self.state = QComboBox()
        self.state.addItems(["all", "pseudo", "predicted", "corrected"])
        self.state.setToolTip("Show only images in this state")
        for box in (self.strategy, self.state):
            box.currentIndexChanged.connect(self.refresh)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["#", "Image", "Score", "State"])
        self.table.verticalHeader().hide()
        self.table.setIconSize(QSize(THUMB, THUMB))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setDefaultSectionSize(THUMB + 6)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for col in (0, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.cellClicked.connect(lambda row, _col: self._select_row(row))
        self.prev_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.prev_button.setToolTip("Previous image in the queue (, or Ctrl+Left)")
        self.next_button.setToolTip("Next image in the queue (. or Ctrl+Right)")
        self.prev_button.clicked.connect(self.previous)
        self.next_button.clicked.connect(self.next)
        self.summary = QLabel("")
        self.summary.setObjectName("muted")

        top = QHBoxLayout()
        top.addWidget(QLabel("Rank by"))
        top.addWidget(self.strategy, 1)
        top.addWidget(QLabel("Show"))
        top.addWidget(self.state)
        nav = QHBoxLayout()
        nav.addWidget(self.prev_button)
        nav.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)
        layout.addLayout(nav)

    # ------------------------------------------------------------------ data
    def refresh(self) -> None:
        """Re-rank on a worker (after a new model, a strategy/filter change, or a correction)."""
        self._generation += 1
        generation = self._generation
        strategy = self.strategy.currentText()
        state = None if self.state.currentText() == "all" else self.state.currentText()
        workers.start(loop.queue, self.project, strategy, state,
                      on_done=lambda entries: self._show(entries, generation))

    def refresh_now(self) -> None:
        """Synchronous variant (first load, tests)."""
        state = None if self.state.currentText() == "all" else self.state.currentText()
        self._show(loop.queue(self.project, self.strategy.currentText(), state), self._generation)

    def _show(self, entries: list[loop.QueueEntry], generation: int) -> None:
        if generation != self._generation:
            return  # a newer refresh is on its way
        self.entries = entries
        # One layout pass for the whole fill instead of one per item (10,000 rows x 4 items).
        self.table.setUpdatesEnabled(False)
        self.table.blockSignals(True)
        try:
            self._fill(entries)
        finally:
            self.table.blockSignals(False)
            self.table.setUpdatesEnabled(True)
        counts = {s: sum(e.state == s for e in entries) for s in STATE_COLOURS}
        self.summary.setText(f"{len(entries)} images · " + " · ".join(f"{n} {s}" for s, n in counts.items()))
        self._highlight()
        self._load_thumbnails()
        self.refreshed.emit()

    def _fill(self, entries: list[loop.QueueEntry]) -> None:
        self.table.setRowCount(len(entries))
        for row, e in enumerate(entries):
            name = QTableWidgetItem(self._thumbs.get(e.image_id, QIcon()), e.name)
            name.setData(Qt.ItemDataRole.UserRole, e.image_id)
            name.setToolTip(f"{e.name} (id {e.image_id})")
            score = QTableWidgetItem("—" if e.score is None else f"{e.score:.4g}")
            score.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            state = QTableWidgetItem(e.state)
            state.setForeground(QColor(STATE_COLOURS.get(e.state, "#ccc")))
            self.table.setItem(row, 0, QTableWidgetItem(str(e.rank + 1)))
            self.table.setItem(row, 1, name)
            self.table.setItem(row, 2, score)
            self.table.setItem(row, 3, state)

    def _load_thumbnails(self) -> None:
        missing = [e.image_id for e in self.entries
                   if e.image_id not in self._thumbs and e.image_id not in self._thumbs_pending]
        if not missing:
            return
        self._thumbs_pending.update(missing)
        records = {r.id: r for r in self.project.store.images()}

        def make_all():
            for image_id in missing:
                if image_id in records:
                    yield workers.make_thumbnail(records[image_id], THUMB)

        worker = workers.start(make_all)
        worker.yielded.connect(self._thumbnail_ready)

    def _thumbnail_ready(self, item: tuple[int, np.ndarray | None]) -> None:
        image_id, thumb = item
        self._thumbs_pending.discard(image_id)
        self._thumbs[image_id] = icon = to_icon(thumb)
        row = self.row_of(image_id)
        if row is not None:
            self.table.item(row, 1).setIcon(icon)

    # ------------------------------------------------------------------ navigation
    def row_of(self, image_id: int | None) -> int | None:
        for row, e in enumerate(self.entries):
            if e.image_id == image_id:
                return row
        return None

    def set_current(self, image_id: int) -> None:
        self.current = image_id
        self._highlight()

    def _highlight(self) -> None:
        row = self.row_of(self.current)
        self.table.blockSignals(True)
        if row is None:
            self.table.clearSelection()
        else:
            self.table.selectRow(row)
            self.table.scrollToItem(self.table.item(row, 0))
        self.table.blockSignals(False)

    def _select_row(self, row: int) -> None:
        if 0 <= row < len(self.entries):
            self.current = self.entries[row].image_id
            self._highlight()
            self.image_selected.emit(self.current)

    def next(self) -> None:
        self._step(+1)

    def previous(self) -> None:
        self._step(-1)

    def _step(self, delta: int) -> None:
        if not self.entries:
            return
        row = self.row_of(self.current)
        row = 0 if row is None else min(max(row + delta, 0), len(self.entries) - 1)
        if self.entries[row].image_id != self.current:
            self._select_row(row)

    def first_image(self) -> int | None:
        return self.entries[0].image_id if self.entries else None

    def mark(self, image_id: int, state: str) -> None:
        """Show a new state at once (e.g. corrected after the first stroke) without re-ranking."""
        row = self.row_of(image_id)
        if row is None or self.entries[row].state == state:
            return
        self.entries[row].state = state
        item = self.table.item(row, 3)
        item.setText(state)
        item.setForeground(QColor(STATE_COLOURS.get(state, "#ccc")))
