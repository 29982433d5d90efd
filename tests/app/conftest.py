"""GUI test fixtures: an isolated QSettings, a small demo project and an open main window.

The Qt-free command-line tests live in tests/cli/, so they run wherever the engine does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

try:  # Qt is a hard dependency of the app: a missing PySide6 fails these tests, it does not skip them
    import PySide6  # noqa: F401
except ImportError as exc:
    raise ImportError(f"PySide6 cannot be imported ({exc}); it is a dependency of im2im-active: "
                      "pip install -e . (or make install)") from exc


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory):
    """Recent projects, geometry and auto-retrain go to a throwaway ini file, not the user's."""
    from PySide6.QtCore import QCoreApplication, QSettings

    QCoreApplication.setOrganizationName("im2im-active-tests")
    QCoreApplication.setApplicationName("im2im-active-tests")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                      str(tmp_path_factory.mktemp("settings")))
    yield


@pytest.fixture
def gui_project(tmp_path: Path) -> Path:
    """Four 128² demo images, instance task, Otsu pseudo labels."""
    from annotation.setup import init_project
    from resources.demo import write_demo_dataset

    images, _ = write_demo_dataset(tmp_path / "data", n_images=4, size=128, seed=3)
    project, _ = init_project(tmp_path / "proj", images, pseudo="otsu", task="instance")
    project.close()
    return tmp_path / "proj"


def open_window(qtbot, root: Path):
    """A shown main window on the project's first queue image (loaded)."""
    from annotation.project import Project
    from app.gui.main_window import MainWindow

    project = Project.open(root)
    window = MainWindow(project)
    window.training.auto.setChecked(False)
    qtbot.addWidget(window)
    window.resize(1300, 850)
    window.show()
    qtbot.waitExposed(window)
    window.start()
    qtbot.waitUntil(lambda: window.view.loaded is not None, timeout=10000)
    return window


def close_window(window) -> None:
    window.shutdown()
    window.project.close()


@pytest.fixture
def reopen(qtbot):
    """``reopen(root)`` -> a new window on the project; closed at teardown if the test did not."""
    windows = []

    def make(root: Path):
        w = open_window(qtbot, root)
        windows.append(w)
        return w

    yield make
    for w in windows:
        if not getattr(w, "_shut", False):
            close_window(w)


@pytest.fixture
def window(qtbot, gui_project):
    w = open_window(qtbot, gui_project)
    yield w
    close_window(w)
