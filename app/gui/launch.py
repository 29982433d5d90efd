"""Starting the GUI: ``run_gui(project, screenshot)`` is what ``im2im-active gui`` and ``demo`` call.

The launcher owns the one visible top-level window (start page or a project's main window) and swaps it
when the user opens another project. ``screenshot`` renders the window offscreen on the project's first
queue image and saves a PNG of it: for the README and for tests.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from annotation.integrity import check_images
from annotation.project import Project, ProjectError

from . import workers
from .errors import in_words, quiet_libraries
from .main_window import MainWindow
from .wizard import NewProjectDialog, StartPage, choose_project_folder, remember_project

log = logging.getLogger(__name__)
STYLE = Path(__file__).resolve().parents[2] / "resources" / "style.qss"
SCREENSHOT_SIZE = (1600, 1000)


def application() -> QApplication:
    quiet_libraries()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("im2im-active")
    app.setApplicationName("im2im-active")
    if STYLE.exists():
        app.setStyleSheet(STYLE.read_text())
    return app


class Launcher:
    """Keeps the current window alive and replaces it on open/new."""

    def __init__(self, quiet: bool = False):
        self.window: QWidget | None = None
        self.project: Project | None = None
        self.quiet = quiet  # screenshot mode: errors go to stderr, no dialogs

    def _error(self, message: str) -> None:
        if self.quiet:
            print(message, file=sys.stderr)
        else:
            QMessageBox.critical(self.window, "im2im-active", message)

    def show_start(self) -> StartPage:
        page = StartPage()
        page.open_requested.connect(self.open)
        self._replace(page)
        return page

    def open(self, path: str) -> MainWindow | None:
        if isinstance(self.window, MainWindow) and not self.window.confirm_close():
            return None  # a round is running and the person keeps working
        if not path:
            path = choose_project_folder(self.window)
            if not path:
                return None
        try:
            project = Project.open(path)
        except ProjectError as exc:
            self._error(str(exc))
            return None
        window = MainWindow(project)
        window.open_requested.connect(self.open)
        window.new_requested.connect(self.new_project)
        geometry = QSettings().value("main/geometry")
        if geometry is not None and not self.quiet:
            window.restoreGeometry(geometry)
        old_project = self.project
        self._replace(window)
        if old_project is not None:
            old_project.close()
        self.project = project
        remember_project(project.root)

        def checked(problems: list) -> None:  # the queue must not start on a file that is gone
            self._report_images(window, problems)
            if window is self.window:
                window.start()

        def not_checked(exc: Exception) -> None:
            log.warning("could not check the image files: %s", in_words(exc))
            if window is self.window:
                window.start()

        workers.start(check_images, project, on_done=checked, on_error=not_checked)
        return window

    def _report_images(self, window: MainWindow, problems: list) -> None:
        """Moved or changed image files (checked off the GUI thread): tell the user, keep their labels."""
        if not problems or window is not self.window:
            return
        window.statusBar().showMessage(f"{len(problems)} image file(s) missing or changed; see the warning", 15000)
        lines = "\n".join(f"• {p}" for p in problems[:10]) + (f"\n… and {len(problems) - 10} more"
                                                               if len(problems) > 10 else "")
        if self.quiet:
            print(lines, file=sys.stderr)
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "Image files changed",
                          "These images are left out of training and scoring until their files are back as "
                          f"they were. Their labels and corrections are kept.\n\n{lines}", parent=window)
        box.setModal(False)
        box.show()

    def new_project(self) -> None:
        dialog = NewProjectDialog(self.window)
        dialog.created.connect(self.open)
        dialog.open()

    def _replace(self, widget: QWidget) -> None:
        old, self.window = self.window, widget
        if old is not None:
            if isinstance(old, MainWindow):
                old.shutdown()
            old.close()
            old.deleteLater()
        widget.show()

    def close(self) -> None:
        if isinstance(self.window, MainWindow):
            self.window.shutdown()
        if self.window is not None:
            self.window.close()
            self.window.deleteLater()
            self.window = None
        if self.project is not None:
            self.project.close()
            self.project = None


def wait_for(condition, timeout_ms: int = 15000) -> bool:
    """Spin the event loop until ``condition()`` or the timeout (workers deliver through it)."""
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: condition() and loop.quit())
    timer.start()
    QTimer.singleShot(timeout_ms, loop.quit)
    if not condition():
        loop.exec()
    timer.stop()
    return bool(condition())


def take_screenshot(window: MainWindow, path: str | os.PathLike) -> bool:
    """Wait until the first image and the thumbnails are in, then save the whole window as a PNG."""
    window.resize(*SCREENSHOT_SIZE)
    loaded = wait_for(lambda: window.view.loaded is not None)
    wait_for(lambda: not window.queue._thumbs_pending, 5000)
    wait_for(lambda: not getattr(window, "denoise_pending", False), 5000)  # a denoise project's output
    QApplication.processEvents()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ok = window.grab().save(str(path), "PNG")
    return loaded and ok


def run_gui(project: str | None = None, screenshot: str | None = None) -> int:
    """Open the GUI (on ``project`` or the start page); with ``screenshot``, save a PNG and return."""
    show_warning, filters = warnings.showwarning, list(warnings.filters)
    try:
        return _run_gui(project, screenshot)
    finally:
        # superqt's thread workers swap warnings.showwarning for one that emits a Qt signal, inside
        # catch_warnings, which is process-wide: two workers finishing out of order leave a dead worker's
        # hook (and its "always" filter) installed, and a warning at exit (atexit callbacks) printed
        # "Signal source has been deleted"
        warnings.showwarning = show_warning
        warnings.filters[:] = filters


def _run_gui(project: str | None, screenshot: str | None) -> int:
    if screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = application()
    launcher = Launcher(quiet=bool(screenshot))
    if project:
        window = launcher.open(project)
        if window is None and screenshot:
            return 1
    else:
        launcher.show_start()
    if screenshot:
        if not isinstance(launcher.window, MainWindow):
            print("--screenshot needs a project", file=sys.stderr)
            return 2
        ok = take_screenshot(launcher.window, screenshot)
        launcher.close()
        QApplication.processEvents()
        if not ok:
            print(f"{screenshot}: could not render the window", file=sys.stderr)
        return 0 if ok else 1
    code = app.exec()
    launcher.close()
    return code
