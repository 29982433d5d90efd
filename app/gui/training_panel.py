"""Training panel: train / score / stop, auto-retrain, live progress and curves, model versions in words.

A round is :func:`annotation.loop.train_round` then :func:`annotation.loop.score` on a thread worker; both
run the engine in a subprocess, so the GUI thread only receives progress dicts (as Qt signals) and keeps
painting. Stopping sets a flag that ``should_stop`` returns, which terminates the worker process. *Score
now* runs the scoring phase alone (after a stopped or failed scoring, or to re-rank).

Where jobs run (this computer, N processes under torchrun, or Slurm) is the project's ``jobs:`` setting;
the panel lets the user pick it (saved off the GUI thread, used from the next job) and, while a job runs,
shows where it runs (``local, 2 processes``, ``Slurm job 1234 (queued)``) from the jobs table.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

import pyqtgraph as pg
from PySide6.QtCore import QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
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

from annotation import backends, loop, session
from annotation.jobs import JobError
from annotation.project import Project, ProjectError

from . import workers
from .errors import in_words

LOSS_COLOUR, METRIC_COLOUR = "#ff8a65", "#4fc3f7"


class _Bridge(QObject):
    progress = Signal(dict)


@dataclass
class RoundOutcome:
    """What a run of the panel did: the training round (None for *Score now*) and the scoring phase."""

    result: loop.RoundResult | None
    scoring: str = "not run"  # done | stopped | failed | not run
    scoring_error: str = ""
    skipped: list = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """The current model or the scores changed: the window re-ranks and reloads the prediction."""
        return self.scoring in ("done", "stopped") or bool(self.result and self.result.accepted)


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d} left" if seconds >= 60 else f"{seconds} s left"


class IntegerAxis(pg.AxisItem):
    """An axis for counts: ticks only at whole numbers (no "1.5 corrected images")."""

    def tickValues(self, minVal, maxVal, size):
        out = []
        for spacing, values in super().tickValues(minVal, maxVal, size):
            whole = [v for v in values if abs(v - round(v)) < 1e-9]
            if spacing >= 1 and whole:
                out.append((spacing, whole))
        if not out:  # zoomed in to less than one step: the whole numbers in view
            out = [(1.0, [float(v) for v in range(int(minVal) - 1, int(maxVal) + 2) if minVal <= v <= maxVal])]
        return out


def _plot(title: str, left: str, bottom: str, integer_x: bool = False) -> pg.PlotWidget:
    axes = {"bottom": IntegerAxis("bottom")} if integer_x else None
    w = pg.PlotWidget(axisItems=axes)
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
    """Emits ``model_updated`` (a :class:`RoundOutcome`) after a run that changed the model or the scores."""

    model_updated = Signal(object)
    running_changed = Signal(bool)
    message = Signal(str)

    def __init__(self, project: Project, parent: QWidget | None = None):
        super().__init__(parent)
        self.project = project
        self.primary = loop.PRIMARY_METRIC.get(project.task, "dice")
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._worker = None
        self._started = 0.0
        self._phase = ""
        self._job_mark = 0
        self._skipped: list[dict] = []
        self._bridge = _Bridge()
        self._bridge.progress.connect(self._on_progress)
        self._loss: list[tuple[float, float]] = []
        self._metric: list[tuple[float, float]] = []

        self.start_button = QPushButton("▶ Train now")
        self.start_button.setToolTip("Fine-tune on every correction so far, then re-score (Ctrl+T)")
        self.score_button = QPushButton("↻ Score now")
        self.score_button.setToolTip("Score every image not done with the current model and re-rank the queue")
        self.stop_button = QPushButton("■ Stop")
        self.stop_button.setEnabled(False)
        # clicked(bool) must not reach start(steps): Qt's checked=False would arrive as the step count
        self.start_button.clicked.connect(lambda: self.start())
        self.score_button.clicked.connect(lambda: self.start_scoring())
        self.stop_button.clicked.connect(lambda: self.stop())
        settings = QSettings()
        # a denoise project has nothing to correct: its images count once a person marks them done
        self.done_word = "reviewed" if project.task == "denoise" else "corrected"
        self.auto = QCheckBox("Auto-retrain after")
        self.auto.setChecked(bool(settings.value("training/auto", True, type=bool)))
        self.auto.setToolTip(f"Start a round by itself once this many images were newly {self.done_word}")
        self.every = QSpinBox()
        self.every.setRange(1, 1000)
        self.every.setValue(project.loop.retrain_every)
        self.every.setSuffix(f" {self.done_word}")
        self.auto.toggled.connect(lambda on: QSettings().setValue("training/auto", on))
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("muted")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.feedback = QLabel("")  # the current model in words
        self.feedback.setWordWrap(True)
        self.feedback.setObjectName("feedback")
        self.counter = QLabel("")
        self.counter.setObjectName("muted")
        self._build_backend_row()

        self.live = _plot("No round run yet in this session", "loss / metric", "step")
        self.loss_curve = self.live.plot(pen=pg.mkPen(LOSS_COLOUR, width=2))
        self.metric_curve = self.live.plot(pen=pg.mkPen(METRIC_COLOUR, width=2), symbol="o", symbolSize=5,
                                           symbolBrush=METRIC_COLOUR)
        axis = {"blindspot_psnr": "blind-spot PSNR (dB)", "psnr": "PSNR (dB)", "dice": "Dice",
                "ap50": "AP50"}.get(self.primary, self.primary)
        across = "images reviewed" if project.task == "denoise" else "corrected images"
        self.curve = _plot("Learning curve", axis, across, integer_x=True)
        self.curve_item = self.curve.plot(pen=pg.mkPen("#81c784", width=2), symbol="o", symbolSize=7,
                                          symbolBrush="#81c784")
        self.rejected_item = self.curve.plot(pen=None, symbol="x", symbolSize=9, symbolPen="#e57373")
        self.curve_caption = QLabel(session.curve_words(project))
        self.curve_caption.setWordWrap(True)
        self.curve_caption.setObjectName("muted")
        curve_tab = QWidget()
        curve_box = QVBoxLayout(curve_tab)
        curve_box.setContentsMargins(0, 0, 0, 0)
        curve_box.addWidget(self.curve, 1)
        curve_box.addWidget(self.curve_caption)
        self.models = QTableWidget(0, 6)
        self.models.setHorizontalHeaderLabels(["Model", "Status", "Corrected", "Steps", self.primary, "Note"])
        self.models.verticalHeader().hide()
        self.models.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.models.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.models.horizontalHeader()
        for col in range(5):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)

        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.score_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        buttons.addWidget(self.auto)
        buttons.addWidget(self.every)
        tabs = QTabWidget()
        tabs.addTab(self.live, "Progress")
        tabs.addTab(curve_tab, "Learning curve")
        tabs.addTab(self.models, "Models")
        self.tabs = tabs
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addLayout(self.backend_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.feedback)
        layout.addWidget(self.counter)
        layout.addWidget(tabs, 1)
        self._live_title("No round run yet in this session")
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
        self.backend.currentIndexChanged.connect(lambda _i: self._save_backend())
        self.nproc.valueChanged.connect(lambda _n: self._save_backend())
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
                      on_error=lambda exc: self.where.setText(f"Could not save the setting: {in_words(exc)}"))

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

    def _live_title(self, title: str) -> None:
        """The live plot's title carries its legend: a legend inside the plot covers the curve."""
        self.live.setTitle(f"{title}&nbsp;&nbsp;&nbsp;<span style='color:{LOSS_COLOUR}'>━ loss</span>&nbsp;&nbsp;"
                           f"<span style='color:{METRIC_COLOUR}'>● validation {self.primary}</span>", size="9pt")

    def refresh_models(self, *, keep_status: bool = False) -> None:
        """Model table, learning curve and the current model in words, from the store (a few rows);
        ``keep_status``: a run has just said how it went."""
        rows = loop.learning_curve(self.project)
        current = self.project.store.current_model
        self.models.setRowCount(len(rows))
        parents = {m["version"]: m["parent"] for m in self.project.store.models()}
        for i, r in enumerate(reversed(rows)):
            value = r["metric"]  # held-out value, else agreement with the corrections made to it
            status = "current" if r["version"] == current else ("accepted" if r["accepted"] else "rejected")
            steps = r["metrics"].get("steps")
            words = session.check_words(r["metrics"].get("check") or {}, r["version"], parents.get(r["version"]))
            cells = [f"v{r['version']}", status, str(r["n_corrected"]), "?" if steps is None else str(steps),
                     "—" if value is None else f"{value:.3f}", r.get("note") or ""]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(words or text)
                self.models.setItem(i, col, item)
        good = [(r["n_corrected"], r["metric"]) for r in rows if r["accepted"] and r["metric"] is not None]
        bad = [(r["n_corrected"], r["metric"]) for r in rows if not r["accepted"] and r["metric"] is not None]
        self.curve_item.setData([g[0] for g in good], [g[1] for g in good])
        self.rejected_item.setData([b[0] for b in bad], [b[1] for b in bad])
        self.feedback.setText(session.model_words(self.project) if current is not None else "")
        self.score_button.setEnabled(not self.running and current is not None)
        if not self.running and not keep_status:
            if not rows:
                self._say("No model yet: press Train now to learn from the pseudo labels.")
            elif not self.status.text() and not self.feedback.text():  # the words above say it otherwise
                last = rows[-1]
                self._say(last.get("note") or f"v{last['version']}")
        self.status.setVisible(bool(self.status.text()))

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def set_counts(self, since_current: int) -> None:
        """Images corrected (denoise: reviewed) since the current model (after every save, from the store)."""
        current = self.project.store.current_model
        since = "so far" if current is None else f"since v{current}"
        auto = f"; a new round starts after {self.every.value()}" if self.auto.isChecked() and current else ""
        self.counter.setText(f"{since_current} image{'s' if since_current != 1 else ''} {self.done_word} {since}{auto}")

    # ------------------------------------------------------------------ run
    def maybe_auto_retrain(self, since_current: int | None = None) -> bool:
        """Start a round if auto-retrain is on, a first model exists and enough images were corrected."""
        if self.running or not self.auto.isChecked() or self.project.store.current_model is None:
            return False
        if since_current is None:
            since_current = loop.corrections_since_current(self.project)
        if since_current < self.every.value():
            return False
        self.message.emit("Enough new corrections: retraining in the background")
        self.start()
        return True

    def start(self, steps: int | None = None) -> None:
        """Train a round (``steps``: None for the configured number), then score with the new model."""
        self._run(self._round, steps, title="This round", text="Training in the background; keep correcting.")

    def start_scoring(self) -> None:
        """*Score now*: score every image not done with the current model and re-rank the queue."""
        if self.project.store.current_model is None:
            self.message.emit("No model yet: train one first")
            return
        self._run(self._score_only, title="Scoring", text="Scoring in the background; keep correcting.")

    def _run(self, fn, *args, title: str, text: str) -> None:
        if self.running:
            return
        self._stop.clear()
        self._idle.clear()
        self._loss, self._metric, self._skipped = [], [], []
        self._phase = ""
        self._job_mark = session.last_job_id(self.project)
        self.loss_curve.setData([], [])
        self.metric_curve.setData([], [])
        self._live_title(title)
        self._started = time.monotonic()
        self.progress.setRange(0, 0)
        self.progress.setFormat("starting…")
        self._say(text)
        for w in (self.start_button, self.score_button, self.backend, self.nproc):
            w.setEnabled(False)
        self.stop_button.setEnabled(True)
        self._where_timer.start()
        self.tabs.setCurrentIndex(0)

        def guarded(*a):
            try:
                return fn(*a)
            finally:
                self._idle.set()

        self._worker = workers.start(guarded, *args, on_done=self._finished, on_error=self._failed)
        self.running_changed.emit(True)

    def _round(self, steps: int | None) -> RoundOutcome:
        """Worker thread: train, then (if the model changed) score."""
        emit = self._bridge.progress.emit
        result = loop.train_round(self.project, steps=steps, progress=emit, should_stop=self._stop.is_set)
        outcome = RoundOutcome(result, skipped=list(result.skipped))
        if result.accepted and not result.cancelled and not self._stop.is_set():
            self._score(outcome)
        return outcome

    def _score_only(self) -> RoundOutcome:
        outcome = RoundOutcome(None)
        self._score(outcome)
        return outcome

    def _score(self, outcome: RoundOutcome) -> None:
        emit = self._bridge.progress.emit
        emit({"phase": "score", "step": 0, "total": 0})
        try:
            loop.score(self.project, progress=emit, should_stop=self._stop.is_set)
        except JobError as exc:
            outcome.scoring, outcome.scoring_error = "failed", in_words(exc)
            return
        complete = session.scoring_complete(self.project)
        outcome.scoring = "stopped" if self._stop.is_set() and not complete else "done"

    def stop(self) -> None:
        if self.running:
            self._stop.set()
            self.progress.setFormat(f"stopping {self._phase or 'the round'}…")
            self.stop_button.setEnabled(False)

    def _on_progress(self, event: dict) -> None:
        phase = event.get("phase", "train")
        self._phase = {"train": "training", "score": "scoring"}.get(phase, phase)
        if event.get("event") == "skipped":
            self._skipped.append(event)
            self._say(session.skipped_words(self._skipped))
            return
        if self._stop.is_set():
            return
        step = event.get("step", event.get("done"))
        total = event.get("total")
        if isinstance(total, int | float) and total > 0 and isinstance(step, int | float):
            self.progress.setRange(0, int(total))
            self.progress.setValue(int(step))
            eta = event.get("eta_s")
            if eta is None and step:
                eta = (time.monotonic() - self._started) / step * (total - step)
            self.progress.setFormat(f"{self._phase} %v/%m  {_fmt_eta(eta)}")
        else:
            self.progress.setRange(0, 0)
            self.progress.setFormat(f"{self._phase}…")
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

    def _scoring_words(self, outcome: RoundOutcome) -> str:
        current = self.project.store.current_model
        ranked = session.ranking_version(self.project)
        keeps = f"keeps the ranking of v{ranked}" if ranked is not None else "stays unranked"
        if outcome.scoring == "done":
            return f"The queue is ranked by v{current}."
        if outcome.scoring == "stopped":
            return f"Scoring stopped: the queue {keeps}. Press Score now to rank with v{current}."
        if outcome.scoring == "failed":
            return f"Scoring failed: {outcome.scoring_error}. The queue {keeps}; Score now tries again."
        return ""

    def _finished(self, outcome: RoundOutcome) -> None:
        self._done_ui()
        result = outcome.result
        lines = []
        if result is not None:
            if result.cancelled:
                lines.append("Training stopped: the current model is unchanged.")
            elif result.version is not None:
                lines.append((session.model_words(self.project, result.version) or result.message)
                             + (f" ({result.seconds:.0f} s)" if result.seconds else ""))
            else:
                lines.append(result.message)
            if result.hint:
                lines.append(f"Hint: {result.hint}")
        scoring = self._scoring_words(outcome)
        if scoring:
            lines.append(scoring)
        skipped = session.skipped_words(outcome.skipped or self._skipped)
        if skipped:
            lines.append(skipped)
        self._say("\n".join(lines))
        self.refresh_models(keep_status=True)
        if result is not None and result.version is not None and not result.cancelled:
            self.feedback.setText("")  # the run's own lines say it, with the scoring and skipped images
        self.message.emit(lines[0] if lines else "")
        if outcome.changed:
            self.model_updated.emit(outcome)

    def _failed(self, exc: Exception) -> None:
        self._done_ui()
        self.refresh_models(keep_status=True)
        what = "Scoring" if self._phase == "scoring" else "Training"
        self._say(f"{what} failed: {in_words(exc)}")
        self.message.emit(f"{what} failed: {in_words(exc)}")

    def shutdown(self, timeout_s: float = 120.0) -> bool:
        """Stop a running round and wait for its thread (the window is closing; the store closes after).

        Events keep being processed while waiting so the worker's last signals land. Returns False if
        the round did not end in time (then its jobs are still marked interrupted).
        """
        if self._idle.is_set():
            return True
        self.stop()
        deadline = time.monotonic() + timeout_s
        while not self._idle.wait(0.05) and time.monotonic() < deadline:
            QApplication.processEvents()
        finished = self._idle.is_set()
        settle = time.monotonic() + 5.0  # the thread's last signal (its result) is on its way
        while finished and self.running and time.monotonic() < settle:
            QApplication.processEvents()
            time.sleep(0.02)
        with contextlib.suppress(Exception):  # the store may already be unusable; never block closing
            session.mark_interrupted(self.project, self._job_mark)
        return finished
