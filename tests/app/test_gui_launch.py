"""Opening a project through the launcher: moved image files are reported, their labels kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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


def test_the_gui_log_carries_no_library_chatter(caplog, monkeypatch) -> None:
    """Bug 6: tifffile / aicsimageio warnings were printed several times for one odd file."""
    import logging
    import warnings

    from app.gui.launch import application

    for name in ("tifffile", "aicsimageio"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        application()
        logging.getLogger("tifffile").warning("TiffPage 0: invalid tag value")
        logging.getLogger("aicsimageio.readers.tiff_reader").warning("Could not parse tiff pixel size")
        warnings.warn_explicit("deprecated reader option", UserWarning, "reader.py", 1, module="aicsimageio.readers")
        logging.getLogger("app.gui").warning("the app's own warning")
    assert [r.getMessage() for r in caplog.records] == ["the app's own warning"]
    assert not [w for w in shown if "deprecated reader" in str(w.message)]


def test_errors_in_words() -> None:
    from app.gui.errors import in_words
    from im2im_engine.io import ImageReadError

    assert in_words(ImageReadError("/data/a.tif", "file is empty (0 bytes)")) == "/data/a.tif: file is empty (0 bytes)"
    assert in_words(FileNotFoundError(2, "No such file or directory", "/data/b.tif")) == "/data/b.tif is not there any more"
    text = in_words(IndexError("list index out of range"))
    assert text.startswith("an unexpected error") and "the details are in the log" in text


def test_run_gui_leaves_no_worker_warning_hook_behind(monkeypatch) -> None:
    """superqt workers swap ``warnings.showwarning`` process-wide; one left installed by workers finishing
    out of order emitted on a deleted worker at exit ("Signal source has been deleted"). run_gui restores
    the hook and the filters it started with, however the session ends."""
    import warnings

    from app.gui import launch

    before, filters = warnings.showwarning, list(warnings.filters)

    def leaky(project, screenshot):  # what an out-of-order pair of finished workers leaves behind
        warnings.showwarning = lambda *w: None
        warnings.simplefilter("always")
        raise RuntimeError("the window failed")

    monkeypatch.setattr(launch, "_run_gui", leaky)
    with pytest.raises(RuntimeError):
        launch.run_gui(None)
    assert warnings.showwarning is before and warnings.filters == filters
