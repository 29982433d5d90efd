"""Opening a project through the launcher: moved image files are reported, their labels kept."""

from __future__ import annotations

import shutil
from pathlib import Path

from annotation.project import Project


def test_missing_image_is_reported_when_the_project_opens(qtbot, gui_project: Path, capsys) -> None:
    from app.gui.launch import Launcher

    with Project.open(gui_project) as project:
        first = project.store.images()[0]
        pseudo = project.store.get_label(first.id, "pseudo")
    shutil.move(first.path, first.path + ".away")
    launcher = Launcher(quiet=True)
    window = launcher.open(str(gui_project))
    try:
        qtbot.waitUntil(lambda: window.view.loaded is not None, timeout=15000)
        assert f"image {first.name} is missing" in capsys.readouterr().err
        assert launcher.project.store.image(first.id).state == "missing"
        assert window.view.loaded.record.id != first.id  # the queue starts on an image that is there
        assert (launcher.project.store.get_label(first.id, "pseudo") == pseudo).all()
    finally:
        launcher.close()
