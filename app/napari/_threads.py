"""Work off napari's GUI thread: thread workers for slow calls, an ordered writer for the store.

Why two mechanisms (as in the desktop app, :mod:`app.gui.workers`, but through qtpy so the plugin runs on
whatever Qt binding napari runs on): loads, rounds and exports are independent and go to superqt thread
workers on Qt's pool, with progress carried back as a Qt signal; database writes must stay in stroke order
and undo must see every earlier write, so they go through :class:`OrderedWriter`, one background thread with
a FIFO queue that the GUI thread can wait on (:meth:`OrderedWriter.flush`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from qtpy.QtCore import QObject, Signal
from superqt.utils import create_worker, ensure_main_thread

log = logging.getLogger(__name__)
_alive: set = set()  # running workers, referenced until they finish


def start(fn: Callable, *args: Any, on_done: Callable | None = None, on_error: Callable | None = None,
          **kwargs: Any):
    """Run ``fn(*args, **kwargs)`` on Qt's thread pool; the callbacks run on the GUI thread."""
    worker = create_worker(fn, *args, _start_thread=False, _ignore_errors=True, **kwargs)
    if on_done is not None:
        worker.returned.connect(on_done)
    worker.errored.connect(on_error if on_error is not None
                           else (lambda exc: log.error("background task failed: %s", exc)))
    _alive.add(worker)
    worker.finished.connect(lambda: _alive.discard(worker))
    worker.start()
    return worker


class Bridge(QObject):
    """Carries ``report(obj)`` calls from a worker thread to slots on the GUI thread (queued signal)."""

    event = Signal(object)

    def report(self, value: object) -> None:
        self.event.emit(value)


class OrderedWriter:
    """One background thread running the store writes in submission order.

    An instance is the ``writer`` of :class:`annotation.editing.LabelEditor`. ``on_error(message)`` runs on
    the GUI thread when a write fails (the session then reloads the image from the store).
    """

    def __init__(self, on_error: Callable[[str], None] | None = None):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="im2im-napari-save")
        self._pending: list[Future] = []
        self._on_error = ensure_main_thread(on_error) if on_error is not None else None

    def __call__(self, fn: Callable[[], object]) -> Future:
        self._pending = [f for f in self._pending if not f.done()]
        future = self._pool.submit(fn)
        self._pending.append(future)
        future.add_done_callback(self._check)
        return future

    def _check(self, future: Future) -> None:
        exc = future.exception()
        if exc is None:
            return
        log.error("saving failed: %s", exc)
        if self._on_error is not None:
            self._on_error(f"Saving failed: {exc}")

    @property
    def busy(self) -> bool:
        return any(not f.done() for f in self._pending)

    def flush(self, timeout: float = 60.0) -> None:
        """Block until every queued write is on disk (undo, image switch, close, tests)."""
        for future in list(self._pending):
            with contextlib.suppress(Exception):  # reported through on_error
                future.result(timeout)

    def shutdown(self) -> None:
        self.flush()
        self._pool.shutdown(wait=True)
