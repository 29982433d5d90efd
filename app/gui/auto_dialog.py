"""Model → Find the best configuration…: the ``auto`` search from the app.

The dialog only collects the settings and shows what happens; :func:`annotation.auto.run_search` does the
work (the CLI's ``auto`` runs the same function). A search trains one model per candidate and fold, which
takes minutes to hours, so it runs on a thread worker: progress comes back through a signal, Stop (or
closing the dialog) asks the search to stop, and what finished is kept in the project, so starting again
continues where it stopped.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QCoreApplication, QObject, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from annotation.auto import AutoSettings, apply_choice, format_report, parse_budget, run_search
from annotation.project import Project

from . import workers


class _Bridge(QObject):
    """Carries the search's progress events from the worker thread to the GUI thread."""

    event = Signal(object)


class AutoDialog(QDialog):
    """Settings, Start/Stop, a progress bar, the running log and the report; Apply when a better one won.
    ``finished_search`` carries the report (or the exception) for tests and the status bar."""

    finished_search = Signal(object)

    def __init__(self, project: Project, parent: QWidget | None = None):
        super().__init__(parent)
        self.project = project
        self.worker = None
        self.report: dict | None = None
        self._stop = threading.Event()
        self.setWindowTitle("Find the best configuration")
        self.folds = QSpinBox()
        self.folds.setRange(2, 10)
        self.folds.setValue(3)
        self.budget = QLineEdit("30m")
        self.budget.setToolTip("Stop launching trainings after this long: 30m, 2h, 1h30m, 90s; empty: no limit")
        self.steps = QSpinBox()
        self.steps.setRange(0, 100_000)
        self.steps.setSpecialValueText("as configured")
        self.candidates = QSpinBox()
        self.candidates.setRange(2, 6)
        self.candidates.setValue(4)
        form = QFormLayout()
        form.addRow("Folds", self.folds)
        form.addRow("Time budget", self.budget)
        form.addRow("Steps per training", self.steps)
        form.addRow("Configurations", self.candidates)
        intro = QLabel("Trains each candidate configuration on k folds of your labelled images and keeps the "
                       "best. The current configuration is always a candidate. Results are kept: run it again "
                       "to continue a stopped search.")
        intro.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.start_button = self.buttons.addButton("Start", QDialogButtonBox.ButtonRole.ActionRole)
        self.stop_button = self.buttons.addButton("Stop", QDialogButtonBox.ButtonRole.ActionRole)
        self.apply_button = self.buttons.addButton("Apply", QDialogButtonBox.ButtonRole.ActionRole)
        self.stop_button.setEnabled(False)
        self.apply_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.apply_button.clicked.connect(self.apply)
        self.buttons.rejected.connect(self.close)
        app = QCoreApplication.instance()
        if app is not None:  # quitting the app stops a running search (its training is cancelled)
            app.aboutToQuit.connect(self._stop.set)
        self.bridge = _Bridge(self)
        self.bridge.event.connect(self._progress)
        box = QVBoxLayout(self)
        box.addWidget(intro)
        box.addLayout(form)
        box.addWidget(self.bar)
        box.addWidget(self.log, 1)
        box.addWidget(self.buttons)
        self.resize(820, 560)

    @property
    def running(self) -> bool:
        return self.worker is not None

    def settings(self) -> AutoSettings:
        return AutoSettings(folds=self.folds.value(), budget_s=parse_budget(self.budget.text()),
                            steps=self.steps.value() or None, max_candidates=self.candidates.value())

    def start(self) -> None:
        """Run the search on a thread worker; events and the report come back on the GUI thread."""
        try:
            settings = self.settings()
        except ValueError as exc:
            self.log.appendPlainText(str(exc))
            return
        self._stop.clear()
        self.report = None
        self.start_button.setEnabled(False)
        self.apply_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.bar.setRange(0, 0)
        self.log.appendPlainText("Starting: reading the images for the fingerprint…")

        def run() -> dict:
            return run_search(self.project, settings, progress=self.bridge.event.emit, should_stop=self._stop.is_set)

        self.worker = workers.start(run, on_done=self._done, on_error=self._failed)

    def stop(self) -> None:
        if self.running:
            self._stop.set()
            self.stop_button.setEnabled(False)
            self.log.appendPlainText("Stopping: the running training is cancelled; finished ones are kept…")

    def _progress(self, event: dict) -> None:
        total = int(event.get("total") or 0)
        if total:
            self.bar.setRange(0, total)
            self.bar.setValue(int(event.get("done") or 0))
        if event.get("message"):
            self.log.appendPlainText(f"[{event.get('done', 0)}/{total}] {event['message']}")
        elif event.get("step") is not None:
            self.bar.setFormat(f"%v/%m trainings — {event.get('candidate')} fold {event.get('fold')}: "
                               f"step {event['step']}/{event.get('steps')}")

    def _finish(self) -> None:
        self.worker = None
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.bar.setFormat("%v/%m trainings")

    def _done(self, report: dict) -> None:
        self._finish()
        self.report = report
        self.bar.setRange(0, max(1, report["planned"]))
        self.bar.setValue(report["finished"])
        self.log.appendPlainText("\n" + format_report(report))
        self.apply_button.setEnabled(report.get("chosen") not in (None, "current"))
        self.finished_search.emit(report)

    def _failed(self, exc: Exception) -> None:
        self._finish()
        self.bar.setRange(0, 1)
        self.log.appendPlainText(f"The search failed: {exc}")
        self.finished_search.emit(exc)

    def apply(self) -> None:
        if self.report is None:
            return
        try:
            self.log.appendPlainText(apply_choice(self.project, self.report["search_id"]))
        except Exception as exc:  # shown, never raised into Qt's event loop
            self.log.appendPlainText(f"Could not apply: {exc}")
        self.apply_button.setEnabled(False)

    def closeEvent(self, event) -> None:
        self.stop()
        super().closeEvent(event)


def show(window) -> AutoDialog:
    """Open the dialog for the window's project (one at a time: a second call raises the first)."""
    dialog = getattr(window, "auto_dialog", None)
    if dialog is None or dialog.project is not window.project:
        dialog = AutoDialog(window.project, window)
        window.auto_dialog = dialog
    dialog.show()
    dialog.raise_()
    return dialog
