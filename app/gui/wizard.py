"""The start page (new project, open, recent) and the new-project wizard.

Creating a project is :func:`annotation.setup.init_project` on a worker, with a progress bar; anything it
refuses (empty folder, unreadable files, an existing project) comes back as a dialog, never a crash.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
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

from annotation.project import TASKS

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
    """Images folder, labels (import a folder or generate Otsu pseudo labels), task, preset, location."""

    created = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.setMinimumWidth(560)
        self.images = _PathRow("Folder with the images")
        self.labels = _PathRow("Folder with label masks (same file names)")
        self.pseudo = QRadioButton("Generate pseudo labels (Otsu threshold + connected components)")
        self.imported = QRadioButton("Import masks from a folder:")
        self.pseudo.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.pseudo)
        group.addButton(self.imported)
        self.labels.setEnabled(False)
        self.imported.toggled.connect(self.labels.setEnabled)
        self.task = QComboBox()
        self.task.addItems(list(TASKS))
        self.task.setToolTip("semantic: classes per pixel; instance: separate objects; regression: "
                             "image-to-image (e.g. denoising)")
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
        form = QFormLayout()
        form.addRow("Images folder", self.images)
        form.addRow("Labels", self.pseudo)
        form.addRow(self.imported, self.labels)
        form.addRow("Task", self.task)
        form.addRow("Preset", self.preset)
        form.addRow("Config file", self.config)
        form.addRow("Project folder", self.location)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.buttons)
        self.result_path: str | None = None

    def problems(self) -> list[str]:
        """What is missing or wrong before anything is created (checked again by init_project)."""
        out = []
        images = self.images.text()
        if not images or not Path(images).is_dir():
            out.append("Choose an existing images folder.")
        if self.imported.isChecked() and (not self.labels.text() or not Path(self.labels.text()).is_dir()):
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
            "labels_dir": self.labels.text() if self.imported.isChecked() else None,
            "pseudo": "otsu" if self.pseudo.isChecked() else None, "task": self.task.currentText(),
            "config_path": self.config.text() if self.preset.currentIndex() == 1 else None,
            "progress": bridge.emit,
        }

        def run() -> tuple[str, list[str]]:
            project, report = init_project(self.location.text(), self.images.text(), **kwargs)
            root = str(project.root)
            project.close()
            return root, report.problems()

        workers.start(run, on_done=self._done, on_error=self._failed)

    def _progress(self, done: int, total: int, what: str) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"%v/%m  {what}")

    def _done(self, result: tuple[str, list[str]]) -> None:
        root, problems = result
        if problems:
            QMessageBox.information(self, "Some files were skipped", "\n".join(problems[:20]))
        self.result_path = root
        self.created.emit(root)
        self.accept()

    def _failed(self, exc: Exception) -> None:
        self.progress.hide()
        self.create_button.setEnabled(True)
        QMessageBox.critical(self, "Could not create the project", str(exc))


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
