"""Viewing as a person does it (issue 14): contrast kept per channel, gamma, colormap, outlines, zoom keys,
scale bar, channel names from the file, the label list, Help → About."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gui_actions import drag_widget, key, menu_action, paint_row, press
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

pytestmark = pytest.mark.gui


def loaded_after(window, qtbot, action) -> None:
    before = window.image_id
    action()
    qtbot.waitUntil(lambda: window.image_id != before and window.view.loaded.record.id == window.image_id,
                    timeout=10000)


def test_contrast_is_kept_per_channel_across_images(window, qtbot):
    view = window.view
    auto = view.loaded.levels[0]
    assert view.image_item.getLevels() == pytest.approx(auto)
    press(window.display.full_button)
    data = view.loaded.data[0]
    assert tuple(view.image_item.getLevels()) == pytest.approx((data.min(), data.max()))
    loaded_after(window, qtbot, lambda: key(window, Qt.Key.Key_Period))
    data = view.loaded.data[0]  # the next image: full range again, its own
    assert tuple(view.image_item.getLevels()) == pytest.approx((data.min(), data.max()))

    # drag the histogram's upper level line down: that contrast is kept as it is for the next image
    hist = view.hist
    lo, hi = hist.getLevels()
    start = view.glw.mapFromScene(hist.vb.mapViewToScene(QPointF(0.5, hi)))  # on the upper level line
    target = view.glw.mapFromScene(hist.vb.mapViewToScene(QPointF(0.5, lo + (hi - lo) * 0.5)))
    drag_widget(view.glw.viewport(), start, QPoint(start.x(), target.y()))
    dragged = tuple(view.image_item.getLevels())
    assert dragged[1] < hi - (hi - lo) * 0.2
    loaded_after(window, qtbot, lambda: key(window, Qt.Key.Key_Period))
    assert tuple(view.image_item.getLevels()) == pytest.approx(dragged)

    key(window, Qt.Key.Key_A)  # auto contrast: this image's percentiles
    assert tuple(view.image_item.getLevels()) == pytest.approx(view.loaded.levels[0])


def test_gamma_colormap_outlines_and_zoom(window, qtbot):
    view = window.view
    window.display.gamma.setValue(2.0)  # typed into the field
    lut = view.image_item.lut
    assert lut is not None and lut[128, 0] < 70  # (128/255)^2 * 255 = 64
    window.display.colormap.setCurrentText("viridis")
    assert tuple(view.image_item.lut[-1, :3]) != tuple(view.image_item.lut[-1, [0, 0, 0]])  # not grey

    label = view.editor.label[0]
    ids, counts = np.unique(label[label > 0], return_counts=True)
    big = ids[counts.argmax()]
    ys, xs = np.nonzero(label == big)
    inner = next((y, x) for y, x in zip(ys, xs, strict=True) if (label[y - 1:y + 2, x - 1:x + 2] == big).all())
    assert view._label_u8[inner] > 0
    key(window, Qt.Key.Key_O)  # outlines only
    assert window.display.outlines.isChecked() and view._label_u8[inner] == 0
    assert view._label_u8[ys.min(), xs[ys.argmin()]] > 0  # the border stays
    paint_row(window, qtbot, value=250, row=100)  # an edit redraws outlines around it
    assert view._label_u8[100, 40] == 0 and view._label_u8[99, 40] > 0

    qtbot.waitUntil(lambda: window.view.zoom_label.text().endswith("%"), timeout=5000)
    before = view.zoom_percent()
    key(window, Qt.Key.Key_Plus)
    assert view.zoom_percent() == pytest.approx(before * 1.25, rel=0.02)
    qtbot.waitUntil(lambda: view.zoom_label.text() == f"{view.zoom_percent():.0f}%", timeout=5000)
    key(window, Qt.Key.Key_Minus)
    assert view.zoom_percent() == pytest.approx(before, rel=0.02)


def test_label_list_shows_every_label_with_its_size(window, qtbot):
    labels = window.label_list
    label = window.view.editor.label
    counts = np.bincount(label.ravel())
    assert labels.sizes() == {i: int(counts[i]) for i in np.flatnonzero(counts) if i > 0}
    paint_row(window, qtbot, value=77)
    qtbot.waitUntil(lambda: 77 in labels.sizes(), timeout=5000)
    assert labels.sizes()[77] == int((window.view.editor.label == 77).sum())
    row = labels.ids.index(int(np.flatnonzero(counts)[1]))
    rect = labels.table.visualItemRect(labels.table.item(row, 0))
    QTest.mouseClick(labels.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.tools.value == int(np.flatnonzero(counts)[1])


def test_help_about_names_the_version_and_the_readme(window):
    from app.gui.main_window import README, version

    menu_action(window, "Help", "About im2im-active").trigger()
    box = window.about_box
    assert box.isVisible() and version() in box.text() and version() != "unknown"
    assert README.as_uri() in box.text() and README.exists()


@pytest.fixture
def two_channel_project(tmp_path: Path) -> Path:
    """Three 2-channel uint16 OME-TIFFs with channel names and a pixel size of 0.5 µm."""
    from annotation.setup import init_project
    from im2im_engine.io import write_ome_tiff

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        data = rng.integers(100, 400, (2, 1, 96, 96)).astype(np.uint16)
        data[0, 0, 30:60, 30:60] += 3000 + 1000 * i  # a bright square: the nucleus
        data[1, 0, 20:40, 50:80] += 1500
        write_ome_tiff(images / f"cells_{i}.ome.tif", data, "CZYX", channel_names=["DAPI", "GFP"],
                       physical_pixel_sizes=(None, 0.5, 0.5))
    project, _ = init_project(tmp_path / "proj", images, pseudo="otsu", task="semantic")
    project.close()
    return tmp_path / "proj"


def test_channels_by_their_names_composite_and_scale_bar(two_channel_project, reopen, qtbot):
    window = reopen(two_channel_project)
    view = window.view
    names = [view.channel_box.itemText(i) for i in range(view.channel_box.count())]
    assert names == ["Composite", "DAPI", "GFP"]
    # composite: the histogram of an RGB blend (an axis of 0–255 for uint16 data) is not shown
    assert view.channel == -1 and not view.hist.isVisible() and view.composite_note.isVisible()
    key(window, Qt.Key.Key_C)  # DAPI alone: its histogram, in the data's own units
    assert view.channel == 0 and view.hist.isVisible()
    assert view.hist.getLevels()[1] > 1000  # uint16 units, not 0–255
    assert view.scale_bar.isVisible() and view.scale_bar.label().endswith("µm")
    length_um = float(view.scale_bar.label().split()[0])
    assert view.scale_bar.size == pytest.approx(length_um / 0.5)  # 0.5 µm per pixel
