"""The main window: composition of the image view, review bar, tool/display panels, queue and training docks.

It wires signals and owns the lifecycle of the open image (load on a worker, autosave, time logging) and of
the session (quitting while a round runs); what an edit does is :mod:`annotation.editing`, what the loop
does is :mod:`annotation.loop`, what the session shows is :mod:`annotation.session`. Other windows and
dialogs hook in through :attr:`MainWindow.menus` (``menus["model"].addAction(...)``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from annotation import loop, session
from annotation.project import Project

from . import auto_dialog, workers
from .display_panel import DisplayPanel, LabelList
from .errors import in_words
from .image_view import ImageView
from .queue_panel import QueuePanel
from .review import ReviewBar
from .shortcuts import ACTIONS, HelpOverlay, key_sequences
from .tool_panel import LayerPanel, ToolPanel
from .tools import ToolController
from .training_panel import TrainingPanel

log = logging.getLogger(__name__)
README = Path(__file__).resolve().parents[2] / "README.md"

#: where each action of shortcuts.ACTIONS goes in the menus (tools, toggles and label values by prefix)
MENU_OF = {"undo": "edit", "redo": "edit", "new_instance": "edit", "accept": "edit", "cancel": "edit",
           "close_polygon": "edit", "brush_smaller": "tools", "brush_bigger": "tools",
           "done_next": "image", "skip": "image", "next": "image", "previous": "image", "z_up": "image",
           "z_down": "image", "channel": "image", "reset_view": "view", "zoom_in": "view", "zoom_out": "view",
           "outline": "view", "auto_contrast": "view", "train": "model", "score": "model", "stop": "model",
           "help": "help"}


def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("im2im-active")
    except Exception:  # running from a source tree that is not installed
        return "unknown"


class MainWindow(QMainWindow):
    """One open project. ``image_loaded`` fires once an image is on screen (tests, screenshots)."""

    image_loaded = Signal(int)
    open_requested = Signal(str)  # File > Open / recent: the launcher swaps windows
    new_requested = Signal()

    def __init__(self, project: Project, parent: QWidget | None = None):
        super().__init__(parent)
        self.project = project
        self.image_id: int | None = None
        self._loading: int | None = None
        self._stroke = False
        self._shut = False
        self.saver = workers.Saver(self)
        self.saver.failed.connect(self._save_failed)

        self.view = ImageView()
        self.review = ReviewBar()
        self.tools = ToolController(lambda: self.view.z, self)
        self.tools.call = self.saver.call
        self.tools.max_value = self._max_class(project)
        self.view.canvas.handler = self.tools
        central = QWidget()
        box = QVBoxLayout(central)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(0)
        box.addWidget(self.review)
        box.addWidget(self.view, 1)
        self.central_box = box  # a denoise project puts its raw | denoised view here instead of the canvas
        self.setCentralWidget(central)
        self.tool_panel = ToolPanel(self.tools)
        self.layers = LayerPanel()
        self.display = DisplayPanel(self.view)
        self.label_list = LabelList()
        self.queue = QueuePanel(project)
        self.training = TrainingPanel(project)
        self._docks()
        self._status()
        self.actions: dict[str, QAction] = {}
        self.menus: dict[str, QMenu] = {}
        self._menus()
        self.help = HelpOverlay(self)
        self._wire()
        if project.task == "denoise":  # raw | denoised in place of the canvas (app/gui/denoise_view.py)
            from .denoise_view import attach

            attach(self)
        self.setWindowTitle(self._title())
        self.resize(1500, 920)

    @staticmethod
    def _max_class(project: Project) -> int | None:
        """A semantic project's highest class id: painting more would fail its next training."""
        if project.task != "semantic":
            return None
        try:
            return int(project.engine_config().task.num_classes) - 1
        except Exception as exc:  # an invalid config is reported when training starts
            log.warning("could not read the number of classes: %s", exc)
            return None

    # ------------------------------------------------------------------ layout
    def _docks(self) -> None:
        self.docks: dict[str, QDockWidget] = {}
        left = QWidget()
        box = QVBoxLayout(left)
        box.setContentsMargins(0, 0, 0, 0)
        for panel in (self.tool_panel, self.layers, self.display, self.label_list):
            box.addWidget(panel)
        box.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(300)
        for title, widget, area in (("Tools", scroll, Qt.DockWidgetArea.LeftDockWidgetArea),
                                    ("Queue", self.queue, Qt.DockWidgetArea.RightDockWidgetArea),
                                    ("Training", self.training, Qt.DockWidgetArea.RightDockWidgetArea)):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{title.lower()}")
            dock.setWidget(widget)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                             | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
            self.addDockWidget(area, dock)
            self.docks[title] = dock
        self.queue.setMinimumWidth(380)
        self.resizeDocks([self.docks["Queue"], self.docks["Training"]], [480, 460], Qt.Orientation.Vertical)

    def _status(self) -> None:
        self.readout = QLabel("")
        self.readout.setObjectName("readout")
        self.save_state = QLabel("saved")
        self.save_state.setObjectName("muted")
        self.statusBar().addWidget(self.readout, 1)
        self.statusBar().addPermanentWidget(self.save_state)

    def _menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction("&New project…", lambda: self.new_requested.emit())
        file_menu.addAction("&Open project…", lambda: self.open_requested.emit(""))
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(lambda: self._fill_recent())
        file_menu.addSeparator()
        self.export_action = file_menu.addAction("&Export…", lambda: self.show_export())
        file_menu.addSeparator()
        self.quit_action = file_menu.addAction("&Quit", lambda: self.close())
        self.quit_action.setShortcut("Ctrl+Q")
        self.menus = {"file": file_menu, "edit": bar.addMenu("&Edit"), "tools": bar.addMenu("&Tools"),
                      "view": bar.addMenu("&View"), "image": bar.addMenu("&Image"), "model": bar.addMenu("&Model"),
                      "help": bar.addMenu("&Help")}
        for action_id, (text, _keys, desc) in ACTIONS.items():
            act = QAction(text, self)
            act.setShortcuts(key_sequences(action_id))
            act.setStatusTip(desc)
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.triggered.connect(lambda _=False, a=action_id: self.trigger(a))
            self.addAction(act)  # shortcuts work wherever the focus is in the window
            group = "tools" if action_id.startswith("tool:") else "view" if action_id.startswith("toggle:") \
                else MENU_OF.get(action_id)
            if group:
                self.menus[group].addAction(act)
            self.actions[action_id] = act
        self.menus["model"].addAction("Find the &best configuration…", lambda: auto_dialog.show(self))
        image = self.menus["image"]
        image.addSeparator()
        self.reset_menu = image.addMenu("Reset label")
        for to, act in self.review.reset_actions.items():
            self.reset_menu.addAction(act)
            self.actions[f"reset:{to}"] = act
        self.exclude_action = image.addAction("Exclude this image…", lambda: self.ask_exclude())
        self.exclude_action.setStatusTip("Leave this image out of training, scoring and the queue (labels kept)")
        self.include_menu = image.addMenu("Include again")
        self.include_menu.aboutToShow.connect(lambda: self._fill_include())
        self.menus["help"].addSeparator()
        self.about_action = self.menus["help"].addAction("&About im2im-active", lambda: self.show_about())

    def _wire(self) -> None:
        t, v = self.tools, self.view
        t.edited.connect(lambda box, version: self._edited(box, version))
        t.stroke_active.connect(lambda active: self._stroke_changed(active))
        t.committed.connect(lambda: self._committed())
        t.message.connect(lambda m: self.statusBar().showMessage(m, 4000))
        t.path_changed.connect(lambda points, closed: v.set_path(points, closed))
        t.tool_changed.connect(lambda _t: v.set_cursor(t.cursor_diameter()))
        t.size_changed.connect(lambda _s: v.set_cursor(t.cursor_diameter()))
        t.value_changed.connect(lambda val: self.tool_panel.set_colour(v.luts["labels"][val % 256 if val else 0]))
        self.tool_panel.action.connect(lambda a: self.trigger(a))
        self.layers.visibility.connect(lambda name, on: v.set_overlay_visible(name, on))
        self.layers.opacity.connect(lambda name, value: v.set_overlay_opacity(name, value))
        self.label_list.picked.connect(lambda value: t.set_value(value))
        v.readout.connect(lambda text: self.readout.setText(text))
        v.time_changed.connect(lambda tt: self.open_image(self.image_id, tt) if self.image_id else None)
        self.review.done.connect(lambda: self.done_next())
        self.review.skip.connect(lambda: self.queue.next())
        self.review.reset.connect(lambda to: self.tools.reset_label(to))
        self.queue.image_selected.connect(lambda image_id: self.open_image(image_id))
        self.training.model_updated.connect(lambda outcome: self._model_updated(outcome))
        self.training.message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.training.running_changed.connect(lambda running: self.actions["stop"].setEnabled(running))
        self.actions["stop"].setEnabled(False)
        v.set_cursor(t.cursor_diameter())

    # ------------------------------------------------------------------ actions
    def trigger(self, action_id: str) -> None:
        """Run one action by id (menus, shortcuts and buttons come through here)."""
        t, v = self.tools, self.view
        kind, _, arg = action_id.partition(":")
        simple = {
            "undo": t.undo, "redo": t.redo, "new_instance": t.new_instance, "accept": t.accept_prediction,
            "brush_smaller": lambda: t.grow(1 / 1.25), "brush_bigger": lambda: t.grow(1.25),
            "close_polygon": t.close_polygon, "next": self.queue.next, "previous": self.queue.previous,
            "skip": self.queue.next, "done_next": self.done_next,
            "z_up": lambda: v.step_z(1), "z_down": lambda: v.step_z(-1),
            "channel": v.cycle_channel, "reset_view": v.reset_view,
            "zoom_in": lambda: v.zoom(1.25), "zoom_out": lambda: v.zoom(1 / 1.25),
            "outline": self.display.outlines.toggle, "auto_contrast": lambda: v.set_contrast("auto"),
            "train": lambda: self.training.start(), "score": lambda: self.training.start_scoring(),
            "stop": lambda: self.training.stop(), "help": self.help.toggle, "cancel": self._cancel,
        }
        if kind == "tool":
            t.set_tool(arg)
        elif kind == "toggle":
            self.layers.toggle(arg)
        elif kind == "value":
            t.set_value(int(arg))
        elif action_id in simple:
            simple[action_id]()

    def _cancel(self) -> None:
        if self.help.isVisible():
            self.help.hide()
        self.tools.cancel()

    # ------------------------------------------------------------------ images
    def start(self, image_id: int | None = None) -> None:
        """Rank the queue (on a worker) and open ``image_id`` or the queue's first image once it is in."""
        def first() -> None:
            self.queue.refreshed.disconnect(first)
            target = image_id or self.queue.first_image()
            if target is not None and not self._shut:
                self.open_image(target)

        self.queue.refreshed.connect(first)
        self.queue.refresh()

    def open_image(self, image_id: int, t: int = 0) -> None:
        """Switch images: finish the current one (time logged, writes queued) and load on a worker."""
        self.tools.cancel()
        self._finish_image()
        self._loading = image_id
        self.queue.set_current(image_id)
        self.statusBar().showMessage("Loading…")

        def load():
            self.saver.wait()  # the new editor must see every queued write
            return workers.load_image(self.project, image_id, t, writer=self.saver.writer)

        workers.start(load, on_done=self._loaded, on_error=self._load_failed)

    def _finish_image(self) -> None:
        ed = self.view.editor
        if ed is not None and self.image_id is not None:
            seconds = ed.close()
            if seconds > 0:
                self.saver.writer(lambda: loop.record_time(self.project, ed.image_id, seconds))

    def _loaded(self, loaded: workers.LoadedImage) -> None:
        if loaded.record.id != self._loading or self._shut:
            return  # the user moved on while this was loading
        self.image_id = loaded.record.id
        self.view.set_image(loaded, self.project.task)
        self.tools.set_editor(loaded.editor, self.project.task)
        self.layers.set_available("prediction", loaded.prediction is not None)
        self.layers.set_available("uncertainty", loaded.uncertainty is not None)
        self.tool_panel.set_colour(self.view.luts["labels"][self.tools.value % 256])
        self.label_list.show_label(loaded.editor.label, self.view.luts["labels"], now=True)
        self.setWindowTitle(self._title())
        self.review.set_state(loaded.record.review, self._source_words(), loaded.prediction is not None)
        source = self._source_words()
        self.statusBar().showMessage(f"{loaded.record.name}: {source}" if source else loaded.record.name, 5000)
        self._after_save(self.image_id)
        self.image_loaded.emit(self.image_id)

    def _source_words(self) -> str:
        ed = self.view.editor
        if ed is None or self.project.task == "denoise":  # no label to start from
            return ""
        if ed.has_corrected:
            return "your correction"
        if ed.initial_version == "prediction":
            loaded = self.view.loaded
            return f"starts from the prediction of v{loaded.model_version}" if loaded and loaded.model_version \
                else "starts from the prediction"
        return "starts from the pseudo label" if ed.initial_version == "pseudo" else "starts empty"

    def _load_failed(self, exc: Exception) -> None:
        """Non-modal: a file that went missing must not block the window (or a screenshot run)."""
        text = in_words(exc)
        self.statusBar().showMessage(f"Cannot open image: {text}", 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, "Cannot open image", text, parent=self)
        box.setModal(False)
        box.show()

    # ------------------------------------------------------------------ review workflow
    def done_next(self) -> None:
        """*Done → next*: the person has checked all of this image; open the next image to review."""
        ed, image_id = self.tools.editor, self.image_id
        if ed is None or image_id is None:
            return
        self.tools.cancel()
        following = self.queue.next_to_review(image_id)
        try:
            ed.mark_done()  # queued on the saver, in order after the strokes
        except Exception as exc:
            self.statusBar().showMessage(f"Not marked done: {in_words(exc)}", 8000)
            return
        self.queue.set_state(image_id, "done")
        self.review.set_state("done", "your correction", self.view.loaded.prediction is not None)
        self._after_save(image_id, rerank=True)
        self.statusBar().showMessage(f"{self.view.loaded.record.name} done", 4000)
        if following is not None:
            self.open_image(following)
        else:
            self.statusBar().showMessage("Every image in the queue is done. Train now, or File → Export…", 15000)

    def ask_exclude(self) -> None:
        """*Image → Exclude this image…*: ask why, then leave it out (labels kept; *Include again* undoes)."""
        if self.image_id is None or self.view.loaded is None:
            return
        image_id, name = self.image_id, self.view.loaded.record.name
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Exclude image")
        dialog.setLabelText(f"Leave {name} out of training, scoring and the queue?\nIts labels and corrections "
                            "are kept; Image → Include again brings it back.\n\nWhy (shown in the project):")
        dialog.setTextValue("not suitable for training")
        dialog.setOkButtonText("Exclude")
        dialog.textValueSelected.connect(lambda reason: self._exclude(image_id, reason.strip() or "excluded"))
        self.exclude_dialog = dialog
        dialog.open()

    def _exclude(self, image_id: int, reason: str | None) -> None:
        store = self.project.store
        following = self.queue.next_to_review(image_id) if reason is not None else None
        self.saver.writer(lambda: store.set_excluded(image_id, reason))
        self._after_save(None, rerank=True)
        if reason is None:
            self.statusBar().showMessage("Included again", 4000)
        elif image_id == self.image_id:
            self.statusBar().showMessage(f"Excluded: {reason}", 6000)
            if following is not None:
                self.open_image(following)

    def _fill_include(self) -> None:
        self.include_menu.clear()
        excluded = session.excluded_images(self.project)
        if not excluded:
            self.include_menu.addAction("(no excluded images)").setEnabled(False)
        for image_id, name, reason in excluded:
            self.include_menu.addAction(f"{name} — {reason}", lambda i=image_id: self._exclude(i, None))

    # ------------------------------------------------------------------ saving, title, model updates
    def _title(self) -> str:
        name = self.view.loaded.record.name if self.view.loaded else ""
        star = "*" if self._stroke else ""
        return f"{star}{self.project.root.name}{' — ' + name if name else ''} — im2im-active"

    def _stroke_changed(self, active: bool) -> None:
        self._stroke = active
        self.setWindowTitle(self._title())

    def _edited(self, box, version: str) -> None:
        self.view.refresh_box(box, version)
        if version != "ignore" and self.view.editor is not None:
            self.label_list.show_label(self.view.editor.label, self.view.luts["labels"])

    def _committed(self) -> None:
        self.save_state.setText("saving…")
        QTimer.singleShot(0, self._update_save_state)
        if self.image_id is not None:
            self._after_save(self.image_id)

    def _after_save(self, image_id: int | None, rerank: bool = False) -> None:
        """Once every queued write is stored: the image's review state, the counters and auto-retrain, all
        read from the store (one source of truth), and a new ranking if ``rerank``."""
        project = self.project

        def read():
            try:
                return session.counters(project, image_id)
            except Exception as exc:
                log.warning("could not read the counters: %s", exc)
                return None

        self.saver.call(read, lambda c: self._show_counters(image_id, c, rerank))

    def _show_counters(self, image_id: int | None, counters: dict | None, rerank: bool) -> None:
        if self._shut or counters is None:
            return
        if image_id is not None and counters["review"] is not None:
            self.queue.set_state(image_id, counters["review"])
            if image_id == self.image_id and self.view.loaded is not None:
                self.review.set_state(counters["review"], self._source_words(),
                                      self.view.loaded.prediction is not None)
        self.queue.set_counts(counters["counts"], counters["excluded"])
        self.training.set_counts(counters["since_current"])
        if rerank:
            self.queue.refresh()
        self.training.maybe_auto_retrain(counters["since_current"])

    def _update_save_state(self) -> None:
        if self.saver.busy:
            QTimer.singleShot(100, self._update_save_state)
        else:
            self.save_state.setText("saved")

    def _save_failed(self, message: str) -> None:
        QMessageBox.critical(self, "Not saved", f"{message}\n\nThe image is reloaded from the project.")
        if self.image_id is not None:
            self._reload()

    def _reload(self) -> None:
        self.view.loaded = None
        self.open_image(self.image_id)

    def _model_updated(self, _outcome) -> None:
        """New model or scores: re-rank the queue and show the new prediction without disturbing edits."""
        self.queue.refresh()
        self._after_save(None)
        if self.image_id is None or self.tools.editor is None:
            return
        image_id, name = self.image_id, self.view.loaded.record.name

        def fetch():
            store = self.project.store
            pred = store.get_label(image_id, "prediction")
            path = workers.uncertainty_file(self.project, store.current_model, name)
            unc = None
            if path is not None:
                import numpy as np

                with np.load(path) as npz:
                    unc = np.asarray(npz["uncertainty"], np.float32)
            return image_id, pred, unc

        def show(result) -> None:
            from annotation.editing import as_zyx

            iid, pred, unc = result
            if iid == self.image_id and not self._shut:
                self.view.set_prediction(None if pred is None else as_zyx(pred), None if unc is None else as_zyx(unc))
                self.layers.set_available("prediction", pred is not None)
                self.layers.set_available("uncertainty", unc is not None)
                self.review.reset_actions["prediction"].setEnabled(pred is not None)

        workers.start(fetch, on_done=show)

    def show_export(self) -> None:
        """File → Export…: model or labels, exported on a worker thread (see :mod:`.export_dialog`)."""
        from .export_dialog import ExportDialog

        dialog = ExportDialog(self.project, self)
        dialog.finished_export.connect(lambda r: self.statusBar().showMessage(
            r.summary() if hasattr(r, "summary") else f"Export failed: {in_words(r)}", 10000))
        dialog.show()
        self.export_dialog = dialog

    def show_about(self) -> None:
        """Help → About: the version and where the README is."""
        link = README.as_uri() if README.exists() else "https://pypi.org/project/im2im-active/"
        box = QMessageBox(QMessageBox.Icon.Information, "About im2im-active",
                          f"<b>im2im-active {version()}</b><br>Human-in-the-loop active learning for microscopy "
                          f"images.<br><br>How a session goes, the CLI and what the app guarantees about your data: "
                          f"<a href='{link}'>README</a><br><small>{link}</small>", parent=self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        box.setModal(False)
        self.about_box = box
        box.show()

    # ------------------------------------------------------------------ recent, close
    def _fill_recent(self) -> None:
        from .wizard import recent_projects

        self.recent_menu.clear()
        for path in recent_projects():
            self.recent_menu.addAction(path, lambda p=path: self.open_requested.emit(p))

    def _search_running(self) -> bool:
        dialog = getattr(self, "auto_dialog", None)  # Model → Find the best configuration…
        return dialog is not None and dialog.running

    def confirm_close(self) -> bool:
        """Ask before closing while a round (or a configuration search) runs: it is stopped (its unfinished
        model is not kept) if the person agrees."""
        if self._shut or not (self.training.running or self._search_running()):
            return True
        what = "A training or scoring round" if self.training.running else "A configuration search"
        box = QMessageBox(QMessageBox.Icon.Question, "Work is running",
                          f"{what} is running in the background. Stop it and close the project?\n\nThe "
                          "current model and all your corrections are kept; the unfinished work is not.",
                          parent=self)
        stop = box.addButton("Stop and close", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Keep working", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(stop)
        self.close_question = box
        box.exec()
        return box.clickedButton() is stop

    def shutdown(self) -> None:
        """Everything on disk, the round stopped and waited for, workers done: called before the window goes
        away and the project's store is closed (idempotent)."""
        if self._shut:
            return
        self._shut = True
        self.tools.cancel()
        self._finish_image()
        if self.training.running:
            self.statusBar().showMessage("Stopping the round…")
            self.setEnabled(False)
        if not self.training.shutdown():
            log.warning("the round did not stop in time; its jobs are marked interrupted")
        search = getattr(self, "auto_dialog", None)
        if search is not None and search.running:
            search.stop()  # its running training is cancelled within a step
        self.saver.shutdown()
        # loads, thumbnails, a stopping search: nothing may touch the store once it is closed
        QThreadPool.globalInstance().waitForDone(60000 if search is not None else 15000)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.confirm_close():
            event.ignore()
            return
        self.shutdown()
        QSettings().setValue("main/geometry", self.saveGeometry())
        super().closeEvent(event)
