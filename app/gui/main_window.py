"""The main window: composition of the image view, tool/layer panels, queue and training docks.

It wires signals and owns the lifecycle of the open image (load on a worker, autosave, time logging);
what an edit does is :mod:`annotation.editing`, what the loop does is :mod:`annotation.loop`.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QScrollArea, QVBoxLayout, QWidget

from annotation import loop
from annotation.project import Project

from . import auto_dialog, workers
from .image_view import ImageView
from .queue_panel import QueuePanel
from .shortcuts import ACTIONS, HelpOverlay, key_sequences
from .tool_panel import LayerPanel, ToolPanel
from .tools import ToolController
from .training_panel import TrainingPanel

log = logging.getLogger(__name__)


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
        self.saver = workers.Saver(self)
        self.saver.failed.connect(self._save_failed)

        self.view = ImageView()
        self.tools = ToolController(lambda: self.view.z, self)
        self.tools.call = self.saver.call
        self.view.canvas.handler = self.tools
        self.setCentralWidget(self.view)
        self.tool_panel = ToolPanel(self.tools)
        self.layers = LayerPanel()
        self.queue = QueuePanel(project)
        self.training = TrainingPanel(project)
        self._docks()
        self._status()
        self.actions: dict[str, QAction] = {}
        self._menus()
        self.help = HelpOverlay(self)
        self._wire()
        if project.task == "denoise":  # raw | denoised dock (app/gui/denoise_view.py)
            from .denoise_view import attach

            attach(self)
        self.setWindowTitle(self._title())
        self.resize(1500, 920)

    # ------------------------------------------------------------------ layout
    def _docks(self) -> None:
        self.docks: dict[str, QDockWidget] = {}
        left = QWidget()
        box = QVBoxLayout(left)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.tool_panel)
        box.addWidget(self.layers)
        box.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(290)
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
        self.resizeDocks([self.docks["Queue"], self.docks["Training"]], [520, 420], Qt.Orientation.Vertical)

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
        file_menu.addAction("&New project…", self.new_requested.emit)
        file_menu.addAction("&Open project…", lambda: self.open_requested.emit(""))
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        file_menu.addAction("&Export…", self.show_export)
        file_menu.addSeparator()
        file_menu.addAction("&Quit", self.close).setShortcut("Ctrl+Q")
        menus = {"edit": bar.addMenu("&Edit"), "tools": bar.addMenu("&Tools"), "view": bar.addMenu("&View"),
                 "image": bar.addMenu("&Image"), "model": bar.addMenu("&Model"), "help": bar.addMenu("&Help")}
        where = {"undo": "edit", "redo": "edit", "new_instance": "edit", "accept": "edit", "cancel": "edit",
                 "close_polygon": "edit", "brush_smaller": "tools", "brush_bigger": "tools",
                 "next": "image", "previous": "image", "z_up": "image", "z_down": "image", "channel": "image",
                 "reset_view": "view", "train": "model", "help": "help"}
        for action_id, (text, _keys, desc) in ACTIONS.items():
            act = QAction(text, self)
            act.setShortcuts(key_sequences(action_id))
            act.setStatusTip(desc)
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.triggered.connect(lambda _=False, a=action_id: self.trigger(a))
            self.addAction(act)  # shortcuts work wherever the focus is in the window
            group = "tools" if action_id.startswith("tool:") else "view" if action_id.startswith("toggle:") \
                else where.get(action_id)
            if group:
                menus[group].addAction(act)
            self.actions[action_id] = act
        menus["model"].addAction("Find the &best configuration…", lambda: auto_dialog.show(self))

    def _wire(self) -> None:
        t, v = self.tools, self.view
        t.edited.connect(v.refresh_box)
        t.stroke_active.connect(self._stroke_changed)
        t.committed.connect(self._committed)
        t.message.connect(lambda m: self.statusBar().showMessage(m, 4000))
        t.path_changed.connect(v.set_path)
        t.tool_changed.connect(lambda _t: v.set_cursor(t.cursor_diameter()))
        t.size_changed.connect(lambda _s: v.set_cursor(t.cursor_diameter()))
        t.value_changed.connect(lambda val: self.tool_panel.set_colour(v.luts["labels"][val % 256 if val else 0]))
        self.tool_panel.action.connect(self.trigger)
        self.layers.visibility.connect(v.set_overlay_visible)
        self.layers.opacity.connect(v.set_overlay_opacity)
        v.readout.connect(self.readout.setText)
        v.time_changed.connect(lambda tt: self.open_image(self.image_id, tt) if self.image_id else None)
        self.queue.image_selected.connect(self.open_image)
        self.training.model_updated.connect(self._model_updated)
        self.training.message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        v.set_cursor(t.cursor_diameter())

    # ------------------------------------------------------------------ actions
    def trigger(self, action_id: str) -> None:
        """Run one action by id (menus, shortcuts, buttons and tests all come through here)."""
        t = self.tools
        kind, _, arg = action_id.partition(":")
        simple = {
            "undo": t.undo, "redo": t.redo, "new_instance": t.new_instance, "accept": t.accept_prediction,
            "brush_smaller": lambda: t.grow(1 / 1.25), "brush_bigger": lambda: t.grow(1.25),
            "close_polygon": t.close_polygon, "next": self.queue.next, "previous": self.queue.previous,
            "z_up": lambda: self.view.step_z(1), "z_down": lambda: self.view.step_z(-1),
            "channel": self.view.cycle_channel, "reset_view": self.view.reset_view,
            "train": self.training.start, "help": self.help.toggle, "cancel": self._cancel,
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
        """Fill the queue and open ``image_id`` or the queue's first image."""
        self.queue.refresh_now()
        first = image_id or self.queue.first_image()
        if first is not None:
            self.open_image(first)

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
        if loaded.record.id != self._loading:
            return  # the user moved on while this was loading
        self.image_id = loaded.record.id
        self.view.set_image(loaded, self.project.task)
        self.tools.set_editor(loaded.editor, self.project.task)
        self.layers.set_available("prediction", loaded.prediction is not None)
        self.layers.set_available("uncertainty", loaded.uncertainty is not None)
        self.tool_panel.set_colour(self.view.luts["labels"][self.tools.value % 256])
        self.setWindowTitle(self._title())
        self.statusBar().showMessage(f"{loaded.record.name}: starting from "
                                     f"{'your correction' if loaded.editor.has_corrected else loaded.editor.initial_version or 'an empty label'}",
                                     5000)
        self.image_loaded.emit(self.image_id)

    def _load_failed(self, exc: Exception) -> None:
        """Non-modal: a file that went missing must not block the window (or a screenshot run)."""
        self.statusBar().showMessage(f"Cannot open image: {exc}", 15000)
        box = QMessageBox(QMessageBox.Icon.Warning, "Cannot open image", str(exc), parent=self)
        box.setModal(False)
        box.show()

    # ------------------------------------------------------------------ saving, title, model updates
    def _title(self) -> str:
        name = self.view.loaded.record.name if self.view.loaded else ""
        star = "*" if self._stroke else ""
        return f"{star}{self.project.root.name}{' — ' + name if name else ''} — im2im-active"

    def _stroke_changed(self, active: bool) -> None:
        self._stroke = active
        self.setWindowTitle(self._title())

    def _committed(self) -> None:
        self.save_state.setText("saving…")
        QTimer.singleShot(0, self._update_save_state)
        if self.image_id is not None:
            self.queue.mark(self.image_id, "in_progress")
        self.training.maybe_auto_retrain()

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

    def _model_updated(self, _result) -> None:
        """New model + scores: re-rank the queue and show the new prediction without disturbing edits."""
        self.queue.refresh()
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
            if iid == self.image_id:
                self.view.set_prediction(None if pred is None else as_zyx(pred), None if unc is None else as_zyx(unc))
                self.layers.set_available("prediction", pred is not None)
                self.layers.set_available("uncertainty", unc is not None)

        workers.start(fetch, on_done=show)

    def show_export(self) -> None:
        """File → Export…: model or labels, exported on a worker thread (see :mod:`.export_dialog`)."""
        from .export_dialog import ExportDialog

        dialog = ExportDialog(self.project, self)
        dialog.finished_export.connect(lambda r: self.statusBar().showMessage(
            r.summary() if hasattr(r, "summary") else f"Export failed: {r}", 10000))
        dialog.show()
        self.export_dialog = dialog

    # ------------------------------------------------------------------ recent, close
    def _fill_recent(self) -> None:
        from .wizard import recent_projects

        self.recent_menu.clear()
        for path in recent_projects():
            self.recent_menu.addAction(path, lambda p=path: self.open_requested.emit(p))

    def shutdown(self) -> None:
        """Everything on disk, workers stopped: called before the window goes away (idempotent)."""
        if getattr(self, "_shut", False):
            return
        self._shut = True
        self.tools.cancel()
        self._finish_image()
        self.training.shutdown()
        self.saver.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        QSettings().setValue("main/geometry", self.saveGeometry())
        super().closeEvent(event)
