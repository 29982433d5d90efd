"""One open project in one napari viewer: the project, the image being corrected, and its layers.

The four dock widgets (Project, Queue, Train, Export) are separate widgets napari creates one by one; they
share this session through :func:`session_for` (one per viewer) and listen to its signals. What the session
does is the desktop app's image lifecycle in napari's terms:

* opening an image reads it on a thread worker and shows an Image layer, the Labels layer the person
  corrects (the corrected label, else the prediction, else the pseudo label: what
  :class:`annotation.editing.LabelEditor` starts from), an ignore mask, and, hidden, the current model's
  prediction and uncertainty;
* each ``Labels.events.paint`` (one per stroke, fill or polygon) becomes ONE edit applied through the
  editor: one transaction with its before/after patch and per-pixel provenance, written in stroke order on
  a background thread (:class:`~app.napari._threads.OrderedWriter`);
* undo / redo on the Labels layer (Ctrl+Z, Ctrl+Shift+Z) step the store's history, across sessions and
  across the two editable layers, exactly like the app's Edit → Undo;
* *Done → next* marks the image done and opens the next one of the queue.

Nothing here decides anything about the loop: that is :mod:`annotation`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

from annotation import loop
from annotation.editing import EditError, LabelEditor, as_zyx, box_slices
from annotation.project import Project
from annotation.store import ImageRecord
from im2im_engine import io

from . import _threads
from ._edits import edit_from_paint, paint_spans, stroke_kind

log = logging.getLogger(__name__)

#: Managed layers, bottom to top. ``labels`` and ``ignore`` are edited; the others are shown.
ROLES = ("image", "uncertainty", "prediction", "ignore", "labels")
#: Labels-layer settings carried over when the next image replaces the layers.
KEEP = ("opacity", "brush_size", "selected_label", "mode", "contour", "visible")


def real_viewer(viewer: Any) -> Any:
    """napari hands plugin widgets a ``PublicOnlyProxy`` of the viewer (a new one per widget): the session
    is keyed and driven by the viewer itself."""
    return getattr(viewer, "__wrapped__", viewer)


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer: Any) -> Session:
    """The session of this viewer (created on first use; shared by all the plugin's widgets)."""
    viewer = real_viewer(viewer)
    session = _SESSIONS.get(viewer)
    if session is None:
        session = _SESSIONS[viewer] = Session(viewer)
    return session


def uncertainty_file(project: Project, version: int | None, name: str) -> Path | None:
    """The uncertainty map the scoring of model ``version`` wrote for image ``name`` (if any)."""
    if version is None:
        return None
    path = project.models_dir / f"v{version}" / "scores" / f"{name}.npz"
    return path if path.exists() else None


@dataclass
class Loaded:
    """One image read on a worker thread, ready to be shown."""

    record: ImageRecord
    data: np.ndarray  # (C, Z, Y, X)
    scale: tuple[float, ...]  # per spatial axis of the label
    editor: LabelEditor
    prediction: np.ndarray | None
    uncertainty: np.ndarray | None


def _scale(sizes: tuple[float | None, ...], ndim: int) -> tuple[float, ...]:
    sizes = tuple(sizes)[-ndim:]
    return tuple(float(s) if s else 1.0 for s in sizes)


def _plane(array: np.ndarray | None, ndim: int) -> np.ndarray | None:
    """A ``(Z, Y, X)`` label as the layer shows it: ``(Y, X)`` for a plane."""
    if array is None:
        return None
    array = as_zyx(np.asarray(array))
    return array[0] if ndim == 2 else array


class Session:
    """The open project and image of one viewer. Signals are emitted on the GUI thread."""

    project_changed = Signal(object)  # Project | None
    image_changed = Signal(object)  # image id | None (after its layers are shown)
    edited = Signal(int)  # image id: a stroke / undo / reset was stored
    review_changed = Signal(int)  # image id: its review state changed (done)
    model_updated = Signal(object)  # RoundResult: a round changed the model and re-scored
    round_started = Signal()
    round_progress = Signal(dict)  # the worker's progress events, on the GUI thread
    round_finished = Signal(object)  # RoundResult, or the exception that ended the round
    message = Signal(str)

    def __init__(self, viewer: Any):
        self._viewer = weakref.ref(viewer)  # the registry's key: a strong reference would keep it forever
        self.project: Project | None = None
        self.editor: LabelEditor | None = None
        self.record: ImageRecord | None = None
        self.layers: dict[str, Any] = {}
        self.image_layers: list[Any] = []
        self.loading: int | None = None
        self.writer = _threads.OrderedWriter(on_error=self._save_failed)
        self._showing = False
        self._stop = threading.Event()
        self._round = None  # the thread worker of the round in progress
        self._round_ended = threading.Event()
        self._bridge = _threads.Bridge()
        self._bridge.event.connect(self.round_progress.emit)
        self._widgets = 0
        self._closed = False
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.events.removed.connect(self._on_removed)

    @property
    def viewer(self) -> Any:
        viewer = self._viewer()
        if viewer is None:
            raise RuntimeError("the viewer of this session is closed")
        return viewer

    # ------------------------------------------------------------------ project
    def open_project(self, root: str | Path) -> Project:
        return self.attach(Project.open(root))

    def attach(self, project: Project) -> Project:
        """Make ``project`` the open one (closing the previous one, its writes flushed)."""
        self.close_project()
        self.project = project
        self.project_changed.emit(project)
        return project

    def close_project(self, remove_layers: bool = True) -> None:
        if self.project is None:
            return
        self._finish_image()
        self.writer.flush()
        if remove_layers:
            self._remove_layers()
        else:
            self.image_layers, self.layers = [], {}
        self.editor = self.record = None
        project, self.project = self.project, None
        project.close()
        self.project_changed.emit(None)
        self.image_changed.emit(None)

    @property
    def image_id(self) -> int | None:
        return self.record.id if self.record is not None else None

    # ------------------------------------------------------------------ images
    def open_image(self, image_id: int, on_done=None):
        """Read image ``image_id`` on a worker and show it; returns the worker."""
        if self.project is None:
            raise RuntimeError("open a project first")
        project = self.project
        self.loading = image_id

        def read() -> Loaded:
            self.writer.flush()  # the new editor must see every queued write
            return self._read(project, image_id)

        def done(loaded: Loaded) -> None:
            if loaded.record.id == self.loading and self.project is project:
                self._show(loaded)
            if on_done is not None:
                on_done(loaded)

        return _threads.start(read, on_done=done, on_error=lambda exc: self._load_failed(exc, project))

    def _read(self, project: Project, image_id: int) -> Loaded:
        store = project.store
        record = store.image(image_id)
        img = io.read_image(record.path, 0)
        editor = LabelEditor(store, image_id, 0, writer=self.writer)
        ndim = len(record.spatial_shape)
        unc = None
        path = uncertainty_file(project, store.current_model, record.name)
        if path is not None:
            try:
                with np.load(path) as npz:
                    unc = np.asarray(npz["uncertainty"], np.float32)
            except (OSError, KeyError, ValueError) as exc:
                log.warning("%s: unreadable uncertainty map (%s)", path, exc)
        return Loaded(record, np.asarray(img.data), _scale(img.info.physical_pixel_sizes, ndim), editor,
                      store.get_label(image_id, "prediction"), unc)

    def _show(self, loaded: Loaded) -> None:
        """Replace the managed layers by the loaded image's (GUI thread)."""
        self._showing = True
        try:
            self._show_layers(loaded)
        finally:
            self._showing = False
        self.image_changed.emit(loaded.record.id)

    def _show_layers(self, loaded: Loaded) -> None:
        self._finish_image()
        kept = {k: getattr(self.layers["labels"], k) for k in KEEP} if "labels" in self.layers else {}
        self._remove_layers()
        rec, editor = loaded.record, loaded.editor
        ndim = len(rec.spatial_shape)
        name = rec.name
        meta = {"im2im_project": str(self.project.root), "im2im_image_id": rec.id}
        data = loaded.data[:, 0] if ndim == 2 else loaded.data  # (C, [Z,] Y, X)
        v = self.viewer
        if data.shape[0] == 1:
            self.image_layers = [v.add_image(data[0], name=name, scale=loaded.scale, metadata=meta)]
        else:
            names = [f"{name} [{c}]" for c in (rec.channel_names or range(data.shape[0]))]
            self.image_layers = list(v.add_image(data, channel_axis=0, name=names, scale=loaded.scale,
                                                 metadata=meta, blending="additive"))
        if loaded.uncertainty is not None:
            unc = _plane(np.asarray(loaded.uncertainty, np.float32), ndim)
            self.layers["uncertainty"] = v.add_image(unc, name=f"{name} uncertainty", scale=loaded.scale,
                                                     colormap="inferno", blending="additive", visible=False,
                                                     opacity=0.7, metadata=meta)
        if loaded.prediction is not None:
            pred = v.add_labels(_plane(loaded.prediction, ndim).astype(np.int32), name=f"{name} prediction",
                                scale=loaded.scale, visible=False, opacity=0.5, metadata=meta)
            pred.editable = False
            self.layers["prediction"] = pred
        ignore = v.add_labels(_plane(editor.ignore, ndim).copy(), name=f"{name} ignore", scale=loaded.scale,
                              opacity=0.5, metadata={**meta, "im2im_version": "ignore"})
        labels = v.add_labels(_plane(editor.label, ndim).copy(), name=f"{name} labels", scale=loaded.scale,
                              opacity=0.6, metadata={**meta, "im2im_version": "corrected"})
        for key, value in kept.items():
            with contextlib.suppress(ValueError, TypeError, AttributeError):  # a mode the new layer refuses
                setattr(labels, key, value)
        self.layers["ignore"], self.layers["labels"] = ignore, labels
        for version, layer in (("corrected", labels), ("ignore", ignore)):
            layer.events.paint.connect(lambda event, version=version: self._on_paint(version, event))
            # napari's Ctrl+Z / Ctrl+Shift+Z call layer.undo() / layer.redo(): undo in napari is undo in the store
            layer.undo = self.undo
            layer.redo = self.redo
        self.editor, self.record, self.loading = editor, rec, None
        v.layers.selection.active = labels
        where = "your correction" if editor.has_corrected else (editor.initial_version or "an empty label")
        self.message.emit(f"{name}: starting from {where}")

    def _remove_layers(self) -> None:
        managed = [*self.image_layers, *self.layers.values()]
        self.image_layers, self.layers = [], {}
        for layer in managed:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)

    def _on_removed(self, event) -> None:
        layer = event.value
        self.image_layers = [x for x in self.image_layers if x is not layer]
        self.layers = {k: x for k, x in self.layers.items() if x is not layer}

    def _finish_image(self) -> None:
        """Log the time spent on the open image (the loop's one place for time events)."""
        editor, project = self.editor, self.project
        if editor is None or project is None:
            return
        seconds = editor.close()
        if seconds > 0:
            self.writer(lambda: loop.record_time(project, editor.image_id, seconds))

    def _load_failed(self, exc: Exception, project: Project | None = None) -> None:
        if project is not None and self.project is not project:
            log.debug("load for a project closed meanwhile failed: %s", exc)  # the project moved on
            return
        self.loading = None
        self.message.emit(f"Cannot open image: {exc}")
        _notify_error(f"Cannot open image: {exc}")

    def _save_failed(self, message: str) -> None:
        _notify_error(f"{message}. The image is reloaded from the project.")
        if self.record is not None and self.project is not None:
            self.open_image(self.record.id)

    # ------------------------------------------------------------------ edits
    def layer_of(self, version: str) -> Any:
        return self.layers.get("labels" if version == "corrected" else version)

    def _on_paint(self, version: str, event) -> None:
        """One paint event (a whole stroke) -> one stored edit."""
        editor, layer = self.editor, self.layer_of(version)
        if editor is None or layer is None:
            return
        data = layer.data
        value = 0 if layer.mode == "erase" else int(layer.selected_label)
        atoms = list(event.value)
        if version == "ignore":  # the ignore mask is 0/1, whatever label was painted on it
            spans = paint_spans(atoms, data.shape)
            if spans is not None:
                region = data[tuple(slice(a, b) for a, b in spans)]
                np.clip(region, 0, 1, out=region)
        try:
            edit = edit_from_paint(atoms, editor.array(version), data, stroke_kind(layer.mode, value, version))
        except ValueError as exc:
            self._restore(version)
            _notify_error(f"Edit not stored: {exc}")
            return
        if version == "ignore":
            layer.refresh()
        if edit is not None:
            editor.apply(edit, version)
            self.edited.emit(editor.image_id)

    def _restore(self, version: str, box=None) -> None:
        """Put the editor's copy (what the store holds) back into the layer."""
        layer = self.layer_of(version)
        if layer is None or self.editor is None:
            return
        source = self.editor.array(version)
        target = as_zyx(layer.data)
        sl = box_slices(box) if box is not None else (slice(None),) * 3
        target[sl] = source[sl]
        layer.refresh()

    def undo(self) -> None:
        self._history(True)

    def redo(self) -> None:
        self._history(False)

    def _history(self, undo: bool) -> None:
        editor = self.editor
        if editor is None:
            return
        self.writer.flush()  # the history must see every stroke already made
        step = editor.history_step(undo)
        if step is None:
            self.message.emit("Nothing to undo" if undo else "Nothing to redo")
            return
        box = editor.apply_patch(step)
        self._restore(step[0], box)
        self.edited.emit(editor.image_id)

    def reset(self, to: str) -> None:
        """*Reset label* to ``pseudo``, ``prediction`` or ``empty`` (one undoable edit)."""
        editor = self.editor
        if editor is None:
            return
        try:
            box = editor.reset(to)
        except EditError as exc:
            self.message.emit(str(exc))
            return
        if box is not None:
            self._restore("corrected", box)
            self.edited.emit(editor.image_id)

    def accept_prediction(self) -> None:
        editor = self.editor
        if editor is None:
            return
        try:
            box = editor.accept_prediction()
        except EditError as exc:
            self.message.emit(str(exc))
            return
        if box is not None:
            self._restore("corrected", box)
        self.edited.emit(editor.image_id)

    def mark_done(self) -> int | None:
        """*Done*: the open image is checked; returns its id once the state is stored."""
        editor = self.editor
        if editor is None:
            return None
        editor.mark_done()
        self.writer.flush()
        self.review_changed.emit(editor.image_id)
        return editor.image_id

    def next_image(self, strategy: str | None = None) -> int | None:
        """The queue's first image that is not done and not the open one."""
        if self.project is None:
            return None
        for entry in loop.queue(self.project, strategy):
            if entry.state != "done" and entry.image_id != self.image_id:
                return entry.image_id
        return None

    def done_next(self, strategy: str | None = None):
        """*Done → next*: mark done, open the next image of the queue (its worker, or None at the end)."""
        if self.mark_done() is None:
            return None
        nxt = self.next_image(strategy)
        if nxt is None:
            self.message.emit("Every image in the queue is done")
            return None
        return self.open_image(nxt)

    # ------------------------------------------------------------------ model updates
    def refresh_prediction(self) -> None:
        """After a round: show the new prediction and uncertainty of the open image (edits untouched)."""
        if self.project is None or self.record is None:
            return
        store, rec = self.project.store, self.record
        ndim = len(rec.spatial_shape)
        pred = store.get_label(rec.id, "prediction")
        self._showing = True
        try:
            self._show_prediction(rec, pred, ndim)
        finally:
            self._showing = False
        path = uncertainty_file(self.project, store.current_model, rec.name)
        if path is not None and "uncertainty" in self.layers:
            with np.load(path) as npz:
                self.layers["uncertainty"].data = _plane(np.asarray(npz["uncertainty"], np.float32), ndim)

    def _show_prediction(self, rec: ImageRecord, pred: np.ndarray | None, ndim: int) -> None:
        if pred is not None:
            layer = self.layers.get("prediction")
            if layer is None:
                layer = self.viewer.add_labels(_plane(pred, ndim).astype(np.int32), name=f"{rec.name} prediction",
                                               scale=self.image_layers[0].scale if self.image_layers else None,
                                               visible=False, opacity=0.5)
                layer.editable = False
                self.layers["prediction"] = layer
                self._keep_on_top()
            else:
                layer.data = _plane(pred, ndim).astype(np.int32)

    def _keep_on_top(self) -> None:
        """The editable layers stay above the others."""
        layers = self.viewer.layers
        for role in ("ignore", "labels"):
            layer = self.layers.get(role)
            if layer is not None and layer in layers:
                layers.move(layers.index(layer), len(layers))

    # ------------------------------------------------------------------ layers opened by the reader
    def _on_inserted(self, event) -> None:
        """A layer from the project-folder reader: open its project and image here (once a widget runs)."""
        layer = event.value
        meta = getattr(layer, "metadata", None) or {}
        root = meta.get("im2im_project")
        if self._showing or not root or not meta.get("im2im_reader"):
            return
        if self.project is not None and Path(self.project.root) != Path(root).resolve():
            return
        from qtpy.QtCore import QTimer

        QTimer.singleShot(0, lambda: self._adopt(layer, root, meta.get("im2im_image_id")))

    def _adopt(self, layer: Any, root: str, image_id: int | None) -> None:
        """Replace a reader layer by the session's own layers for that image (editable, stored)."""
        if layer in self.viewer.layers:
            self.viewer.layers.remove(layer)
        if self.project is None:
            self.open_project(root)
        if image_id is not None and self.image_id != image_id and self.loading != image_id:
            self.open_image(int(image_id))

    # ------------------------------------------------------------------ rounds
    @property
    def running(self) -> bool:
        return self._round is not None

    def start_round(self, steps: int | None = None):
        """Train (or fine-tune) then, if the model changed, re-score: in the engine worker subprocess, followed
        from a thread worker that only waits on it and forwards its progress. Returns the thread worker."""
        if self.project is None:
            raise RuntimeError("open a project first")
        if self._round is not None:
            return self._round
        project, stop, emit = self.project, self._stop, self._bridge.report
        stop.clear()
        ended = self._round_ended = threading.Event()

        def run() -> loop.RoundResult:
            try:
                result = loop.train_round(project, steps=steps, progress=emit, should_stop=stop.is_set)
                if result.accepted and not result.cancelled and not stop.is_set():
                    emit({"phase": "score", "step": 0, "total": 0})
                    loop.score(project, progress=emit, should_stop=stop.is_set)
                return result
            finally:
                ended.set()

        self._round = _threads.start(run, on_done=self._round_done, on_error=self._round_failed)
        self.round_started.emit()
        return self._round

    def stop_round(self) -> None:
        """Stop the round: the worker process gets SIGTERM and the current model stays."""
        self._stop.set()

    def _round_done(self, result: loop.RoundResult) -> None:
        self._round = None
        self.round_finished.emit(result)
        self.message.emit(result.message)
        if not result.cancelled:
            self.refresh_prediction()
            self.model_updated.emit(result)

    def _round_failed(self, exc: Exception) -> None:
        self._round = None
        self.round_finished.emit(exc)
        self.message.emit(f"Training failed: {exc}")

    # ------------------------------------------------------------------ widgets
    def register(self, widget: Any, links: list) -> None:
        """Count the plugin's widgets: when napari deletes one, its ``links`` (signal, slot) are cut; when the
        last one goes (the viewer closes), the session ends."""
        self._widgets += 1
        widget.destroyed.connect(lambda *_: self._unregister(links))

    def _unregister(self, links: list) -> None:
        for signal, slot in links:
            with contextlib.suppress(TypeError, ValueError, RuntimeError):  # already gone with its emitter
                signal.disconnect(slot)
        links.clear()
        self._widgets -= 1
        if self._widgets <= 0:
            self.shutdown()

    # ------------------------------------------------------------------ end
    def shutdown(self) -> None:
        """Stop a round, flush every write and close the project (the viewer is closing). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.stop_round()
        if self._round is not None:  # run_job turns the stop into SIGTERM within 0.1 s; wait for the job's end
            self._round_ended.wait(60)
        self.close_project(remove_layers=False)  # the viewer is going: its layers go with it
        self.writer.shutdown()
        viewer = self._viewer()
        if viewer is not None:
            _SESSIONS.pop(viewer, None)
            for emitter, slot in ((viewer.layers.events.inserted, self._on_inserted),
                                  (viewer.layers.events.removed, self._on_removed)):
                emitter.disconnect(slot)


def _notify_error(text: str) -> None:
    try:
        from napari.utils.notifications import show_error

        show_error(text)
    except Exception:  # no napari notification manager (scripts): the log still has it
        log.error(text)
