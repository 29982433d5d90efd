"""The plugin's dock widgets: Project, Queue, Train, Export.

Thin views over :class:`~app.napari._session.Session` (one per viewer, shared by the four) and
:mod:`annotation`: creating a project is :func:`annotation.setup.init_project`, the queue is
:func:`annotation.loop.queue`, a round is :func:`annotation.loop.train_round` + :func:`~annotation.loop.score`
in the engine worker subprocess, an export is :func:`annotation.export.export`. Anything slow runs on a
thread worker; the widgets only show progress and results. Qt comes through qtpy, so the plugin runs on
the binding napari runs on.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from annotation import loop, strategies
from annotation.export import FORMATS, USES_MODEL, default_output, formats_for
from annotation.project import TASKS, Project

from . import _threads
from ._session import Session, session_for

EXPORT_TEXT = {
    "torchscript": "Model: TorchScript",
    "onnx": "Model: ONNX",
    "bioimageio": "Model: BioImage Model Zoo",
    "labels": "Labels: OME-TIFF + CSV",
    "pairs": "Training pairs (_IM/_GT/_CM)",
    "denoised": "Denoised images: OME-TIFF + CSV",
}
#: Where pseudo labels of a new project come from.
LABEL_SOURCES = {"otsu": "Otsu threshold (pseudo labels)", "layers": "Labels layers (matched by name)",
                 "none": "none"}


def _muted(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: #9aa0a6;")
    return label


def _bar() -> QProgressBar:
    bar = QProgressBar()
    bar.setRange(0, 1)
    bar.setValue(0)
    bar.setFormat("idle")
    return bar


def _set_progress(bar: QProgressBar, done: Any, total: Any, what: str) -> None:
    if isinstance(total, int | float) and total > 0 and isinstance(done, int | float):
        bar.setRange(0, int(total))
        bar.setValue(int(done))
        bar.setFormat(f"{what} %v/%m" if what else "%v/%m")
    else:
        bar.setRange(0, 0)  # busy
        bar.setFormat(what)


def _idle(bar: QProgressBar, text: str = "idle") -> None:
    bar.setRange(0, 1)
    bar.setValue(0)
    bar.setFormat(text)


class _PluginWidget(QWidget):
    """A widget bound to the viewer's session. Its connections to the session and the viewer go through
    :meth:`link`, so they are cut when napari deletes the widget (no callback into a deleted widget)."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.viewer = napari_viewer
        self.session: Session = session_for(napari_viewer)
        links: list[tuple[Any, Any]] = []
        self._links = links
        self.session.register(self, links)
        state = self._state = {"alive": True}
        self.destroyed.connect(lambda *_: state.update(alive=False))

    def guarded(self, fn: Any) -> Any:
        """``fn`` for a worker's callback: skipped once napari has deleted this widget."""
        state = self._state

        def call(*args: Any) -> None:
            if state["alive"]:
                fn(*args)

        return call

    def link(self, signal: Any, slot: Any) -> None:
        """``signal.connect(slot)``, disconnected when this widget is deleted."""
        signal.connect(slot)
        self._links.append((signal, slot))

    @property
    def project(self) -> Project | None:
        return self.session.project


# ================================================================================================ project
def _safe_stem(name: str, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "image"
    out, i = stem, 1
    while out in taken:
        i += 1
        out = f"{stem}_{i}"
    taken.add(out)
    return out


def layer_array(layer: Any) -> np.ndarray:
    """The full-resolution pixels of a layer as numpy (level 0 of a multiscale layer)."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.asarray(data)


def match_labels(images: list[Any], labels: list[Any]) -> dict[str, Any]:
    """Labels layer for each image layer: the one whose name starts with the image's name (longest name
    first, so ``cells`` does not take ``cells_2 masks``) and whose shape is the image's spatial shape."""
    out: dict[str, Any] = {}
    free = list(labels)
    for image in sorted(images, key=lambda lay: -len(lay.name)):
        shape = layer_array(image).shape[:-1] if getattr(image, "rgb", False) else layer_array(image).shape
        for lab in free:
            if lab.name.startswith(image.name) and tuple(layer_array(lab).shape) == tuple(shape):
                out[image.name] = lab
                free.remove(lab)
                break
    return out


def write_layer_images(folder: Path, images: list[Any], labels: dict[str, Any] | None = None) -> tuple[Path, Path | None]:
    """Each Image layer as ``folder/images/NAME.ome.tif`` (pixel sizes from the layer's scale) and, when
    given, its Labels layer as ``folder/labels/NAME.ome.tif``: the files a project references."""
    from im2im_engine import io

    img_dir = folder / "images"
    lab_dir = folder / "labels" if labels else None
    taken: set[str] = set()
    for layer in images:
        data = layer_array(layer)
        rgb = bool(getattr(layer, "rgb", False))
        spatial = data.ndim - (1 if rgb else 0)
        if spatial not in (2, 3):
            raise ValueError(f"layer {layer.name!r} has {spatial} spatial axes; a project image is 2D or 3D "
                             "(one timepoint): split time-lapses first")
        sizes = tuple(float(s) for s in layer.scale[-spatial:])
        pps = (None, *sizes) if spatial == 2 else sizes
        stem = _safe_stem(layer.name, taken)
        if rgb:
            order = "CYX" if spatial == 2 else "CZYX"
            io.write_ome_tiff(img_dir / f"{stem}.ome.tif", np.moveaxis(data, -1, 0), dim_order=order,
                              physical_pixel_sizes=pps)
        else:
            io.write_ome_tiff(img_dir / f"{stem}.ome.tif", data, physical_pixel_sizes=pps)
        lab = (labels or {}).get(layer.name)
        if lab is not None and lab_dir is not None:
            io.write_ome_tiff(lab_dir / f"{stem}.ome.tif", layer_array(lab).astype(np.int32), physical_pixel_sizes=pps)
    return img_dir, lab_dir


class ProjectWidget(_PluginWidget):
    """Create a project (from a folder, or from the image layers open in the viewer) or open one."""

    created = Signal(object)  # Project, or the exception that stopped the creation

    def __init__(self, napari_viewer: Any):
        super().__init__(napari_viewer)
        self.worker = None
        self._sources: list[Any] = []
        self._bridge = _threads.Bridge()
        self.path = QLineEdit()
        self.path.setPlaceholderText("project folder")
        browse = QPushButton("…")
        browse.setToolTip("Choose the project folder")
        browse.clicked.connect(self._browse_project)
        open_button = QPushButton("Open")
        open_button.setToolTip("Open the project in this folder (project.db)")
        open_button.clicked.connect(lambda: self.open(self.path.text()))
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        row.addWidget(open_button)

        self.task = QComboBox()
        self.task.addItems(list(TASKS))
        self.task.setCurrentText("instance")
        self.source = QComboBox()
        self.source.addItem("Image layers in the viewer", "layers")
        self.source.addItem("A folder of images", "folder")
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("images folder")
        self.layer_list = QListWidget()
        self.layer_list.setMaximumHeight(110)
        self.pseudo = QComboBox()
        for key, text in LABEL_SOURCES.items():
            self.pseudo.addItem(text, key)
        self.remove_sources = QCheckBox("Remove the layers once saved into the project")
        self.remove_sources.setChecked(True)
        self.remove_sources.setToolTip("Their pixels are written into PROJECT/data/; the queue opens them again")
        self.create_button = QPushButton("Create project")
        self.create_button.clicked.connect(self._create_clicked)
        self._folder_label, self._layers_label = QLabel("Images"), QLabel("Layers")
        form = QFormLayout()
        form.addRow("From", self.source)
        form.addRow(self._folder_label, self.folder)
        form.addRow(self._layers_label, self.layer_list)
        form.addRow("Task", self.task)
        form.addRow("Labels", self.pseudo)
        new_box = self.new_box = QGroupBox("New project")
        new_layout = QVBoxLayout(new_box)
        new_layout.addLayout(form)
        new_layout.addWidget(self.remove_sources)
        new_layout.addWidget(self.create_button)

        self.bar = _bar()
        self.status = _muted("No project open.")
        self.new_button = QPushButton("New project…")
        self.new_button.setToolTip("Create another project (from layers or a folder)")
        self.new_button.clicked.connect(lambda: (self.new_box.show(), self.new_button.hide()))
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Project folder"))
        layout.addLayout(row)
        layout.addWidget(self.new_button)
        layout.addWidget(new_box)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)  # height to the queue

        self.source.currentIndexChanged.connect(self._source_changed)
        self.link(napari_viewer.layers.events.inserted, self._fill_layers)
        self.link(napari_viewer.layers.events.removed, self._fill_layers)
        self.link(self.session.project_changed, self._show_project)
        self.link(self.session.review_changed, self._refresh_project)
        self.link(self.session.model_updated, self._refresh_project)
        self._fill_layers()
        self._source_changed()
        self._show_project(self.project)

    # ------------------------------------------------------------------ ui
    def _source_changed(self) -> None:
        from_layers = self.source.currentData() == "layers"
        for widget in (self.layer_list, self._layers_label, self.remove_sources):
            widget.setVisible(from_layers)
        for widget in (self.folder, self._folder_label):
            widget.setVisible(not from_layers)

    def _fill_layers(self, *_: Any) -> None:
        from napari.layers import Image

        checked = {self.layer_list.item(i).text() for i in range(self.layer_list.count())
                   if self.layer_list.item(i).checkState() == Qt.CheckState.Checked}
        self.layer_list.clear()
        for layer in self.viewer.layers:
            if isinstance(layer, Image) and not (layer.metadata or {}).get("im2im_project"):
                item = QListWidgetItem(layer.name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if (layer.name in checked or not checked)
                                   else Qt.CheckState.Unchecked)
                self.layer_list.addItem(item)

    def _browse_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Project folder", self.path.text() or str(Path.home()))
        if folder:
            self.path.setText(folder)

    def _refresh_project(self, *_: Any) -> None:
        self._show_project(self.project)

    def _show_project(self, project: Project | None) -> None:
        self.new_box.setVisible(project is None)  # with a project open, the form waits behind a button
        self.new_button.setVisible(project is not None)
        if project is None:
            self.status.setText("No project open.")
            return
        store = project.store
        counts = store.review_counts()
        current = store.current_model
        self.path.setText(str(project.root))
        self.status.setText(
            f"{project.root.name}: {project.task}, {sum(counts.values())} images "
            f"({counts['untouched']} untouched, {counts['in_progress']} in progress, {counts['done']} done); "
            + (f"model v{current}" if current is not None else "no model yet"))

    # ------------------------------------------------------------------ actions
    def open(self, root: str | Path) -> Project | None:
        """Open an existing project and its top-ranked image."""
        from annotation.project import ProjectError

        try:
            project = self.session.open_project(Path(str(root)).expanduser())
        except ProjectError as exc:
            self.status.setText(str(exc))
            return None
        first = self.session.next_image()
        if first is not None:
            self.session.open_image(first)
        return project

    def _checked_layers(self) -> list[Any]:
        names = {self.layer_list.item(i).text() for i in range(self.layer_list.count())
                 if self.layer_list.item(i).checkState() == Qt.CheckState.Checked}
        return [layer for layer in self.viewer.layers if layer.name in names]

    def _create_clicked(self) -> None:
        root = self.path.text().strip()
        if not root:
            self.status.setText("Choose a folder for the new project first.")
            return
        task, pseudo = self.task.currentText(), str(self.pseudo.currentData())
        if self.source.currentData() == "layers":
            self.create_from_layers(root, self._checked_layers(), task=task, labels=pseudo,
                                    remove=self.remove_sources.isChecked())
        else:
            self.create_from_folder(root, self.folder.text().strip(), task=task, labels=pseudo)

    def create_from_layers(self, root: str | Path, layers: list[Any], *, task: str = "instance",
                           labels: str = "otsu", remove: bool = True):
        """A project from Image layers: their pixels are written into ``ROOT/data/`` as OME-TIFF (what you
        see is what trains), pseudo labels by Otsu or from the Labels layers whose names start with the
        image's. With ``remove``, those layers leave the viewer once saved (the queue opens them again).
        Runs on a worker; ``created`` fires at the end. Returns the worker (None if refused)."""
        from napari.layers import Image, Labels

        images = [lay for lay in layers if isinstance(lay, Image)]
        if not images:
            self.status.setText("No image layer chosen: open images in napari (or the sample data) first.")
            return None
        matched = match_labels(images, [lay for lay in self.viewer.layers if isinstance(lay, Labels)]) \
            if labels == "layers" else None
        if labels == "layers" and not matched:
            self.status.setText("No Labels layer matches an image layer (name starting with the image's, "
                                "same shape).")
            return None
        root = Path(str(root)).expanduser()
        sources = [*images, *(matched or {}).values()] if remove else []

        def make() -> Project:
            from annotation.project import ProjectError

            if (root / Project.DB).exists():
                raise ProjectError(f"{root}: a project already exists here; open it or choose another folder")
            img_dir, lab_dir = write_layer_images(root / "data", images, matched)
            return self._init(root, img_dir, task, "otsu" if labels == "otsu" else None, lab_dir)

        return self._run_create(make, sources)

    def create_from_folder(self, root: str | Path, images_dir: str | Path, *, task: str = "instance",
                           labels: str = "otsu", labels_dir: str | Path | None = None):
        """A project referencing the images of a folder (never copied), as ``im2im-active init`` does."""
        if not str(images_dir):
            self.status.setText("Choose the images folder.")
            return None
        root, images = Path(str(root)).expanduser(), Path(str(images_dir)).expanduser()
        return self._run_create(lambda: self._init(root, images, task, "otsu" if labels == "otsu" else None,
                                                   Path(labels_dir) if labels_dir else None))

    def _init(self, root: Path, images: Path, task: str, pseudo: str | None, labels_dir: Path | None) -> Project:
        from annotation.setup import init_project

        bridge = self._bridge
        project, report = init_project(root, images, labels_dir=labels_dir, pseudo=pseudo, task=task,
                                       progress=lambda done, total, what: bridge.report((done, total, what)))
        project.store.log("napari", action="create", skipped=len(report.skipped))
        return project

    def _run_create(self, make, sources: list[Any] | None = None):
        self._sources = list(sources or [])
        self._bridge = _threads.Bridge()
        self._bridge.event.connect(self.guarded(lambda ev: _set_progress(self.bar, *ev)))
        self.create_button.setEnabled(False)
        self.bar.setRange(0, 0)
        self.status.setText("Creating the project…")
        self.worker = _threads.start(make, on_done=self.guarded(self._created),
                                     on_error=self.guarded(self._create_failed))
        return self.worker

    def _created(self, project: Project) -> None:
        self.create_button.setEnabled(True)
        _idle(self.bar, "done")
        for layer in self._sources:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self._sources = []
        self.session.attach(project)
        first = self.session.next_image()
        if first is not None:
            self.session.open_image(first)
        self.created.emit(project)

    def _create_failed(self, exc: Exception) -> None:
        self.create_button.setEnabled(True)
        _idle(self.bar, "failed")
        self.status.setText(f"Could not create the project: {exc}")
        self.created.emit(exc)


# ================================================================================================== queue
class QueueWidget(_PluginWidget):
    """The images ranked by the model's uncertainty; click one to correct it; Done → next."""

    refreshed = Signal()
    COLUMNS = ("#", "image", "score", "state", "starts from")

    def __init__(self, napari_viewer: Any):
        super().__init__(napari_viewer)
        self.entries: list[loop.QueueEntry] = []
        self._generation = 0
        self.strategy = QComboBox()
        self.strategy.addItems(list(strategies.offered("semantic")))  # until a project is open
        self.strategy.setToolTip("How images are ranked: most useful to correct first")
        self.strategy.currentIndexChanged.connect(self.refresh)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for col in (0, 2, 3, 4):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMinimumHeight(220)  # the queue is what a person looks at most, after the image
        self.table.cellClicked.connect(lambda row, _col: self.open_row(row))
        self.summary = _muted()
        self.done_button = QPushButton("Done → next")
        self.done_button.setToolTip("I have checked all of this image: store it as done and open the next one")
        self.done_button.clicked.connect(self.done_next)
        self.accept_button = QPushButton("Accept prediction")
        self.accept_button.clicked.connect(self.session.accept_prediction)
        self.reset_to = QComboBox()
        self.reset_to.addItems(["pseudo", "prediction", "empty"])
        reset = QPushButton("Reset to")
        reset.setToolTip("Start this image's correction again from the pseudo label, the prediction or empty "
                         "(undoable)")
        reset.clicked.connect(lambda: self.session.reset(self.reset_to.currentText()))
        self.show_uncertainty = QCheckBox("uncertainty")
        self.show_prediction = QCheckBox("prediction")
        self.show_uncertainty.toggled.connect(lambda on: self._toggle("uncertainty", on))
        self.show_prediction.toggled.connect(lambda on: self._toggle("prediction", on))

        top = QHBoxLayout()
        top.addWidget(QLabel("Rank by"))
        top.addWidget(self.strategy, 1)
        edit = QHBoxLayout()
        edit.addWidget(self.accept_button)
        edit.addWidget(reset)
        edit.addWidget(self.reset_to)
        show = QHBoxLayout()
        show.addWidget(QLabel("Show"))
        show.addWidget(self.show_prediction)
        show.addWidget(self.show_uncertainty)
        show.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)
        layout.addWidget(self.done_button)
        layout.addLayout(edit)
        layout.addLayout(show)

        s = self.session
        self.link(s.project_changed, self._project_changed)
        self.link(s.model_updated, self.refresh)
        self.link(s.review_changed, self.refresh)
        self.link(s.edited, self._edited)
        self.link(s.image_changed, self._highlight)
        self._project_changed(self.project)

    def _project_changed(self, project: Project | None) -> None:
        if project is not None:
            self.strategy.blockSignals(True)
            self.strategy.clear()
            self.strategy.addItems(list(strategies.offered(project.task)))
            self.strategy.setCurrentText(strategies.for_task(project.task, project.loop.strategy))
            self.strategy.blockSignals(False)
        self.refresh()

    def _toggle(self, role: str, on: bool) -> None:
        layer = self.session.layers.get(role)
        if layer is not None:
            layer.visible = on

    # ------------------------------------------------------------------ data
    def refresh(self, *_: Any) -> None:
        """Re-rank on a worker (new model, strategy change, an image done)."""
        project = self.project
        self._generation += 1
        generation = self._generation
        if project is None:
            self._show(([], {}, {}), generation)
            return
        strategy = self.strategy.currentText()

        def rank():
            return loop.queue(project, strategy), loop.label_sources(project), project.store.review_counts()

        _threads.start(rank, on_done=self.guarded(lambda result: self._show(result, generation)))

    def _show(self, result, generation: int) -> None:
        if generation != self._generation:
            return  # a newer refresh is on its way
        entries, sources, counts = result
        self.entries = entries
        self.table.setRowCount(len(entries))
        for row, e in enumerate(entries):
            cells = (str(e.rank + 1), e.name, "—" if e.score is None else f"{e.score:.3f}",
                     e.state.replace("_", " "), sources.get(e.image_id, "—"))
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
        project = self.project
        model = project.store.current_model if project is not None else None
        self.summary.setText(
            (f"{counts.get('untouched', 0)} untouched, {counts.get('in_progress', 0)} in progress, "
             f"{counts.get('done', 0)} done; " if counts else "")
            + (f"ranked by {self.strategy.currentText()} with model v{model}" if model is not None
               else "no model yet: ranked by file order until the first round"))
        self._highlight(self.session.image_id)
        self.refreshed.emit()

    def _edited(self, image_id: int) -> None:
        for row, e in enumerate(self.entries):
            if e.image_id == image_id and e.state == "untouched":
                e.state = "in_progress"
                self.table.setItem(row, 3, QTableWidgetItem("in progress"))

    def _highlight(self, image_id: int | None) -> None:
        for row, e in enumerate(self.entries):
            if e.image_id == image_id:
                self.table.selectRow(row)
                return
        self.table.clearSelection()

    # ------------------------------------------------------------------ actions
    def open_row(self, row: int):
        if 0 <= row < len(self.entries):
            return self.session.open_image(self.entries[row].image_id)
        return None

    def done_next(self):
        return self.session.done_next(self.strategy.currentText())


# ================================================================================================== train
class TrainWidget(_PluginWidget):
    """Train / fine-tune in the engine worker process, stop, progress, learning curve, accepted models."""

    def __init__(self, napari_viewer: Any):
        super().__init__(napari_viewer)
        import pyqtgraph as pg

        self._started = 0.0
        self._plotted = 0.0
        self._loss: list[tuple[float, float]] = []
        self.start_button = QPushButton("Train")
        self.start_button.clicked.connect(lambda: self.start())
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.session.stop_round)
        self.steps = QSpinBox()
        self.steps.setRange(0, 1_000_000)
        self.steps.setSpecialValueText("default steps")
        self.steps.setToolTip("Steps of this round (default: training.steps for the first model, "
                              "loop.finetune_steps after)")
        self.auto = QCheckBox("Fine-tune by itself after")
        self.auto.setChecked(True)
        self.auto.setToolTip("Start a round once this many images were newly corrected")
        self.every = QSpinBox()
        self.every.setRange(1, 1000)
        self.every.setSuffix(" corrected")
        self.bar = _bar()
        self.status = _muted()
        self.primary = "dice"
        self.plot = pg.PlotWidget()
        self.plot.setTitle("learning curve", size="9pt")
        self.plot.setBackground(None)
        self.plot.setMinimumHeight(110)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.curve = self.plot.plot(pen=pg.mkPen("#81c784", width=2), symbol="o", symbolSize=7, symbolBrush="#81c784")
        self.rejected = self.plot.plot(pen=None, symbol="x", symbolSize=9, symbolPen="#e57373")
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setBackground(None)
        self.loss_plot.setMinimumHeight(70)
        self.loss_plot.setMouseEnabled(x=False, y=False)
        self.loss_plot.hideButtons()
        self.loss_plot.setLabel("left", "loss")
        self.loss_plot.setLabel("bottom", "step")
        self.loss = self.loss_plot.plot(pen=pg.mkPen("#ff8a65", width=2))
        for plot in (self.plot, self.loss_plot):  # "ap50 (x0.001)" helps nobody: values read as they are
            for axis in ("left", "bottom"):
                plot.getAxis(axis).enableAutoSIPrefix(False)
        self.models = QTableWidget(0, 4)
        self.models.setHorizontalHeaderLabels(["model", "status", "corrected", "metric"])
        self.models.verticalHeader().hide()
        self.models.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.models.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.models.setMaximumHeight(100)

        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.steps)
        auto = QHBoxLayout()
        auto.addWidget(self.auto)
        auto.addWidget(self.every)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addLayout(auto)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.models)

        s = self.session
        self.link(s.project_changed, self._project_changed)
        self.link(s.round_started, self._round_started)
        self.link(s.round_progress, self._progress)
        self.link(s.round_finished, self._round_finished)
        self.link(s.edited, self.maybe_auto_retrain)
        self.link(s.review_changed, self.maybe_auto_retrain)
        self._project_changed(self.project)
        if s.running:
            self._round_started()

    @property
    def running(self) -> bool:
        return self.session.running

    def _project_changed(self, project: Project | None) -> None:
        self.start_button.setEnabled(project is not None and not self.running)
        if project is not None:
            self.primary = loop.PRIMARY_METRIC.get(project.task, "dice")
            self.every.setValue(project.loop.retrain_every)
            self.plot.setLabel("left", self.primary)
            self.plot.setLabel("bottom", "corrected images")
            self.models.setHorizontalHeaderItem(3, QTableWidgetItem(self.primary))
        self.refresh_models()

    def refresh_models(self) -> None:
        """Model table, learning curve and the button's words, from the store (a few rows)."""
        project = self.project
        rows = loop.learning_curve(project) if project is not None else []
        current = project.store.current_model if project is not None else None
        self.models.setRowCount(len(rows))
        for i, r in enumerate(reversed(rows)):
            status = "current" if r["version"] == current else ("accepted" if r["accepted"] else "rejected")
            value = "—" if r["metric"] is None else f"{r['metric']:.3f}"
            for col, text in enumerate((f"v{r['version']}", status, str(r["n_corrected"]), value)):
                item = QTableWidgetItem(text)
                item.setToolTip(r.get("note") or text)
                self.models.setItem(i, col, item)
        good = [(r["n_corrected"], r["metric"]) for r in rows if r["accepted"] and r["metric"] is not None]
        bad = [(r["n_corrected"], r["metric"]) for r in rows if not r["accepted"] and r["metric"] is not None]
        self.curve.setData([g[0] for g in good], [g[1] for g in good])
        self.rejected.setData([b[0] for b in bad], [b[1] for b in bad])
        if good or bad:
            self.plot.setXRange(-0.5, max(4, *(p[0] for p in good + bad)) + 0.5)
        if not self.running:
            self.start_button.setText("Train the first model" if current is None else f"Fine-tune v{current}")
            if project is None:
                self.status.setText("Open or create a project first.")
            elif rows:
                self.status.setText(rows[-1].get("note") or f"v{rows[-1]['version']}")
            else:
                self.status.setText("No model yet: train one from the pseudo labels.")

    # ------------------------------------------------------------------ run
    def start(self, steps: int | None = None):
        """Start a round (``steps``: this widget's spin box when None; 0 there = the config's default)."""
        if self.project is None:
            return None
        if steps is None:
            steps = self.steps.value() or None
        return self.session.start_round(steps)

    def maybe_auto_retrain(self, *_: Any) -> bool:
        """Start a round by itself once enough images were newly corrected (a first model must exist)."""
        project = self.project
        if (project is None or self.running or not self.auto.isChecked()
                or project.store.current_model is None):
            return False
        if loop.corrections_since_current(project) < self.every.value():
            return False
        self.session.message.emit("Enough new corrections: fine-tuning in the background")
        self.start()
        return True

    def _round_started(self) -> None:
        self._started = time.monotonic()
        self._loss = []
        self.loss.setData([], [])
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        _set_progress(self.bar, 0, 0, "starting…")
        self.status.setText("Training in the engine worker process; keep correcting.")

    #: Seconds between redraws of the loss curve: the worker reports every step (tens a second on a GPU);
    #: redrawing each time would spend the GUI thread on plots nobody can read that fast.
    PLOT_EVERY = 0.25

    def _progress(self, event: dict) -> None:
        phase = event.get("phase", "train")
        step = event.get("step", event.get("done"))
        total = event.get("total")
        _set_progress(self.bar, step, total, phase)
        loss = event.get("loss")
        if phase == "train" and isinstance(step, int | float) and isinstance(loss, int | float):
            self._loss.append((float(step), float(loss)))
            now = time.monotonic()
            if now - self._plotted >= self.PLOT_EVERY or step == total:
                self._plotted = now
                self.loss.setData([p[0] for p in self._loss], [p[1] for p in self._loss])

    def _round_finished(self, result: Any) -> None:
        if self._loss:
            self.loss.setData([p[0] for p in self._loss], [p[1] for p in self._loss])
        self.stop_button.setEnabled(False)
        self.start_button.setEnabled(self.project is not None)
        _idle(self.bar)
        self.refresh_models()
        if isinstance(result, BaseException):
            self.status.setText(f"Training failed: {result}")
            return
        text = result.message + (f" ({result.seconds:.0f} s)" if result.seconds else "")
        if result.skipped:
            text += f"; {len(result.skipped)} image(s) skipped"
        self.status.setText(text + (f"\nHint: {result.hint}" if result.hint else ""))


# ================================================================================================= export
class ExportWidget(_PluginWidget):
    """The model (TorchScript, ONNX, BioImage Model Zoo) or the labels / training pairs, as in the app."""

    finished = Signal(object)  # ExportReport, or the exception

    def __init__(self, napari_viewer: Any):
        super().__init__(napari_viewer)
        self.worker = None
        self.format = QComboBox()
        for fmt in FORMATS:
            self.format.addItem(EXPORT_TEXT[fmt], fmt)
        self.version = QComboBox()
        self.versions = QComboBox()
        self.versions.addItem("corrected images only", "corrected")
        self.versions.addItem("every image (best label)", "all")
        self.output = QLineEdit()
        self.output.setPlaceholderText("default: PROJECT/exports/FORMAT-…")
        self.run_button = QPushButton("Export")
        self.run_button.clicked.connect(lambda: self.export())
        form = QFormLayout()
        form.addRow("Export", self.format)
        form.addRow("Model", self.version)
        form.addRow("Labels", self.versions)
        form.addRow("Folder", self.output)
        self.bar = _bar()
        self.status = _muted()
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.format.currentIndexChanged.connect(self._format_changed)
        self.link(self.session.project_changed, self._fill_versions)
        self.link(self.session.model_updated, self._fill_versions)
        self._fill_versions()

    def _fill_versions(self, *_: Any) -> None:
        self.version.clear()
        project = self.project
        offered = formats_for(project.task) if project is not None else FORMATS
        if [self.format.itemData(i) for i in range(self.format.count())] != list(offered):
            self.format.blockSignals(True)
            self.format.clear()
            for fmt in offered:
                self.format.addItem(EXPORT_TEXT[fmt], fmt)
            self.format.blockSignals(False)
        if project is not None:
            current = project.store.current_model
            for m in project.store.models():
                self.version.addItem(f"v{m['version']}" + (" (current)" if m["version"] == current
                                                          else f" ({m['status']})"), m["version"])
                if m["version"] == current:
                    self.version.setCurrentIndex(self.version.count() - 1)
        self._format_changed()

    def _format_changed(self) -> None:
        fmt = str(self.format.currentData())
        is_model = fmt in USES_MODEL
        self.version.setEnabled(is_model and self.version.count() > 0)
        self.versions.setEnabled(not is_model)
        self.run_button.setEnabled(self.project is not None and not (is_model and self.version.count() == 0))
        if self.project is None:
            self.status.setText("Open or create a project first.")
        elif is_model and self.version.count() == 0:
            self.status.setText("No model yet: train one first.")
        else:
            self.status.setText("")

    def export(self, fmt: str | None = None, output: str | Path | None = None, *, version: int | None = None,
               versions: str | None = None):
        """Run :func:`annotation.export.export` on a worker (arguments default to the widget's choices)."""
        from annotation.export import export

        project = self.project
        if project is None:
            return None
        fmt = fmt or str(self.format.currentData())
        if version is None and fmt in USES_MODEL:
            version = self.version.currentData()
        versions = versions or str(self.versions.currentData())
        output = output or (self.output.text().strip() or None)
        if output is None:
            output = default_output(project, fmt, version if fmt in USES_MODEL else None)
        bridge = self._bridge = _threads.Bridge()
        bridge.event.connect(self.guarded(lambda ev: _set_progress(self.bar, *ev)))
        self.run_button.setEnabled(False)
        _set_progress(self.bar, 0, 0, f"exporting {fmt}…")
        self.session.writer.flush()  # every stroke made so far is in the export

        def run():
            return export(project, fmt, output, version=version, versions=versions,
                          progress=lambda done, total, what="": bridge.report((done, total, what)))

        self.worker = _threads.start(run, on_done=self.guarded(self._done), on_error=self.guarded(self._failed))
        return self.worker

    def _done(self, report) -> None:
        self.run_button.setEnabled(True)
        _idle(self.bar, "done")
        self.status.setText(report.summary())
        self.finished.emit(report)

    def _failed(self, exc: Exception) -> None:
        self.run_button.setEnabled(True)
        _idle(self.bar, "failed")
        self.status.setText(f"Export failed: {exc}")
        self.finished.emit(exc)
