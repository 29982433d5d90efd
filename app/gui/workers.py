"""Work off the GUI thread: image loading, thumbnails (superqt thread workers) and ordered saving.

Why two mechanisms: loads and thumbnails are independent and may run in parallel (superqt
``create_worker`` on the Qt thread pool), but database writes must stay in stroke order and undo must see
every earlier write, so they go through :class:`Saver`, one background thread with a FIFO queue.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from superqt.utils import create_worker

from annotation.editing import LabelEditor, as_zyx
from annotation.project import Project
from annotation.store.db import ImageRecord
from im2im_engine import io

from .overlays import auto_levels, thumbnail

log = logging.getLogger(__name__)
_alive: set = set()  # running workers, kept referenced until they finish


def start(fn: Callable, *args: Any, on_done: Callable | None = None, on_error: Callable | None = None,
          **kwargs: Any):
    """Run ``fn(*args, **kwargs)`` on the thread pool; callbacks run on the GUI thread."""
    worker = create_worker(fn, *args, _start_thread=False, _ignore_errors=True, **kwargs)
    if on_done is not None:
        worker.returned.connect(on_done)
    if on_error is not None:
        worker.errored.connect(on_error)
    else:
        worker.errored.connect(lambda exc: log.error("background task failed: %s", exc))
    _alive.add(worker)
    worker.finished.connect(lambda: _alive.discard(worker))
    worker.start()
    return worker


@dataclass
class LoadedImage:
    """Everything the view needs for one image, read on a worker thread."""

    record: ImageRecord
    t: int
    data: np.ndarray  # (C, Z, Y, X)
    levels: list[tuple[float, float]]  # contrast per channel
    editor: LabelEditor
    prediction: np.ndarray | None  # (Z, Y, X)
    uncertainty: np.ndarray | None  # (Z, Y, X) float
    model_version: int | None
    pixel_size_um: float | None = None  # from the file's metadata (None when it has none)


def uncertainty_file(project: Project, version: int | None, name: str) -> Path | None:
    if version is None:
        return None
    path = project.models_dir / f"v{version}" / "scores" / f"{name}.npz"
    return path if path.exists() else None


def pixel_size_um(path: str, reported: float | None) -> float | None:
    """The pixel width in micrometres, or None when the file does not say.

    Why a check: aicsimageio reports 1.0 µm for a plain TIFF whose resolution has no unit (what most
    writers leave), which would draw a wrong scale bar; such a size is no size.
    """
    if not isinstance(reported, int | float) or not 0 < reported < 1e4:
        return None
    if Path(path).suffix.lower() in (".tif", ".tiff") and not path.lower().endswith((".ome.tif", ".ome.tiff")):
        try:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                if tif.is_ome:
                    return float(reported)
                if tif.is_imagej:
                    unit = str((tif.imagej_metadata or {}).get("unit", "")).lower()
                    return float(reported) if unit in ("micron", "um", "µm", "\\u00b5m", "nm", "mm") else None
                tag = tif.pages[0].tags.get("ResolutionUnit")
                return float(reported) if tag is not None and int(tag.value) in (2, 3) else None
        except Exception:  # unreadable metadata: no scale bar rather than a wrong one
            return None
    return float(reported)


def load_image(project: Project, image_id: int, t: int = 0,
               writer: Callable[[Callable[[], object]], None] | None = None) -> LoadedImage:
    """Pixels, labels and the uncertainty map of one image (blocking: call from a worker)."""
    store = project.store
    record = store.image(image_id)
    image = io.read_image(record.path, t)
    data = np.asarray(image.data)
    pixel_size = pixel_size_um(record.path, image.info.physical_pixel_sizes[2])
    mid = data.shape[1] // 2
    levels = [auto_levels(data[c, mid]) for c in range(data.shape[0])]
    editor = LabelEditor(store, image_id, t, writer=writer)
    prediction = store.get_label(image_id, "prediction", t)
    version = store.current_model
    unc = None
    path = uncertainty_file(project, version, record.name)
    if path is not None:
        try:
            with np.load(path) as npz:
                unc = as_zyx(np.asarray(npz["uncertainty"], np.float32))
        except (OSError, KeyError, ValueError) as exc:
            log.warning("%s: unreadable uncertainty map (%s)", path, exc)
    return LoadedImage(record, t, data, levels, editor, None if prediction is None else as_zyx(prediction),
                       unc, version, pixel_size)


def make_thumbnail(record: ImageRecord, size: int = 56) -> tuple[int, np.ndarray | None]:
    """(image id, small uint8 preview) — None when the file cannot be read (shown as a blank icon)."""
    try:
        return record.id, thumbnail(io.read_image(record.path, 0).data, size)
    except (io.ImageReadError, OSError, ValueError):
        return record.id, None


class Saver(QObject):
    """One background thread that runs database writes in submission order.

    ``writer`` is handed to :class:`LabelEditor`; :meth:`call` runs something after every pending write
    (undo, redo) and delivers the result on the GUI thread.
    """

    failed = Signal(str)
    _deliver = Signal(object, object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="im2im-save")
        self._pending: list[Future] = []
        self._deliver.connect(lambda cb, result: cb(result))

    def _track(self, future: Future) -> Future:
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(future)
        future.add_done_callback(self._check)
        return future

    def _check(self, future: Future) -> None:
        exc = future.exception()
        if exc is not None:
            self.failed.emit(f"Saving failed: {exc}")

    def writer(self, fn: Callable[[], object]) -> None:
        self._track(self._pool.submit(fn))

    def call(self, fn: Callable[[], Any], callback: Callable[[Any], None]) -> None:
        def run() -> None:
            result = fn()
            self._deliver.emit(callback, result)

        self._track(self._pool.submit(run))

    @property
    def busy(self) -> bool:
        return any(not f.done() for f in self._pending)

    def wait(self, timeout: float = 30.0) -> None:
        """Block until every queued write is on disk (image switch, close, tests)."""
        for f in list(self._pending):
            with contextlib.suppress(Exception):  # reported through ``failed``
                f.result(timeout)

    def shutdown(self) -> None:
        self.wait()
        self._pool.shutdown(wait=True)


class ProgressBridge(QObject):
    """Carries ``progress(done, total, what)`` calls from a worker thread to the GUI thread."""

    progress = Signal(int, int, str)

    def report(self, done: int, total: int, what: str = "") -> None:
        """The ``progress`` callback to hand to library code (not named ``emit``: PySide6 before 6.10 treats
        a Python ``emit`` on a QObject as a signal emission when called from another thread)."""
        self.progress.emit(int(done), int(total), str(what))
