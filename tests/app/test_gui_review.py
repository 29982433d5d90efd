"""The review workflow as a person does it: Done → next, Skip, Reset label, Exclude / Include again, and the
counters that must agree with the store after every save (issue 14, bug 5 and the review workflow)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from gui_actions import key, menu_action, paint_row, press, stored
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QInputDialog

pytestmark = pytest.mark.gui


def row_state(window, image_id: int) -> str:
    return window.queue.entries[window.queue.row_of(image_id)].state


def test_counters_follow_the_store_after_every_save(window, qtbot):
    """Bug 5: after a stroke the row, the summary and the training counter all say what the store says;
    an ignore-only stroke on another image counts as in progress in the store and in the window alike."""
    store, first = window.project.store, window.image_id
    assert "0 in progress" in window.queue.summary.text()
    paint_row(window, qtbot)
    qtbot.waitUntil(lambda: "1 in progress" in window.queue.summary.text(), timeout=5000)
    assert store.image(first).review == "in_progress" and row_state(window, first) == "in_progress"
    assert window.training.counter.text().startswith("1 image corrected")
    assert "in progress" in window.review.state.text()

    press(window.review.skip_button)  # the next image, untouched
    qtbot.waitUntil(lambda: window.image_id != first and window.view.loaded.record.id == window.image_id,
                    timeout=10000)
    second = window.image_id
    paint_row(window, qtbot, value=1, row=20, tool_key=Qt.Key.Key_G)  # the ignore brush only
    assert stored(window, "ignore")[20, 40] == 1
    qtbot.waitUntil(lambda: row_state(window, second) == store.image(second).review == "in_progress",
                    timeout=5000)
    qtbot.waitUntil(lambda: "2 in progress" in window.queue.summary.text(), timeout=5000)
    assert store.review_counts()["in_progress"] == 2


def test_done_next_marks_the_image_done_and_opens_the_next_one(window, qtbot):
    store, first = window.project.store, window.image_id
    order = [e.image_id for e in window.queue.entries]
    press(window.review.done_button)  # checked, nothing to change: the start label is right
    qtbot.waitUntil(lambda: window.image_id == order[1] and window.view.loaded.record.id == order[1], timeout=10000)
    qtbot.waitUntil(lambda: store.image(first).review == "done", timeout=5000)
    # the pseudo label it started from is now its corrected label, every pixel vouched for
    np.testing.assert_array_equal(store.get_label(first, "corrected"), store.get_label(first, "pseudo"))
    qtbot.waitUntil(lambda: "1 done" in window.queue.summary.text(), timeout=5000)
    qtbot.waitUntil(lambda: window.queue.entries[-1].image_id == first, timeout=5000)  # re-ranked: done last
    assert row_state(window, first) == "done" and "✓ done" in window.queue.model.data(
        window.queue.model.index(window.queue.row_of(first), 3))

    paint_row(window, qtbot)  # correct the second one, then Ctrl+Enter
    key(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.image_id == order[2], timeout=10000)
    qtbot.waitUntil(lambda: store.image(order[1]).review == "done", timeout=5000)
    assert store.get_label(order[1], "corrected")[40, 40] == 77
    qtbot.waitUntil(lambda: "2 done" in window.queue.summary.text(), timeout=5000)
    window.queue.state.setCurrentText("done")  # the filter shows exactly the two
    qtbot.waitUntil(lambda: sorted(e.image_id for e in window.queue.entries) == sorted(order[:2]), timeout=5000)


def test_skip_leaves_the_image_as_it_is(window, qtbot):
    store, first = window.project.store, window.image_id
    order = [e.image_id for e in window.queue.entries]
    press(window.review.skip_button)
    qtbot.waitUntil(lambda: window.image_id == order[1], timeout=10000)
    assert store.image(first).review == "untouched" and store.get_label(first, "corrected") is None


def test_reset_label_from_the_menu_to_empty_and_back_to_pseudo(window, qtbot):
    store, image_id = window.project.store, window.image_id
    pseudo = store.get_label(image_id, "pseudo")
    paint_row(window, qtbot)
    menu_action(window, "Image", "Reset to empty").trigger()
    qtbot.waitUntil(lambda: not window.saver.busy, timeout=5000)
    assert not stored(window).any() and not window.view.editor.label.any()
    assert window.view._label_u8.max() == 0  # the overlay shows it
    menu_action(window, "Image", "Reset to the pseudo label").trigger()
    qtbot.waitUntil(lambda: not window.saver.busy, timeout=5000)
    np.testing.assert_array_equal(stored(window), pseudo)
    assert store.image(image_id).review == "in_progress"
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # a reset is undoable like a stroke
    qtbot.waitUntil(lambda: not window.view.editor.label.any(), timeout=5000)
    # no prediction yet: resetting to it is offered greyed out
    assert not window.review.reset_actions["prediction"].isEnabled()


def test_exclude_and_include_again_from_the_image_menu(window, qtbot):
    store, first = window.project.store, window.image_id
    menu_action(window, "Image", "Exclude this image").trigger()
    dialog = window.exclude_dialog
    assert isinstance(dialog, QInputDialog) and dialog.isVisible()
    dialog.setTextValue("out of focus")
    ok = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok)
    press(ok)
    qtbot.waitUntil(lambda: window.image_id != first, timeout=10000)
    qtbot.waitUntil(lambda: window.queue.row_of(first) is None, timeout=5000)
    assert store.image(first).excluded == "out of focus"
    qtbot.waitUntil(lambda: "(1 excluded)" in window.queue.summary.text(), timeout=5000)
    assert "0 done" in window.queue.summary.text() and window.queue.summary.text().startswith("3 images")

    menu_action(window, "Image", "nuclei_000").trigger()  # Image → Include again → the excluded image
    qtbot.waitUntil(lambda: window.queue.row_of(first) is not None, timeout=5000)
    assert store.image(first).excluded is None and store.get_label(first, "pseudo") is not None


def test_the_queue_is_ranked_off_the_gui_thread(gui_project, reopen, monkeypatch):
    """Start-up never ranks on the GUI thread (batch diversity can take seconds on a big project)."""
    from annotation import strategies

    threads = []
    real = strategies.rank
    monkeypatch.setattr(strategies, "rank", lambda *a, **k: threads.append(threading.current_thread()) or real(*a, **k))
    reopen(gui_project)
    assert threads and threading.main_thread() not in threads
