"""File → Export…: export the model or the labels without leaving the app.

The dialog only collects choices; :func:`annotation.export.export` does the work (the CLI's ``export`` runs
the same function). Exporting traces the network and checks it with onnxruntime, which takes seconds, so
it runs in a superqt thread worker with a progress bar; the GUI thread never waits on it. While it runs the
dialog stays open (Escape and Close wait for it), so its result is never lost; a model that trained 0 steps
is only exported after the person says so.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from annotation.export import USES_MODEL, default_output, formats_for
from annotation.project import Project

from . import workers
from .errors import in_words

FORMAT_TEXT = {
    "torchscript": "Model: TorchScript (runs with plain PyTorch)",
    "onnx": "Model: ONNX (checked with onnxruntime)",
    "bioimageio": "Model: BioImage Model Zoo package",
    "labels": "Labels: OME-TIFF + CSV",
    "pairs": "Training pairs: _IM / _GT / _CM (MMV_Im2Im)",
    "denoised": "Denoised images: OME-TIFF + CSV (every image, raw units)",
}


class ExportDialog(QDialog):
    """Choose what to export and where; ``finished_export`` carries the report (tests, status bar)."""

    finished_export = Signal(object)

    def __init__(self, project: Project, parent: QWidget | None = None):
        super().__init__(parent)
        self.project = project
        self.worker = None
        self._untrained = False
        self.setWindowTitle("Export")
        self.format = QComboBox()
        for fmt in formats_for(project.task):
            self.format.addItem(FORMAT_TEXT[fmt], fmt)
        self._stop = threading.Event()
        self.version = QComboBox()
        current = project.store.current_model
        for m in project.store.models():
            tag = " (current)" if m["version"] == current else f" ({m['status']})"
            self.version.addItem(f"v{m['version']}{tag}", m["version"])
            if m["version"] == current:
                self.version.setCurrentIndex(self.version.count() - 1)
        self.versions = QComboBox()
        self.versions.addItem("corrected images only", "corrected")
        self.versions.addItem("every image (best label each)", "all")
        self.output = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.output, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Export", self.format)
        form.addRow("Model version", self.version)
        if project.task != "denoise":  # no labels: its data export is every image, denoised
            form.addRow("Labels", self.versions)
        else:
            self.versions.hide()
        form.addRow("Folder", row)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #ffb74d;")
        self.anyway = QCheckBox("Export it anyway")
        self.anyway.toggled.connect(lambda _on: self._update_run_button())
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.close_button = self.buttons.button(QDialogButtonBox.StandardButton.Close)
        self.run_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.ActionRole)
        self.run_button.clicked.connect(lambda: self.start())
        self.cancel_button = self.buttons.addButton("Cancel export", QDialogButtonBox.ButtonRole.ActionRole)
        self.cancel_button.setToolTip("Stop after the current image; nothing is written")
        self.cancel_button.clicked.connect(lambda: self.cancel())
        self.cancel_button.hide()
        self.buttons.rejected.connect(lambda: self.reject())
        box = QVBoxLayout(self)
        box.addLayout(form)
        box.addWidget(self.warning)
        box.addWidget(self.anyway)
        box.addWidget(self.bar)
        box.addWidget(self.status)
        box.addWidget(self.buttons)
        self.format.currentIndexChanged.connect(lambda _i: self._format_changed())
        self.version.currentIndexChanged.connect(lambda _i: self._format_changed())
        self._format_changed()
        self.resize(560, 240)

    # ------------------------------------------------------------------ choices
    @property
    def chosen_format(self) -> str:
        return str(self.format.currentData())

    def _format_changed(self) -> None:
        fmt = self.chosen_format
        is_model = fmt in USES_MODEL
        self.version.setEnabled(is_model and self.version.count() > 0)
        self.versions.setEnabled(not is_model)
        version = self.version.currentData() if is_model else None
        self.output.setText(str(default_output(self.project, fmt, version)))
        if is_model and self.version.count() == 0:
            self.status.setText("No model yet: train one first (Model → Train now).")
        else:
            self.status.setText("")
        steps = self._steps(version) if is_model and version is not None else None
        untrained = steps == 0
        self.warning.setText(f"v{version} trained 0 steps: it has learnt nothing and its predictions are noise. "
                             "Train a model (Model → Train now) before exporting it." if untrained else "")
        self._untrained = untrained
        self.warning.setVisible(untrained)
        self.anyway.setVisible(untrained)
        if not untrained:
            self.anyway.setChecked(False)
        self._update_run_button()

    def _steps(self, version: int) -> int | None:
        """Training steps recorded for a model version (None when not recorded)."""
        try:
            steps = self.project.store.model(int(version))["metrics"].get("steps")
        except Exception:
            return None
        return int(steps) if isinstance(steps, int | float) and not isinstance(steps, bool) else None

    def _update_run_button(self) -> None:
        blocked = self._untrained and not self.anyway.isChecked()
        self.run_button.setEnabled(self.worker is None and not blocked
                                   and (self.chosen_format not in USES_MODEL or self.version.count() > 0))

    @property
    def running(self) -> bool:
        return self.worker is not None

    def reject(self) -> None:
        """Escape / Close: not while an export runs (its result would be lost; a denoised export can be
        cancelled with *Cancel export*)."""
        if self.running:
            self.status.setText("Exporting… the dialog can close once it is done.")
            return
        super().reject()

    def cancel(self) -> None:
        """*Cancel export* (denoised images): stop after the current image; the staged files are removed."""
        if self.running:
            self._stop.set()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling after this image…")

    def _browse(self) -> None:
        start = str(Path(self.output.text()).parent)
        folder = QFileDialog.getExistingDirectory(self, "Export into", start)
        if folder:
            self.output.setText(str(Path(folder) / Path(self.output.text()).name))

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        """Run the export on a thread worker; progress and the result come back on the GUI thread."""
        from annotation.export import export

        fmt = self.chosen_format
        version = self.version.currentData() if fmt in USES_MODEL else None
        versions = str(self.versions.currentData())
        output = self.output.text().strip() or None
        bridge = workers.ProgressBridge(self)
        bridge.progress.connect(self._progress)
        self.run_button.setEnabled(False)
        self.close_button.setEnabled(False)
        self.bar.setRange(0, 0)  # busy until the first progress report
        self.status.setText(f"Exporting {fmt}…")
        self._stop.clear()
        self.cancel_button.setVisible(fmt == "denoised")  # the others are quick or cannot stop halfway
        self.cancel_button.setEnabled(True)

        def run():
            return export(self.project, fmt, output, version=version, versions=versions, progress=bridge.report,
                          should_stop=self._stop.is_set)

        self.worker = workers.start(run, on_done=self._done, on_error=self._failed)

    def _progress(self, done: int, total: int, what: str) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        if what:
            self.status.setText(what)

    def _done(self, report) -> None:
        self.worker = None
        self.cancel_button.hide()
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.close_button.setEnabled(True)
        self._update_run_button()
        self.status.setText(report.summary())
        self.finished_export.emit(report)

    def _failed(self, exc: Exception) -> None:
        self.worker = None
        self.cancel_button.hide()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.close_button.setEnabled(True)
        self._update_run_button()
        self.status.setText(f"Export failed: {in_words(exc)}")
        self.finished_export.emit(exc)
