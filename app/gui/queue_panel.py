"""The queue: images ranked by the active strategy, with score, thumbnail and review state.

Ranking is :func:`annotation.session.queue` (DB only, always run on a worker: ranking by diversity takes a
while on a big project, and the window must never wait for it). It ranks by the newest model whose scoring
finished, so a stopped scoring leaves the previous ranking in place. The review states and the counters
come from the store after every save (:meth:`QueuePanel.set_state`): one source of truth. The table is a model/view pair: Qt asks only for the rows on screen, so a 10,000-image queue costs
the same to show as a 10-image one, and thumbnails are made (on a worker, cached per image id) only for rows
that are actually displayed.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from annotation import loop, session, strategies
from annotation.project import Project

from . import workers
from .errors import in_words

STATE_COLOURS = {"untouched": "#9e9e9e", "in_progress": "#ffb74d", "done": "#81c784"}
STATE_WORDS = {"untouched": "untouched", "in_progress": "in progress", "done": "✓ done"}
THUMB = 48


def score_decimals(scores: list[float | None]) -> int:
    """One precision for the whole Score column (so its decimals line up): three decimals, more when the
    largest score is small, so it keeps three significant digits (a denoise project's TTA variances of
    0.0003 must not read 0.000 on every row); at most 8."""
    top = max((abs(s) for s in scores if s is not None), default=0.0)
    if top <= 0 or not math.isfinite(top):
        return 3
    return int(min(8, max(3, 2 - math.floor(math.log10(top)))))
Index = QModelIndex | QPersistentModelIndex


def to_icon(thumb: np.ndarray | None) -> QIcon:
    if thumb is None:
        return QIcon()
    arr = np.ascontiguousarray(thumb)
    image = QImage(arr.data, arr.shape[1], arr.shape[0], arr.strides[0], QImage.Format.Format_Grayscale8)
    return QIcon(QPixmap.fromImage(image.copy()))


class QueueModel(QAbstractTableModel):
    """The ranked entries as a Qt table model; asks for a thumbnail the first time a row is painted."""

    HEADERS = ("#", "Image", "Score", "State")

    def __init__(self, want_thumbnail, parent=None):
        super().__init__(parent)
        self.entries: list[loop.QueueEntry] = []
        self.decimals = 3  # of the Score column, from its largest score (score_decimals)
        self.icons: dict[int, QIcon] = {}
        self._want_thumbnail = want_thumbnail

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        e = self.entries[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (str(e.rank + 1), e.name, "—" if e.score is None else f"{e.score:.{self.decimals}f}",
                    STATE_WORDS.get(e.state, e.state))[col]
        if role == Qt.ItemDataRole.DecorationRole and col == 1:
            icon = self.icons.get(e.image_id)
            if icon is None:
                self._want_thumbnail(e.image_id)
            return icon
        if role == Qt.ItemDataRole.ForegroundRole and col == 3:
            return QColor(STATE_COLOURS.get(e.state, "#ccc"))
        if role == Qt.ItemDataRole.TextAlignmentRole and col == 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and col == 1:
            return f"{e.name} (id {e.image_id})"
        if role == Qt.ItemDataRole.ToolTipRole and col == 2:
            return "—: not scored yet" if e.score is None else f"{e.score:.6g}"
        if role == Qt.ItemDataRole.UserRole:
            return e.image_id
        return None

    def set_entries(self, entries: list[loop.QueueEntry]) -> None:
        """Replace the rows; icons made earlier are kept (the panel owns the cache)."""
        self.beginResetModel()
        self.entries = entries
        self.decimals = score_decimals([e.score for e in entries])
        self.endResetModel()

    def row_changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.HEADERS) - 1))


class QueueTable(QTableView):
    """The view; ``rowCount()`` for callers used to QTableWidget."""

    def rowCount(self) -> int:
        return self.model().rowCount()


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
        self.ranking: session.Ranking | None = None

        self.strategy = QComboBox()
        self.strategy.addItems(list(strategies.offered(project.task)))
        self.strategy.setCurrentText(strategies.for_task(project.task, project.loop.strategy))
        self.strategy.setToolTip("How images are ranked: most useful to correct first")
        self.state = QComboBox()
        for text, value in (("all", None), ("untouched", "untouched"), ("in progress", "in_progress"),
                            ("done", "done")):
            self.state.addItem(text, value)
        self.state.setToolTip("Show only images in this review state")
        for box in (self.strategy, self.state):
            box.currentIndexChanged.connect(lambda _i: self.refresh())
        self.model = QueueModel(self._want_thumbnail, self)
        self._rows: dict[int, int] = {}
        self._thumb_batch: list[int] = []
        self._thumb_timer = QTimer(self)  # debounced: thumbnails are made once scrolling pauses
        self._thumb_timer.setSingleShot(True)
        self._thumb_timer.setInterval(120)
        self._thumb_timer.timeout.connect(self._load_thumbnails)
        self.table = QueueTable()
        self.table.setModel(self.model)
        self.table.verticalHeader().hide()
        self.table.setIconSize(QSize(THUMB, THUMB))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(THUMB + 6)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for col, width in ((0, 44), (2, 78), (3, 84)):  # fixed: ResizeToContents would measure every row
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Fixed)
            header.resizeSection(col, width)
        self.table.clicked.connect(lambda index: self._select_row(index.row()))
        self.prev_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.prev_button.setToolTip("Previous image in the queue (, or Ctrl+Left)")
        self.next_button.setToolTip("Next image in the queue (. or Ctrl+Right)")
        self.prev_button.clicked.connect(self.previous)
        self.next_button.clicked.connect(self.next)
        self.summary = QLabel("")
        self.summary.setObjectName("muted")
        self.summary.setWordWrap(True)
        self.ranked_by = QLabel("")
        self.ranked_by.setObjectName("muted")
        self.ranked_by.setWordWrap(True)

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
        layout.addWidget(self.ranked_by)
        layout.addLayout(nav)

    # ------------------------------------------------------------------ data
    def refresh(self) -> None:
        """Re-rank on a worker (at start, after a new model or scores, a strategy/filter change, Done)."""
        self._generation += 1
        generation = self._generation
        strategy = self.strategy.currentText()
        state = self.state.currentData()
        workers.start(session.queue, self.project, strategy, state,
                      on_done=lambda ranking: self._show(ranking, generation),
                      on_error=lambda exc: self.ranked_by.setText(f"Could not rank the queue: {in_words(exc)}"))

    def _show(self, ranking: session.Ranking, generation: int) -> None:
        if generation != self._generation:
            return  # a newer refresh is on its way
        self.ranking = ranking
        self.entries = ranking.entries
        self._rows = {e.image_id: row for row, e in enumerate(self.entries)}
        self.model.set_entries(self.entries)
        self.set_counts(ranking.counts, ranking.excluded)
        if ranking.current is None:
            self.ranked_by.setText("Not ranked yet: train a model (Train now) to rank by uncertainty.")
        elif ranking.stale:
            older = f"v{ranking.version}'s scores" if ranking.version is not None else "no scores (unranked)"
            self.ranked_by.setText(f"Ranked by {older}: v{ranking.current} has not scored every image yet "
                                   "(Score now).")
        else:
            self.ranked_by.setText(f"Ranked by v{ranking.version}'s scores.")
        self._highlight()
        self.refreshed.emit()

    def set_counts(self, counts: dict[str, int], excluded: int = 0) -> None:
        """The summary line, from the store's review counts."""
        total = sum(counts.values())
        parts = [f"{counts.get(state, 0)} {words}" for state, words in (
            ("done", "done"), ("in_progress", "in progress"), ("untouched", "untouched"))]
        self.summary.setText(f"{total} images: " + " · ".join(parts)
                             + (f" ({excluded} excluded)" if excluded else ""))

    def set_state(self, image_id: int, state: str) -> None:
        """Show the stored review state of one image without re-ranking (after every save)."""
        row = self.row_of(image_id)
        if row is None or self.entries[row].state == state:
            return
        self.entries[row].state = state
        self.model.row_changed(row)

    def _want_thumbnail(self, image_id: int) -> None:
        """Called while painting a row without a thumbnail: batch the requests, make them on a worker."""
        if image_id in self._thumbs_pending:
            return
        self._thumbs_pending.add(image_id)
        self._thumb_batch.append(image_id)
        self._thumb_timer.start()

    def _load_thumbnails(self) -> None:
        batch, self._thumb_batch = self._thumb_batch, []
        if not batch:
            return
        visible = self._visible_rows()
        # rows scrolled past before the pause are not worth a file read now; they ask again when shown
        for image_id in [i for i in batch if self.row_of(i) not in visible]:
            self._thumbs_pending.discard(image_id)
        batch = [i for i in batch if self.row_of(i) in visible]
        store = self.project.store

        def make_all():
            for image_id in batch:
                try:
                    record = store.image(image_id)
                except Exception:  # removed meanwhile
                    yield image_id, None
                    continue
                yield workers.make_thumbnail(record, THUMB)

        worker = workers.start(make_all)
        worker.yielded.connect(self._thumbnail_ready)

    def _thumbnail_ready(self, item: tuple[int, np.ndarray | None]) -> None:
        image_id, thumb = item
        self._thumbs_pending.discard(image_id)
        self._thumbs[image_id] = self.model.icons[image_id] = to_icon(thumb)
        row = self.row_of(image_id)
        if row is not None:
            self.model.row_changed(row)

    def _visible_rows(self) -> range:
        top = self.table.rowAt(0)
        bottom = self.table.rowAt(self.table.viewport().height() - 1)
        top = 0 if top < 0 else top
        bottom = len(self.entries) - 1 if bottom < 0 else bottom
        return range(max(0, top - 5), bottom + 6)

    # ------------------------------------------------------------------ navigation
    def row_of(self, image_id: int | None) -> int | None:
        return None if image_id is None else self._rows.get(image_id)

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
            self.table.scrollTo(self.model.index(row, 0))
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

    def next_to_review(self, image_id: int | None) -> int | None:
        """The image after ``image_id`` in the queue that is not done (wrapping around), None if none."""
        row = self.row_of(image_id)
        order = self.entries if row is None else self.entries[row + 1:] + self.entries[:row]
        return next((e.image_id for e in order if e.state != "done" and e.image_id != image_id), None)
