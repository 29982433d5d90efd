"""Training panel: start/stop a round, auto-retrain, live progress and curves, model versions.

A round is :func:`annotation.loop.train_round` then :func:`annotation.loop.score` on a thread worker; both
run the engine in a subprocess, so the GUI thread only receives progress dicts (as Qt signals) and keeps
painting. Stopping sets a flag that ``should_stop`` returns, which terminates the worker process.

Where jobs run (this computer, N processes under torchrun, or Slurm) is the project's ``jobs:`` setting;
the panel lets the user pick it (saved off the GUI thread, used from the next job) and, while a job runs,
shows where it runs (``local, 2 processes``, ``Slurm job 1234 (queued)``) from the jobs table.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pyqtgraph as pg
from PySide6.QtCore import QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from annotation import backends, loop
from annotation.project import Project, ProjectError

from . import workers


class _Bridge(QObject):
    progress = Signal(dict)


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d} left" if seconds >= 60 else f"{seconds} s left"


def _plot(title: str, left: str, bottom: str) -> pg.PlotWidget:
    w = pg.PlotWidget()
    w.setBackground("#232323")
    w.setTitle(title, size="9pt")
    w.setLabel("left", left)
    w.setLabel("bottom", bottom)
    for axis in ("left", "bottom"):  # "ap50 (x0.001)" helps nobody: metrics and counts read as they are
        w.getAxis(axis).enableAutoSIPrefix(False)
    w.showGrid(x=True, y=True, alpha=0.2)
    w.setMinimumHeight(110)
    w.setMouseEnabled(x=False, y=False)
    w.hideButtons()
    return w


class TrainingPanel(QWidget):
    """Emits ``model_updated`` after a round that changed the current model and re-scored the images."""

    model_updated = Signal(object)  # loop.RoundResult
    running_changed = Signal(bool)
    message = Signal(str)

    def __init__(self, project: Project, parent: QWidget | None = None):
        super().__init__(parent)
        self.project = project
        self.primary = loop.PRIMARY_METRIC.get(project.task, "dice")
        self._stop = threading.Event()
        self._worker = None
        self._started = 0.0
        self._bridge = _Bridge()
        self._bridge.progress.connect(self._on_progress)
        self._loss: list[tuple[float, float]] = []
        self._metric: list[tuple[float, float]] = []

        self.start_button = QPushButton("▶ Train now")
        self.start_button.setToolTip("Fine-tune on every correction so far, then re-score (Ctrl+T)")
        self.stop_button = QPushButton("■ Stop")
        self.stop_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        settings = QSettings()
        self.auto = QCheckBox("Auto-retrain after")
        self.auto.setChecked(bool(settings.value("training/auto", True, type=bool)))
        self.auto.setToolTip("Start a round by itself once this many images were newly corrected")
        self.every = QSpinBox()
        self.every.setRange(1, 1000)
        self.every.setValue(project.loop.retrain_every)
        self.every.setSuffix(" corrected")
        self.auto.toggled.connect(lambda on: QSettings().setValue("training/auto", on))
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("muted")
        self._build_backend_row()

        self.live = _plot("No round run yet in this session", "loss / metric", "step")
        self.live.addLegend(offset=(-5, 5))
        self.loss_curve = self.live.plot(pen=pg.mkPen("#ff8a65", width=2), name="loss")
        self.metric_curve = self.live.plot(pen=pg.mkPen("#4fc3f7", width=2), symbol="o", symbolSize=5,
                                           symbolBrush="#4fc3f7", name=f"val {self.primary}")
        self.curve = _plot("Learning curve", self.primary, "corrected images")
        self.curve_item = self.curve.plot(pen=pg.mkPen("#81c784", width=2), symbol="o", symbolSize=7,
                                          symbolBrush="#81c784")
        self.rejected_item = self.curve.plot(pen=None, symbol="x", symbolSize=9, symbolPen="#e57373")
        self.models = QTableWidget(0, 5)
        self.models.setHorizontalHeaderLabels(["Model", "Status", "Corrected", self.primary, "Note"])
        self.models.verticalHeader().hide()
        self.models.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.models.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.models.horizontalHeader()
        for col in range(4):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)

        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        buttons.addWidget(self.auto)
        buttons.addWidget(self.every)
        tabs = QTabWidget()
        tabs.addTab(self.live, "Progress")
        tabs.addTab(self.curve, "Learning curve")
        tabs.addTab(self.models, "Models")
        self.tabs = tabs
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addLayout(self.backend_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(tabs, 1)
        self.refresh_models()
        if self.models.rowCount():
            tabs.setCurrentIndex(1)  # nothing live yet: show how the model got here

    # ------------------------------------------------------------------ where jobs run
    def _build_backend_row(self) -> None:
        self.backend = QComboBox()
        self.backend.addItem("this computer", "local")
        self.backend.addItem("Slurm cluster", "slurm")
        self.backend.setToolTip("Where training and scoring jobs run (jobs.backend in config.yaml). Slurm needs "
                                "the project folder on storage the cluster sees; see docs/cluster.md")
        self.nproc = QSpinBox()
        self.nproc.setRange(1, 64)
        self.nproc.setSuffix(" proc.")
        self.nproc.setToolTip("Processes per job (jobs.nproc): more than 1 runs the engine under torchrun, "
                              "e.g. one per GPU")
        try:
            settings = self.project.jobs
            self.backend.setCurrentIndex(max(0, self.backend.findData(settings.backend)))
            self.nproc.setValue(settings.nproc)
            where = backends.describe_settings(settings)
        except ProjectError as exc:
            where = f"invalid jobs settings: {exc}"
        self.where = QLabel(f"Jobs run on {where}")
        self.where.setObjectName("muted")
        self._save_lock = threading.Lock()
        self._wanted = (self.backend.currentData(), self.nproc.value())
        self.backend.currentIndexChanged.connect(self._save_backend)
        self.nproc.valueChanged.connect(self._save_backend)
        self.backend_row = QHBoxLayout()
        self.backend_row.addWidget(QLabel("Run on"))
        self.backend_row.addWidget(self.backend)
        self.backend_row.addWidget(self.nproc)
        self.backend_row.addWidget(self.where, 1)
        self._where_timer = QTimer(self)
        self._where_timer.setInterval(1000)
        self._where_timer.timeout.connect(self._show_where)

    def _save_backend(self) -> None:
        """Write ``jobs.backend`` / ``jobs.nproc`` (validated, atomic, fsync'd: off the GUI thread)."""
        self._wanted = (self.backend.currentData(), self.nproc.value())

        def save() -> str:
            with self._save_lock:  # saves run in order; each writes the latest choice, so the last one wins
                backend, nproc = self._wanted
                config = dict(self.project.config)
                config["jobs"] = {**(config.get("jobs") or {}), "backend": backend, "nproc": nproc}
                self.project.save_config(config)
                return backends.describe_settings(self.project.jobs)

        workers.start(save, on_done=lambda where: self.where.setText(f"Jobs run on {where}"),
                      on_error=lambda exc: self.where.setText(f"Could not save the setting: {exc}"))

    def _show_where(self) -> None:
        """While a round runs: where its current job runs, from the jobs table (one small query)."""
        rows = self.project.store.query(
            "SELECT status, backend FROM jobs WHERE status IN ('queued', 'running') ORDER BY id DESC LIMIT 1")
        if rows:
            state = "" if rows[0]["status"] == "running" else f" ({rows[0]['status']})"
            self.where.setText(f"Running on {backends.describe(rows[0]['backend'])}{state}")

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        return self._worker is not None

    def refresh_models(self) -> None:
        """Model table and learning curve from the store (cheap: a few rows)."""
        rows = loop.learning_curve(self.project)
        current = self.project.store.current_model
        self.models.setRowCount(len(rows))
        for i, r in enumerate(reversed(rows)):
            value = r["metric"]  # held-out value, else agreement with the corrections made to it
            status = "current" if r["version"] == current else ("accepted" if r["accepted"] else "rejected")
            cells = [f"v{r['version']}", status, str(r["n_corrected"]),
                     "—" if value is None else f"{value:.3f}", r.get("note") or ""]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(", ".join(f"{k} {v:.3g}" for k, v in r["metrics"].items()
                                          if isinstance(v, int | float)) or text)
                self.models.setItem(i, col, item)
        good = [(r["n_corrected"], r["metric"]) for r in rows if r["accepted"] and r["metric"] is not None]
        bad = [(r["n_corrected"], r["metric"]) for r in rows if not r["accepted"] and r["metric"] is not None]
        self.curve_item.setData([g[0] for g in good], [g[1] for g in good])
        self.rejected_item.setData([b[0] for b in bad], [b[1] for b in bad])
        if not self.running:
            if rows:
                last = rows[-1]
                self.status.setText(last.get("note") or f"v{last['version']}")
            else:
                self.status.setText("No model yet: press Train now to learn from the pseudo labels.")

    # ------------------------------------------------------------------ run
    def maybe_auto_retrain(self) -> bool:
        """Start a round if auto-retrain is on, a first model exists and enough images were corrected."""
        if self.running or not self.auto.isChecked() or self.project.store.current_model is None:
            return False
        if loop.corrections_since_current(self.project) < self.every.value():
            return False
        self.message.emit("Enough new corrections: retraining in the background")
        self.start()
        return True

    def start(self, steps: int | None = None) -> None:
        if self.running:
            return
        self._stop.clear()
        self._loss, self._metric = [], []
        self.loss_curve.setData([], [])
        self.metric_curve.setData([], [])
        self.live.setTitle("This round", size="9pt")
        self._started = time.monotonic()
        self.progress.setRange(0, 0)
        self.progress.setFormat("starting…")
        self.status.setText("Training in the background; keep correcting.")
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.backend.setEnabled(False)
        self.nproc.setEnabled(False)
        self._where_timer.start()
        self.tabs.setCurrentIndex(0)
        self._worker = workers.start(self._round, steps, on_done=self._finished, on_error=self._failed)
        self.running_changed.emit(True)

    def _round(self, steps: int | None):
        """Worker thread: train, then (if the model changed) score. Returns the RoundResult."""
        emit = self._bridge.progress.emit
        result = loop.train_round(self.project, steps=steps, progress=emit, should_stop=self._stop.is_set)
        if result.accepted and not result.cancelled and not self._stop.is_set():
            emit({"phase": "score", "step": 0, "total": 0})
            loop.score(self.project, progress=emit, should_stop=self._stop.is_set)
        return result

    def stop(self) -> None:
        if self.running:
            self._stop.set()
            self.progress.setFormat("stopping…")
            self.stop_button.setEnabled(False)

    def _on_progress(self, event: dict) -> None:
        phase = event.get("phase", "train")
        step = event.get("step", event.get("done"))
        total = event.get("total")
        if isinstance(total, int | float) and total > 0 and isinstance(step, int | float):
            self.progress.setRange(0, int(total))
            self.progress.setValue(int(step))
            eta = event.get("eta_s")
            if eta is None and step:
                eta = (time.monotonic() - self._started) / step * (total - step)
            self.progress.setFormat(f"{phase} %v/%m  {_fmt_eta(eta)}")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(phase)
        if phase != "train" or not isinstance(step, int | float):
            return
        loss = event.get("loss")
        metric = event.get("metric")
        if metric is None and isinstance(event.get("metrics"), dict):
            metric = event["metrics"].get(self.primary)
        if isinstance(loss, int | float):
            self._loss.append((step, float(loss)))
            self.loss_curve.setData(*zip(*self._loss, strict=True))
        if isinstance(metric, int | float):
            self._metric.append((step, float(metric)))
            self.metric_curve.setData(*zip(*self._metric, strict=True))

    def _done_ui(self) -> None:
        self._worker = None
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.backend.setEnabled(True)
        self.nproc.setEnabled(True)
        self._where_timer.stop()
        with contextlib.suppress(ProjectError):
            self.where.setText(f"Jobs run on {backends.describe_settings(self.project.jobs)}")
        self.running_changed.emit(False)

    def _finished(self, result: loop.RoundResult) -> None:
        self._done_ui()
        self.refresh_models()
        text = result.message + (f" ({result.seconds:.0f} s)" if result.seconds else "")
        self.status.setText(text + (f"\nHint: {result.hint}" if result.hint else ""))
        self.message.emit(result.message)
        if not result.cancelled:
            self.model_updated.emit(result)

    def _failed(self, exc: Exception) -> None:
        self._done_ui()
        self.status.setText(f"Training failed: {exc}")
        self.message.emit(f"Training failed: {exc}")

    def shutdown(self) -> None:
        """Stop a running round (window closing); the worker process is terminated by the loop."""
        self.stop()
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft)
