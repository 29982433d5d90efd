"""The GUI as a person uses it: paint, undo/redo by keyboard, switch images, reopen, screenshot."""

from __future__ import annotations

import numpy as np
import pytest
from gui_actions import click, key, paint_row, stored
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from annotation import editing

pytestmark = pytest.mark.gui


def test_brush_stroke_is_stored_exactly_where_painted(window, qtbot):
    image_id = window.image_id
    base = window.project.store.get_label(image_id, "pseudo")
    assert window.project.store.get_label(image_id, "corrected") is None
    titles = []
    window.windowTitleChanged.connect(titles.append)
    paint_row(window, qtbot)
    corrected = stored(window)
    changed = corrected != base
    ys, xs = np.nonzero(changed)
    assert changed.any() and (corrected[changed] == 77).all()
    assert ys.min() >= 39 and ys.max() <= 41  # a 3-pixel-wide line on row 40
    assert xs.min() >= 19 and xs.max() <= 61
    assert (corrected[40, 21:60] == 77).all()  # no gaps along the drag
    np.testing.assert_array_equal(corrected[~changed], base[~changed])  # rest initialised from pseudo
    assert any(t.startswith("*") for t in titles) and not window.windowTitle().startswith("*")
    assert len(window.project.store.history(image_id)) == 1  # one stroke = one edit
    qtbot.waitUntil(lambda: window.queue.entries[window.queue.row_of(image_id)].state == "in_progress",
                    timeout=5000)  # read back from the store once the stroke is saved
    assert window.view._label_u8[40, 40] == 77  # overlay redrawn


def test_undo_redo_by_keyboard_and_after_reopening(qtbot, gui_project, reopen):
    window = reopen(gui_project)
    image_id = window.image_id
    base = window.project.store.get_label(image_id, "pseudo")
    paint_row(window, qtbot)
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: (window.view.editor.label[0, 40, 40] != 77), timeout=5000)
    np.testing.assert_array_equal(stored(window), base)
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: window.view.editor.label[0, 40, 40] == 77, timeout=5000)
    assert stored(window)[40, 40] == 77
    window.shutdown()
    window.project.close()

    window = reopen(gui_project)  # reopened: the stroke is there and still undoable
    window.open_image(image_id)
    qtbot.waitUntil(lambda: window.image_id == image_id, timeout=5000)
    assert window.view.editor.label[0, 40, 40] == 77
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.view.editor.label[0, 40, 40] != 77, timeout=5000)
    np.testing.assert_array_equal(stored(window), base)


def test_tools_by_shortcut_fill_delete_pick_ignore(window, qtbot):
    store, image_id = window.project.store, window.image_id
    base = store.get_label(image_id, "pseudo")
    target = int(np.bincount(base[base > 0]).argmax())  # the biggest pseudo instance
    ys, xs = np.nonzero(base == target)
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    key(window, Qt.Key.Key_K)  # picker
    assert window.tools.tool == "picker"
    click(window, y, x)
    assert window.tools.value == target
    key(window, Qt.Key.Key_X)  # delete instance
    click(window, y, x)
    qtbot.waitUntil(lambda: not window.saver.busy, timeout=5000)
    assert not (stored(window) == target).any()
    key(window, Qt.Key.Key_G)  # ignore brush
    window.tools.set_size(1)
    click(window, 5, 5)
    qtbot.waitUntil(lambda: not window.saver.busy, timeout=5000)
    assert stored(window, "ignore")[5, 5] == 1
    key(window, Qt.Key.Key_N)  # new instance id
    assert window.tools.value == editing.next_free_id(window.view.editor.label)
    key(window, Qt.Key.Key_F)
    click(window, 2, 120)
    qtbot.waitUntil(lambda: not window.saver.busy, timeout=5000)
    assert stored(window)[2, 120] == window.tools.value
    key(window, Qt.Key.Key_BracketRight)
    assert window.tools.size > 1


def test_polygon_by_clicks_and_enter(window, qtbot):
    key(window, Qt.Key.Key_P)
    window.tools.set_value(55)
    for y, x in [(60, 60), (60, 90), (90, 90), (90, 60)]:
        click(window, y, x)
    key(window, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.saver.busy, timeout=5000)
    corrected = stored(window)
    assert (corrected[61:90, 61:90] == 55).all() and corrected[50, 50] != 55


def test_queue_next_previous_and_time_logged(window, qtbot):
    entries = window.queue.entries
    assert entries[0].image_id == window.image_id and len(entries) == 4
    key(window, Qt.Key.Key_Period)
    qtbot.waitUntil(lambda: window.image_id == entries[1].image_id, timeout=5000)
    key(window, Qt.Key.Key_Period)
    qtbot.waitUntil(lambda: window.image_id == entries[2].image_id, timeout=5000)
    key(window, Qt.Key.Key_Comma)
    qtbot.waitUntil(lambda: window.image_id == entries[1].image_id, timeout=5000)
    window.saver.wait()
    timed = {e["image_id"] for e in window.project.store.events("time")}
    assert {entries[0].image_id, entries[1].image_id, entries[2].image_id} <= timed
    window.queue.state.setCurrentText("done")
    qtbot.waitUntil(lambda: window.queue.table.rowCount() == 0, timeout=5000)


def test_help_overlay_and_overlay_toggles(window, qtbot):
    key(window, Qt.Key.Key_F1)
    assert window.help.isVisible()
    key(window, Qt.Key.Key_Escape)
    assert not window.help.isVisible()
    key(window, Qt.Key.Key_L)
    assert not window.view.items["labels"].isVisible()
    key(window, Qt.Key.Key_L)
    assert window.view.items["labels"].isVisible()
    assert "label" in window.view.readout_text(10, 10)


def test_screenshot_png(gui_project, tmp_path):
    from app.gui.launch import SCREENSHOT_SIZE, run_gui

    out = tmp_path / "shot.png"
    assert run_gui(str(gui_project), screenshot=str(out)) == 0
    image = QImage(str(out))
    assert not image.isNull() and (image.width(), image.height()) == SCREENSHOT_SIZE
    assert out.stat().st_size > 20_000
