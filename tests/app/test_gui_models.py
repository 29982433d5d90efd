"""The training panel and the export dialog as a person reads them (issue 14): buttons wired right, the model
in words, a learning curve that says what it plots, one score precision, and an export that warns.

The engine is replaced where only the window is under test (``loop.train_round`` / ``export``); the real
rounds are in ``test_gui_training.py``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from gui_actions import key, menu_action, press, tick
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from annotation import loop

pytestmark = pytest.mark.gui

CHECK = {"rule": "held-out", "images": ["a", "b"], "metric": "ap50", "child": 0.92, "parent": 0.85,
         "pseudo": None, "accepted": True, "reason": "v2 accepted"}


def add_models(store) -> None:
    """Three versions as rounds leave them: v1 from pseudo labels, v2 accepted, v3 rejected."""
    store.add_model(version=1, path="models/v1/model.pt", status="accepted", round=0, n_corrected=0,
                    metrics={"steps": 12, "corrections_ap50": 0.7})
    store.add_model(version=2, path="models/v2/model.pt", parent=1, status="accepted", round=1, n_corrected=1,
                    metrics={"steps": 8, "ap50": 0.92, "check": CHECK})
    store.add_model(version=3, path="models/v3/model.pt", parent=2, status="rejected", round=2, n_corrected=2,
                    metrics={"steps": 8, "ap50": 0.8, "check": {**CHECK, "child": 0.8, "parent": 0.92,
                                                                "accepted": False}})
    store.set_current_model(2)


@pytest.fixture
def with_models(gui_project):
    from annotation.project import Project

    with Project.open(gui_project) as project:
        add_models(project.store)
    return gui_project


def test_train_now_button_and_shortcut_pass_no_step_count(window, qtbot, monkeypatch):
    """Bug 1: the button's clicked(checked=False) arrived as ``steps=False``."""
    calls = []
    release = threading.Event()

    def fake_round(project, *, steps=None, progress=None, should_stop=None):
        calls.append(steps)
        release.wait(30)
        return loop.RoundResult(None, False, message="kept v1", cancelled=True)

    monkeypatch.setattr(loop, "train_round", fake_round)
    panel = window.training
    press(panel.start_button)
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=10_000)
    assert calls == [None] and panel.running and not panel.start_button.isEnabled()
    release.set()
    qtbot.waitUntil(lambda: not panel.running, timeout=10_000)
    assert "Training stopped" in panel.status.text()
    release.clear()
    key(window, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(calls) == 2, timeout=10_000)
    release.set()
    menu_action(window, "Model", "Train now")  # and it is in the Model menu
    assert calls == [None, None]
    qtbot.waitUntil(lambda: not panel.running, timeout=10_000)


def test_a_round_shows_the_check_and_the_skipped_images(with_models, reopen, qtbot, monkeypatch):
    skipped = [{"name": "stack", "file": "/data/stack.tif", "reason": "a stack of 5 planes; the model is 2D"}]

    def fake_round(project, *, steps=None, progress=None, should_stop=None):
        progress({"phase": "train", "event": "skipped", **skipped[0]})
        return loop.RoundResult(3, False, message="kept v2", check=CHECK | {"accepted": False}, skipped=skipped)

    monkeypatch.setattr(loop, "train_round", fake_round)
    window = reopen(with_models)
    panel = window.training
    press(panel.start_button)
    qtbot.waitUntil(lambda: not panel.running and "Skipped" in panel.status.text(), timeout=10_000)
    text = panel.status.text()
    assert "v3 agrees with the 2 images you marked done" in text and "Not accepted" in text
    assert "Skipped 1 image it could not use:\nstack: a stack of 5 planes; the model is 2D" in text


def test_the_model_in_words_and_a_learning_curve_that_says_what_it_plots(with_models, reopen, qtbot):
    window = reopen(with_models)
    panel = window.training
    assert panel.feedback.text() == ("v2 agrees with the 2 images you marked done that it did not train on: 92% "
                                     "instances matched (AP50); v1: 85% on the same images. Accepted.")
    bar = panel.tabs.tabBar()
    QTest.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(1).center())
    assert panel.tabs.currentIndex() == 1 and panel.curve_caption.isVisible()
    assert "Each point is a model version" in panel.curve_caption.text()
    axis = panel.curve.getAxis("bottom")
    ticks = [v for _spacing, values in axis.tickValues(0, 2, 400) for v in values]
    assert ticks and all(float(v).is_integer() for v in ticks)  # no 1.5 corrected images
    assert panel.models.item(0, 0).text() == "v3" and panel.models.item(0, 3).text() == "8"
    assert "v3 agrees" in panel.models.item(0, 5).toolTip()
    # the live plot's legend is in its title, not over the curve
    assert panel.live.getPlotItem().legend is None and "loss" in panel.live.getPlotItem().titleLabel.text


def test_queue_scores_are_shown_with_one_precision(with_models, reopen, qtbot):
    from annotation.project import Project

    with Project.open(with_models) as project:
        ids = [im.id for im in project.store.images()]
        values = [0.123456, 0.000015, 0.5, 1.25]
        project.store.put_scores(2, [{"image_id": i, "score": v, "details": {"score": v, "entropy": v}}
                                     for i, v in zip(ids, values, strict=True)])
    window = reopen(with_models)
    model = window.queue.model
    shown = sorted(model.data(model.index(r, 2)) for r in range(model.rowCount()))
    assert shown == ["0.000", "0.123", "0.500", "1.250"]


def test_small_scores_keep_three_significant_digits_in_one_precision():
    """A denoise project's TTA variances (~3e-4) would read 0.000 on every row at three decimals."""
    from app.gui.queue_panel import score_decimals

    assert score_decimals([0.123456, 0.000015, 0.5, 1.25]) == 3
    assert score_decimals([0.000301, 0.000256, None]) == 6
    assert score_decimals([None]) == 3 and score_decimals([0.0, 0.0]) == 3 and score_decimals([1e-12]) == 8


def test_export_dialog_warns_on_a_0_step_model_and_escape_waits_for_the_export(gui_project, reopen, qtbot,
                                                                                 monkeypatch):
    from annotation import export as export_module
    from annotation.export import ExportReport
    from annotation.project import Project

    with Project.open(gui_project) as project:
        project.store.add_model(version=1, path="models/v1/model.pt", status="accepted", round=0,
                                metrics={"steps": 0})
        project.store.set_current_model(1)
    window = reopen(gui_project)
    menu_action(window, "File", "Export").trigger()
    dialog = window.export_dialog
    qtbot.waitExposed(dialog)
    assert dialog.warning.isVisible() and "trained 0 steps" in dialog.warning.text()
    assert not dialog.run_button.isEnabled()
    tick(dialog.anyway)
    assert dialog.run_button.isEnabled()

    release = threading.Event()

    def slow_export(project, fmt, output, **kwargs):
        release.wait(30)
        return ExportReport(format=fmt, path=Path(output), model_version=1)

    monkeypatch.setattr(export_module, "export", slow_export)
    press(dialog.run_button)
    QTest.keyClick(dialog, Qt.Key.Key_Escape)  # while it exports: the dialog stays, and says why
    assert dialog.isVisible() and "can close once it is done" in dialog.status.text()
    release.set()
    qtbot.waitUntil(lambda: dialog.run_button.isEnabled(), timeout=10_000)
    QTest.keyClick(dialog, Qt.Key.Key_Escape)
    assert not dialog.isVisible()
