"""The start page (new project, open, recent) and the new-project wizard.

Creating a project is :func:`annotation.setup.init_project` on a worker, with a progress bar; anything it
refuses (empty folder, unreadable files, an existing project) comes back as a dialog, never a crash.
"""

from __future__ import annotations

from pathlib import Path

import shiboken6
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from annotation.project import TASKS, TASKS_WITHOUT_LABELS

from . import workers

RECENT_KEY = "recent_projects"
MAX_RECENT = 10


def recent_projects() -> list[str]:
    """Recent project folders that still exist, newest first."""
    value = QSettings().value(RECENT_KEY, []) or []
    if isinstance(value, str):
        value = [value]
    return [p for p in value if (Path(p) / "project.db").exists()]


def remember_project(path: str | Path) -> None:
    path = str(Path(path).resolve())
    items = [path, *[p for p in recent_projects() if p != path]][:MAX_RECENT]
    QSettings().setValue(RECENT_KEY, items)


def choose_project_folder(parent: QWidget | None) -> str:
    return QFileDialog.getExistingDirectory(parent, "Open an im2im-active project folder")


class _PathRow(QWidget):
    """A line edit with a Browse… button for a folder (or a file)."""

    def __init__(self, caption: str, file_filter: str | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.caption, self.filter = caption, file_filter
        self.edit = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(browse)

    def _browse(self) -> None:
        if self.filter:
            path, _ = QFileDialog.getOpenFileName(self, self.caption, filter=self.filter)
        else:
            path = QFileDialog.getExistingDirectory(self, self.caption)
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text().strip()


class NewProjectDialog(QDialog):
    """Images folder (checked against the project as soon as it is chosen), how to fit images that do not
    fit as they are, labels (generate pseudo labels by a chosen method, or import a folder), task, preset,
    location. Creating runs :func:`annotation.setup.init_project` on a worker with the same choices."""

    created = Signal(str)
    checked = Signal()  # the check of the images folder (``check.text()``) is up to date

    STACKS = (("Make a 3D project for z-stacks", {"dims": 3}),
              ("Use their maximum projection (2D project)", {"z_projection": "max", "dims": 2}),
              ("Leave them out (2D project)", {"dims": 2}))

    METHOD_NAMES = {"otsu": "Otsu threshold + connected components",
                    "watershed": "Otsu + watershed (splits touching objects)"}

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.setMinimumWidth(620)
        self.images = _PathRow("Folder with the images")
        self.check = QLabel("Choose a folder: its images are checked before anything is created.")
        self.check.setObjectName("muted")
        self.check.setWordWrap(True)
        self.check.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stacks = QComboBox()
        for text, _ in self.STACKS:
            self.stacks.addItem(text)
        self.stacks.setToolTip("A 2D project segments single planes; a 3D project segments whole z-stacks.")
        self.channels = QComboBox()
        self.channels.setToolTip("Images with more channels than the project takes: which channel the model sees.")
        self.labels = _PathRow("Folder with label masks (same file names)")
        self.pseudo = QRadioButton("Generate pseudo labels:")
        self.method = QComboBox()
        self.imported = QRadioButton("Import masks from a folder:")
        self.no_labels = QLabel("None needed: Noise2Void learns from the noisy images themselves.")
        self.no_labels.hide()
        self.pseudo.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.pseudo)
        group.addButton(self.imported)
        self.labels.setEnabled(False)
        self.imported.toggled.connect(self.labels.setEnabled)
        self.pseudo.toggled.connect(self.method.setEnabled)
        self.task = QComboBox()
        self.task.addItems(list(TASKS))
        self.task.setToolTip("semantic: classes per pixel; instance: separate objects; regression: "
                             "image-to-image (e.g. denoising)")
        self.task.currentTextChanged.connect(self._task_changed)
        self.preset = QComboBox()
        self.preset.addItems(["Bundled preset for the task", "My config file…"])
        self.config = _PathRow("Engine config (YAML)", "YAML (*.yaml *.yml)")
        self.config.setEnabled(False)
        self.preset.currentIndexChanged.connect(lambda i: self.config.setEnabled(i == 1))
        self.location = _PathRow("Where to create the project folder")
        self.progress = QProgressBar()
        self.progress.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.create_button = self.buttons.addButton("Create", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.create)
        self.buttons.rejected.connect(self.reject)

        labels_box = QWidget()  # both label sources in the field column, radio buttons aligned
        grid = QGridLayout(labels_box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.pseudo, 0, 0)
        grid.addWidget(self.method, 0, 1)
        grid.addWidget(self.imported, 1, 0)
        grid.addWidget(self.labels, 1, 1)
        grid.addWidget(self.no_labels, 2, 0, 1, 2)
        grid.setColumnStretch(1, 1)
        form = QFormLayout()
        form.addRow("Images folder", self.images)
        form.addRow("", self.check)
        form.addRow("Z-stacks", self.stacks)
        form.addRow("Channels", self.channels)
        form.addRow("Labels", labels_box)
        form.addRow("Task", self.task)
        form.addRow("Preset", self.preset)
        form.addRow("Config file", self.config)
        form.addRow("Project folder", self.location)
        self.form = form
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.buttons)
        self.result_path: str | None = None
        self.summary: list[str] = []  # what the last creation did, in words

        self._candidates: list = []  # the folder's readable images (headers), from the last survey
        self._unreadable: list[tuple[str, str]] = []
        self._surveyed: str | None = None
        self._request = 0
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(300)
        self._debounce.timeout.connect(self._survey)
        self.images.edit.textChanged.connect(lambda _: self._debounce.start())
        self.stacks.currentIndexChanged.connect(lambda _: self._replan())
        self.channels.currentIndexChanged.connect(lambda _: self._replan())
        self.preset.currentIndexChanged.connect(lambda _: self._replan())
        self.config.edit.editingFinished.connect(self._replan)
        self._task_changed(self.task.currentText())
        self._show_choices(stacks=False, channels=False)

    # ------------------------------------------------------------------ the choices
    def _task_changed(self, task: str) -> None:
        from annotation.pseudo import METHODS, methods_for

        self.method.clear()
        for key in methods_for(task):
            self.method.addItem(self.METHOD_NAMES.get(key, METHODS[key]), key)
            self.method.setItemData(self.method.count() - 1, METHODS[key], Qt.ItemDataRole.ToolTipRole)
        can_generate = self.method.count() > 0
        without = task in TASKS_WITHOUT_LABELS
        for widget in (self.pseudo, self.method, self.imported, self.labels):
            widget.setVisible(not without)
        self.no_labels.setVisible(without)
        self.pseudo.setEnabled(can_generate)
        self.method.setEnabled(can_generate and self.pseudo.isChecked())
        if not can_generate:
            self.imported.setChecked(True)
            self.imported.setText("Import targets from a folder:")
        else:
            self.imported.setText("Import masks from a folder:")
        self._replan()

    def needs_labels(self) -> bool:
        return self.task.currentText() not in TASKS_WITHOUT_LABELS

    def pseudo_method(self) -> str | None:
        if not self.needs_labels():
            return None
        return self.method.currentData() if self.pseudo.isChecked() and self.pseudo.isEnabled() else None

    def fit_options(self):
        from annotation.importer import FitOptions

        stacks = self.STACKS[self.stacks.currentIndex()][1] if self.stacks.isVisibleTo(self) else {}
        channel = self.channels.currentData() if self.channels.isVisibleTo(self) else None
        return FitOptions(channel=channel, **stacks)

    def _show_choices(self, stacks: bool, channels: bool) -> None:
        for widget, visible in ((self.stacks, stacks), (self.channels, channels)):
            widget.setVisible(visible)
            self.form.labelForField(widget).setVisible(visible)

    # ------------------------------------------------------------------ checking the folder
    def _survey(self) -> None:
        folder = self.images.text()
        self._request += 1
        request = self._request
        if not folder or not Path(folder).is_dir():
            self._candidates, self._surveyed = [], None
            self.check.setText("Choose an existing folder: its images are checked before anything is created.")
            self._show_choices(False, False)
            self.checked.emit()
            return
        self.check.setText("Checking the images…")
        from annotation.setup import survey_folder

        def run():
            return survey_folder(folder)

        workers.start(run, on_done=lambda r: self._surveyed_done(request, folder, r),
                      on_error=lambda exc: self._surveyed_failed(request, exc))

    def _current(self, request: int) -> bool:
        """A background check's answer still wanted: the dialog exists and nothing newer was asked."""
        return shiboken6.isValid(self) and request == self._request

    def _surveyed_done(self, request: int, folder: str, result) -> None:
        if not self._current(request):
            return  # the folder changed meanwhile
        self._candidates, report = result
        self._unreadable = list(report.skipped)
        self._surveyed = folder
        self._fill_choices()
        self._replan()

    def _surveyed_failed(self, request: int, exc: Exception) -> None:
        if not self._current(request):
            return
        self._candidates, self._surveyed = [], None
        self.check.setText(str(exc))
        self._show_choices(False, False)
        self.checked.emit()

    def _fill_choices(self) -> None:
        cands = self._candidates
        stacks = [c for c in cands if c.n_planes > 1]
        self.stacks.blockSignals(True)
        self.stacks.setCurrentIndex(0 if len(stacks) * 2 > len(cands) else 2)
        self.stacks.blockSignals(False)
        widest = max(cands, key=lambda c: c.n_channels, default=None)
        counts = {c.n_channels for c in cands}
        self.channels.blockSignals(True)
        self.channels.clear()
        if widest is not None and widest.n_channels > 1:
            self.channels.addItem("Use every channel (leave out images with another number)", None)
            multi = [c for c in cands if c.n_channels > 1]
            for k in range(widest.n_channels):
                names = list(dict.fromkeys(c.channel_names[k] for c in multi if k < c.n_channels))
                self.channels.addItem(f"Use channel {k} ({' / '.join(names[:4])}) of multi-channel images", k)
            if len(counts) > 1:  # mixed: a single channel fits them all
                self.channels.setCurrentIndex(0)
        self.channels.blockSignals(False)
        self._show_choices(stacks=bool(stacks), channels=widest is not None and widest.n_channels > 1)

    def _replan(self) -> None:
        if not self._candidates or self._surveyed != self.images.text():
            return
        from annotation.setup import plan_import

        cands, task, options = self._candidates, self.task.currentText(), self.fit_options()
        config = self.config.text() if self.preset.currentIndex() == 1 and self.config.text() else None
        self._request += 1
        request = self._request

        def done(plan) -> None:
            if not self._current(request):
                return
            lines = plan.lines()
            lines += [f"{Path(p).name}: left out: {why}." for p, why in self._unreadable]
            shown = lines[:12] + ([f"… and {len(lines) - 12} more"] if len(lines) > 12 else [])
            self.check.setText("\n".join(shown))
            self.checked.emit()

        def failed(exc: Exception) -> None:
            if self._current(request):
                self.check.setText(str(exc))
                self.checked.emit()

        workers.start(plan_import, cands, task, options, config, on_done=done, on_error=failed)

    # ------------------------------------------------------------------ creating
    def problems(self) -> list[str]:
        """What is missing or wrong before anything is created (checked again by init_project)."""
        out = []
        images = self.images.text()
        if not images or not Path(images).is_dir():
            out.append("Choose an existing images folder.")
        if self.needs_labels() and self.imported.isChecked() and \
                (not self.labels.text() or not Path(self.labels.text()).is_dir()):
            out.append("Choose an existing labels folder, or generate pseudo labels.")
        if self.preset.currentIndex() == 1 and not Path(self.config.text()).is_file():
            out.append("Choose a config file, or use the bundled preset.")
        if not self.location.text():
            out.append("Choose where to create the project.")
        elif (Path(self.location.text()) / "project.db").exists():
            out.append(f"{self.location.text()} already holds a project; open it instead.")
        return out

    def create(self) -> None:
        problems = self.problems()
        if problems:
            QMessageBox.warning(self, "New project", "\n".join(problems))
            return
        from annotation.setup import init_project

        bridge = workers.ProgressBridge(self)
        bridge.progress.connect(self._progress)
        self.progress.show()
        self.create_button.setEnabled(False)
        kwargs = {
            "labels_dir": self.labels.text() if self.needs_labels() and self.imported.isChecked() else None,
            "pseudo": self.pseudo_method(), "task": self.task.currentText(),
            "config_path": self.config.text() if self.preset.currentIndex() == 1 else None,
            "progress": bridge.report, "fit": self.fit_options(),
        }

        def run() -> tuple[str, list[str]]:
            project, report = init_project(self.location.text(), self.images.text(), **kwargs)
            root = str(project.root)
            project.close()
            return root, report_lines(report)

        workers.start(run, on_done=self._done, on_error=self._failed)

    def _progress(self, done: int, total: int, what: str) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"%v/%m  {what}")

    def _done(self, result: tuple[str, list[str]]) -> None:
        root, self.summary = result
        self.result_path = root
        if len(self.summary) > 1:  # more than "N images": say what was fitted or left out, without blocking
            show_summary(self.parentWidget(), "\n".join(self.summary[:25]))
        self.created.emit(root)
        self.accept()

    def _failed(self, exc: Exception) -> None:
        self.progress.hide()
        self.create_button.setEnabled(True)
        QMessageBox.critical(self, "Could not create the project", str(exc))


_summaries: set = set()  # open summary boxes, kept referenced until closed


def report_lines(report) -> list[str]:
    """What an import did, in words: the first line the totals, then one line per fitted or left-out file."""
    n = len(report.added)
    lines = [f"{n} image{'s' if n != 1 else ''} imported (project: {report.shape}), {report.labels} pseudo "
             f"label{'s' if report.labels != 1 else ''}."]
    if report.shape_note:
        lines.append(report.shape_note[0].upper() + report.shape_note[1:] + ".")
    lines += [f"{Path(p).name}: {what}." for p, what in report.fitted]
    lines += [f"{Path(p).name}: left out: {why}." for p, why in report.skipped]
    lines += [f"{Path(p).name}: {why}." for p, why in report.labels_skipped]
    return lines


def show_summary(parent: QWidget | None, text: str) -> QMessageBox:
    """A non-modal box saying what the import did; it outlives the wizard (parentless, kept referenced)."""
    box = QMessageBox(QMessageBox.Icon.Information, "New project: what was imported", text)
    box.setObjectName("importSummary")
    box.setModal(False)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
    _summaries.add(box)
    box.destroyed.connect(lambda *_: _summaries.discard(box))
    box.show()
    return box


class StartPage(QWidget):
    """What the app shows without a project: new, open, recent."""

    open_requested = Signal(str)  # "" = ask with a folder dialog

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("im2im-active")
        title = QLabel("im2im-active")
        title.setObjectName("startTitle")
        subtitle = QLabel("Correct what the model gets wrong; it learns while you work.")
        subtitle.setObjectName("muted")
        new = QPushButton("New project…")
        open_ = QPushButton("Open project…")
        new.clicked.connect(self.new_project)
        open_.clicked.connect(lambda: self.open_requested.emit(""))
        self.recent = QListWidget()
        self.recent.addItems(recent_projects())
        self.recent.itemActivated.connect(lambda item: self.open_requested.emit(item.text()))
        buttons = QHBoxLayout()
        buttons.addWidget(new)
        buttons.addWidget(open_)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(40, 30, 40, 30)
        layout.addWidget(title)
        layout.addWidget(subtitle)
        layout.addSpacing(12)
        layout.addLayout(buttons)
        layout.addSpacing(12)
        layout.addWidget(QLabel("Recent projects"))
        layout.addWidget(self.recent, 1)
        self.resize(640, 440)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)

    def new_project(self) -> None:
        dialog = NewProjectDialog(self)
        dialog.created.connect(self.open_requested.emit)
        dialog.open()
