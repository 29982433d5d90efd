"""The new-project wizard driven as a person does: typing a folder, reading the check, choosing how images
that do not fit are fitted, picking the pseudo-label method, clicking Create."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QMessageBox

pytestmark = pytest.mark.gui


def _dialog(qtbot):
    from app.gui.wizard import NewProjectDialog

    dialog = NewProjectDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def _type_folder(qtbot, dialog, folder: Path) -> None:
    with qtbot.waitSignal(dialog.checked, timeout=60_000):
        qtbot.keyClicks(dialog.images.edit, str(folder))
    qtbot.waitUntil(lambda: "Checking" not in dialog.check.text(), timeout=60_000)


def _choose(qtbot, dialog, combo, text: str) -> None:
    index = combo.findText(text, Qt.MatchFlag.MatchContains)
    assert index >= 0, [combo.itemText(i) for i in range(combo.count())]
    with qtbot.waitSignal(dialog.checked, timeout=60_000):
        combo.setCurrentIndex(index)  # what picking the item from the list does


def _summary_box() -> QMessageBox | None:
    boxes = [w for w in QApplication.topLevelWidgets() if w.objectName() == "importSummary" and w.isVisible()]
    return boxes[-1] if boxes else None


def test_wizard_checks_the_folder_then_fits_images_by_the_choices_made(tmp_path, qtbot, write_misfits,
                                                                      engine_refuses):
    files = write_misfits(tmp_path / "images")
    dialog = _dialog(qtbot)
    _type_folder(qtbot, dialog, tmp_path / "images")
    text = dialog.check.text()
    assert "the project will be 2D, 1 channel, as 2 of the 5 images are; 2 fit as they are" in text, text
    assert "stack.ome.tif: left out: a z-stack of 5 planes" in text
    assert "two.ome.tif: left out: 2 channels (DAPI, GFP)" in text
    assert "rgb.tif: left out: an RGB colour image" in text
    assert "broken.tif: left out: a damaged TIFF file" in text and "IndexError" not in text
    assert dialog.stacks.isVisible() and dialog.channels.isVisible()

    _choose(qtbot, dialog, dialog.stacks, "maximum projection")
    assert "stack.ome.tif: maximum projection of its 5 planes" in dialog.check.text()
    _choose(qtbot, dialog, dialog.channels, "GFP")
    text = dialog.check.text()
    assert "two.ome.tif: channel 1 (GFP) of its 2" in text and "rgb.tif: channel 1 (G) of its 3" in text, text

    qtbot.keyClicks(dialog.location.edit, str(tmp_path / "proj"))
    with qtbot.waitSignal(dialog.created, timeout=120_000):
        qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    box = _summary_box()
    assert box is not None and "stack.ome.tif: maximum projection" in box.text()
    assert "broken.tif: left out" in box.text()
    box.close()

    from annotation.project import Project

    with Project.open(tmp_path / "proj") as project:
        images = {im.name: im for im in project.store.images()}
        assert sorted(images) == ["plain0", "plain1", "rgb", "stack", "two"]
        assert engine_refuses(project) == []
        stack = tifffile.imread(images["stack"].path)
        np.testing.assert_array_equal(stack, tifffile.imread(files["stack"]).max(axis=0))
        assert images["two"].channel_names == ["GFP"]
        assert all(project.store.has_label(im.id, "pseudo") for im in images.values())


def test_wizard_makes_a_3d_project_when_asked(tmp_path, qtbot, write_misfits):
    write_misfits(tmp_path / "images", n_plain=1)
    dialog = _dialog(qtbot)
    _type_folder(qtbot, dialog, tmp_path / "images")
    _choose(qtbot, dialog, dialog.stacks, "3D project")
    text = dialog.check.text()
    assert "the project will be 3D, 1 channel" in text and "plain0.tif: left out: a single plane" in text, text


def test_wizard_offers_the_watershed_for_instances_and_uses_it(tmp_path, qtbot):
    folder = tmp_path / "images"
    folder.mkdir()
    yy, xx = np.mgrid[:80, :120]
    two = ((yy - 40) ** 2 + (xx - 40) ** 2 < 400) | ((yy - 40) ** 2 + (xx - 75) ** 2 < 400)
    tifffile.imwrite(folder / "touching.tif", (two * 1000 + 50).astype(np.uint16))
    dialog = _dialog(qtbot)
    assert [dialog.method.itemData(i) for i in range(dialog.method.count())] == ["otsu"]  # semantic
    dialog.task.setCurrentIndex(dialog.task.findText("instance"))
    methods = [dialog.method.itemText(i) for i in range(dialog.method.count())]
    assert "watershed" in methods[0] and "connected components" in methods[1]
    assert dialog.method.currentData() == "watershed"
    _type_folder(qtbot, dialog, folder)
    qtbot.keyClicks(dialog.location.edit, str(tmp_path / "proj"))
    with qtbot.waitSignal(dialog.created, timeout=120_000):
        qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)

    from annotation.project import Project

    with Project.open(tmp_path / "proj") as project:
        label = project.store.get_label(1, "pseudo")
        assert len(np.unique(label[label > 0])) == 2  # the two touching discs split apart
        assert project.store.events("init")[-1]["data"]["labels_source"] == "watershed"


def test_wizard_label_choices_line_up(qtbot):
    dialog = _dialog(qtbot)
    x = [w.mapTo(dialog, QPoint(0, 0)).x() for w in (dialog.pseudo, dialog.imported)]
    assert x[0] == x[1]  # both radio buttons start in the same column
    fields = [w.mapTo(dialog, QPoint(0, 0)).x() for w in (dialog.method, dialog.labels)]
    assert fields[0] == fields[1]  # and so do the method and the folder next to them
    assert x[0] >= dialog.images.mapTo(dialog, QPoint(0, 0)).x()  # in the field column, not the label column
    qtbot.mouseClick(dialog.imported, Qt.MouseButton.LeftButton)
    assert dialog.labels.isEnabled() and not dialog.method.isEnabled()


def test_wizard_makes_a_denoise_project_from_images_alone(tmp_path, qtbot):
    """Noise2Void needs no labels: choosing *denoise* hides the label choices (which init would refuse) and
    Create makes the project from the images only."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    tifffile.imwrite(folder / "noisy.tif", rng.poisson(50, (96, 96)).astype(np.uint16))
    dialog = _dialog(qtbot)
    _type_folder(qtbot, dialog, folder)
    with qtbot.waitSignal(dialog.checked, timeout=60_000):
        dialog.task.setCurrentIndex(dialog.task.findText("denoise"))
    assert dialog.no_labels.isVisible() and not dialog.imported.isVisible() and not dialog.pseudo.isVisible()
    qtbot.keyClicks(dialog.location.edit, str(tmp_path / "proj"))
    assert dialog.problems() == []
    with qtbot.waitSignal(dialog.created, timeout=120_000):
        qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)

    from annotation.project import Project

    with Project.open(tmp_path / "proj") as project:
        assert project.task == "denoise" and len(project.store.images()) == 1
    dialog.task.setCurrentIndex(dialog.task.findText("semantic"))  # and back: the label choices return
    assert not dialog.pseudo.isHidden() and dialog.no_labels.isHidden()  # (the dialog itself has closed)
